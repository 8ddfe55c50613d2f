/**
 * SMTP path grammar: Reverse-path and Forward-path (RFC 5321 4.1.2), with the internationalized
 * forms of RFC 6531 3.3 (UTF-8 local parts and U-labels).
 *
 * Owns: parsePath. Accepts the null path "<>" (when allowed), source routes "<@a,@b:user@c>"
 * (accepted and stripped, RFC 5321 4.1.2 / appendix C), dot-string and quoted-string local parts,
 * domains, and address literals [1.2.3.4], [IPv6:...] and general literals [tag:content].
 * A pure function: no I/O.
 */
import { isIPv4, isIPv6 } from 'node:net';

/** Result of parsing a path at the start of a string. */
export type PathResult =
  | {
      readonly ok: true;
      /** "local@domain" as given (quoted local parts keep their quotes); '' for the null path. */
      readonly address: string;
      /** Text after the closing '>' (ESMTP parameters, normally starting with a space). */
      readonly rest: string;
      /** True when the address has non-ASCII characters (needs SMTPUTF8, RFC 6531 3.4). */
      readonly utf8: boolean;
    }
  | { readonly ok: false; readonly detail: string };

export interface PathOptions {
  /** Accept "<>" (MAIL FROM only). */
  readonly allowNull?: boolean;
  /** Accept "<Postmaster>" without a domain (RCPT TO only, RFC 5321 4.1.1.3). */
  readonly allowPostmaster?: boolean;
}

const MAX_DOMAIN_OCTETS = 255; // RFC 5321 4.5.3.1.2
const MAX_LABEL_OCTETS = 63;
const ATEXT_SPECIALS = "!#$%&'*+-/=?^_`{|}~";

const isAlnum = (c: number): boolean => (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
const isNonAscii = (c: number): boolean => c >= 0x80;
const isAtext = (ch: string): boolean => {
  const c = ch.charCodeAt(0);
  return isAlnum(c) || isNonAscii(c) || ATEXT_SPECIALS.includes(ch);
};

class Cursor {
  pos = 0;
  constructor(readonly s: string) {}
  peek(): string { return this.s[this.pos] ?? ''; }
  eat(ch: string): boolean {
    if (this.s[this.pos] !== ch) return false;
    this.pos++;
    return true;
  }
}

/** Dot-string (RFC 5321 4.1.2): Atom *("." Atom); Atom = 1*atext. */
function dotString(c: Cursor): string | undefined {
  const start = c.pos;
  for (;;) {
    const atomStart = c.pos;
    while (c.pos < c.s.length && isAtext(c.s[c.pos]!)) c.pos++;
    if (c.pos === atomStart) return undefined;
    if (!c.eat('.')) break;
  }
  return c.s.slice(start, c.pos);
}

/** Quoted-string (RFC 5321 4.1.2): DQUOTE *QcontentSMTP DQUOTE, kept with its quotes. */
function quotedString(c: Cursor): string | undefined {
  const start = c.pos;
  if (!c.eat('"')) return undefined;
  while (c.pos < c.s.length) {
    const code = c.s.charCodeAt(c.pos);
    if (code === 0x22) {
      c.pos++;
      return c.s.slice(start, c.pos);
    }
    if (code === 0x5c) {
      const next = c.s.charCodeAt(c.pos + 1);
      if (!(next >= 32 && next <= 126)) return undefined;
      c.pos += 2;
    } else if ((code >= 32 && code <= 126) || isNonAscii(code)) {
      c.pos++;
    } else {
      return undefined;
    }
  }
  return undefined;
}

/** True for a valid domain name (RFC 5321 4.1.2 Domain; U-labels allowed, RFC 6531 3.3). */
export function isDomain(d: string): boolean {
  if (!d || Buffer.byteLength(d) > MAX_DOMAIN_OCTETS) return false;
  return d.split('.').every((label) => {
    if (!label || Buffer.byteLength(label) > MAX_LABEL_OCTETS) return false;
    if (label.startsWith('-') || label.endsWith('-')) return false;
    for (const ch of label) {
      const code = ch.codePointAt(0)!;
      if (!(isAlnum(code) || code === 0x2d || isNonAscii(code))) return false;
    }
    return true;
  });
}

/** True for an address literal "[...]" (RFC 5321 4.1.3): IPv4, "IPv6:" or a general literal. */
export function isAddressLiteral(lit: string): boolean {
  if (!lit.startsWith('[') || !lit.endsWith(']')) return false;
  const inner = lit.slice(1, -1);
  if (/^\d/.test(inner)) return isIPv4(inner);
  const m = /^([A-Za-z0-9-]*[A-Za-z0-9]):([\x21-\x5a\x5e-\x7e]+)$/.exec(inner);
  if (!m) return false;
  if (m[1]!.toLowerCase() === 'ipv6') return isIPv6(m[2]!);
  return true;
}

/** Domain or address literal at the cursor; undefined when invalid. */
function domainPart(c: Cursor, stops: string): string | undefined {
  const start = c.pos;
  if (c.peek() === '[') {
    const end = c.s.indexOf(']', c.pos);
    if (end < 0) return undefined;
    c.pos = end + 1;
    const lit = c.s.slice(start, c.pos);
    return isAddressLiteral(lit) ? lit : undefined;
  }
  while (c.pos < c.s.length && !stops.includes(c.s[c.pos]!)) c.pos++;
  const d = c.s.slice(start, c.pos);
  return isDomain(d) ? d : undefined;
}

/** A-d-l (RFC 5321 4.1.2): At-domain *( "," At-domain ) ":"; consumed and ignored (appendix C). */
function sourceRoute(c: Cursor): boolean {
  do {
    if (!c.eat('@')) return false;
    if (domainPart(c, ',:>') === undefined) return false;
  } while (c.eat(','));
  return c.eat(':');
}

/**
 * Parses a path "<...>" at the start of `input` (RFC 5321 4.1.2 Path / Reverse-path / Forward-path).
 * The source route of a path is accepted and dropped (RFC 5321 4.1.2, appendix C). UTF-8 is accepted
 * syntactically; the `utf8` flag tells the caller whether SMTPUTF8 is needed (RFC 6531 3.3).
 * @param input the argument text after "FROM:" / "TO:", starting at '<'.
 * @returns the address and the text after '>', or `{ ok: false, detail }`. Never throws.
 */
export function parsePath(input: string, opts: PathOptions = {}): PathResult {
  const c = new Cursor(input);
  if (!c.eat('<')) return { ok: false, detail: 'path must be enclosed in <>' };
  if (c.eat('>')) {
    return opts.allowNull ? { ok: true, address: '', rest: input.slice(c.pos), utf8: false } : { ok: false, detail: 'null path not allowed here' };
  }
  if (c.peek() === '@' && !sourceRoute(c)) return { ok: false, detail: 'bad source route' };
  const local = c.peek() === '"' ? quotedString(c) : dotString(c);
  if (local === undefined) return { ok: false, detail: 'bad local part' };
  let address: string;
  if (c.eat('@')) {
    const domain = domainPart(c, '>');
    if (domain === undefined) return { ok: false, detail: 'bad domain' };
    address = `${local}@${domain}`;
  } else if (opts.allowPostmaster && local.toLowerCase() === 'postmaster') {
    address = local;
  } else {
    return { ok: false, detail: 'address must have a domain' };
  }
  if (!c.eat('>')) return { ok: false, detail: 'path must end with >' };
  return { ok: true, address, rest: input.slice(c.pos), utf8: /[^\x00-\x7f]/.test(address) };
}

/**
 * The mailbox an address names, for comparing addresses (RFC 5321 4.1.2: a quoted-string local
 * part and the same characters unquoted are one local part; a quoted-pair is its character).
 * `"bob"@x` and `"b\ob"@x` give `bob@x`; `"b o"@x` gives `b o@x`, which no unquoted form can be
 * (the last '@' still separates the domain). Not for the wire: the result may not parse.
 * @param address "local@domain" as parsePath returns it (or a local part alone).
 * @returns the address with its local part unquoted; other addresses unchanged. Never throws.
 */
export function mailboxOf(address: string): string {
  if (!address.startsWith('"')) return address;
  let local = '';
  for (let i = 1; i < address.length; i++) {
    const ch = address[i]!;
    if (ch === '"') return local + address.slice(i + 1);
    if (ch === '\\' && i + 1 < address.length) local += address[++i];
    else local += ch;
  }
  return address; // no closing quote: not from parsePath, compare as given
}
