/**
 * The grammar of Postfix's XCLIENT and XFORWARD commands (postfix.org XCLIENT_README and
 * XFORWARD_README): `VERB 1*( SP name "=" value )`, names case-insensitive, values xtext
 * (RFC 3461 4, decoded with xtext.ts), "[UNAVAILABLE]" (and for NAME "[TEMPUNAVAIL]") meaning "not
 * known", an IPv6 ADDR written "IPV6:2001:db8::1" (prefix in any case).
 *
 * Owns: parsing and checking every attribute; the reply for a bad one (501 5.5.4 naming it). No I/O.
 * - XCLIENT: NAME (a host name, at most 255), ADDR and DESTADDR (IPv4 or IPV6:address), PORT and
 *   DESTPORT (0-65535), PROTO (SMTP or ESMTP), HELO (printable, at most 255), LOGIN (a user name).
 * - XFORWARD: NAME, ADDR (may be a non-IP address), PORT, PROTO (at most 64), HELO, IDENT (the
 *   up-stream queue ID), SOURCE (LOCAL or REMOTE): each at most 255 characters of printable ASCII
 *   without spaces or the characters ( ) < > ; \ " that are special in header fields and logs.
 */
import { canonicalIp } from '../core/ip.js';
import { R, type SmtpReply } from '../core/reply.js';
import { decodeXtext } from './xtext.js';

/** The XCLIENT attributes offered in EHLO, in that order. */
export const XCLIENT_ATTRIBUTES = ['NAME', 'ADDR', 'PORT', 'PROTO', 'HELO', 'LOGIN', 'DESTADDR', 'DESTPORT'] as const;
/** The XFORWARD attributes offered in EHLO, in that order. */
export const XFORWARD_ATTRIBUTES = ['NAME', 'ADDR', 'PORT', 'PROTO', 'HELO', 'IDENT', 'SOURCE'] as const;

type XclientName = (typeof XCLIENT_ATTRIBUTES)[number];
type XforwardName = (typeof XFORWARD_ATTRIBUTES)[number];

/**
 * What one XCLIENT command says. A key is present only when the command named that attribute;
 * `null` means [UNAVAILABLE] (or [TEMPUNAVAIL] for NAME).
 */
export interface XclientAttributes {
  name?: string | null;
  /** Canonical address text (core/ip.ts), IPv4-mapped IPv6 as IPv4. */
  addr?: string | null;
  port?: number | null;
  proto?: 'SMTP' | 'ESMTP';
  helo?: string | null;
  login?: string | null;
  destaddr?: string | null;
  destport?: number | null;
}

/** What one XFORWARD command says: a value, or null for [UNAVAILABLE] (the attribute is erased). */
export type XforwardAttributes = Partial<Record<'name' | 'addr' | 'port' | 'proto' | 'helo' | 'ident' | 'source', string | null>>;

export type XParse<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly reply: SmtpReply };

const HOSTNAME = /^(?=.{1,255}$)[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?)*\.?$/;
const PRINTABLE = /^[\x21-\x7e]{1,255}$/;
/** XFORWARD values: printable ASCII without the characters that would break a header field or a log line. */
const FORWARD_VALUE = /^[\x21-\x7e]{1,255}$/;
const FORWARD_SPECIAL = /[()<>;\\"]/;

const bad = (what: string): { ok: false; reply: SmtpReply } => ({ ok: false, reply: R.paramSyntax(what) });

/** Splits "A=x B=y" into decoded [NAME, value] pairs; a reply for an empty list, a missing "=" or bad xtext. */
function pairs(verb: string, arg: string): XParse<Array<[string, string]>> {
  const words = arg.split(' ').filter((w) => w !== '');
  if (!words.length) return bad(`${verb} needs attribute=value ...`);
  const out: Array<[string, string]> = [];
  for (const w of words) {
    const eq = w.indexOf('=');
    if (eq <= 0) return bad(`${verb} expects attribute=value, got "${w.slice(0, 40)}"`);
    const name = w.slice(0, eq).toUpperCase();
    const value = decodeXtext(w.slice(eq + 1));
    if (value === undefined) return bad(`${verb} ${name} value is not valid xtext`);
    out.push([name, value]);
  }
  return { ok: true, value: out };
}

const isUnavailable = (v: string): boolean => v.toUpperCase() === '[UNAVAILABLE]';

/** "1.2.3.4" or "IPV6:2001:db8::1" as canonical text; undefined when malformed. */
function xclientAddress(v: string): string | undefined {
  const m = /^ipv6:(.+)$/i.exec(v);
  if (m) return m[1]!.includes(':') ? canonicalIp(m[1]!) : undefined;
  return v.includes(':') ? undefined : canonicalIp(v);
}

function port(v: string): number | undefined {
  return /^(0|[1-9]\d{0,4})$/.test(v) && Number(v) <= 65535 ? Number(v) : undefined;
}

/**
 * Parses the argument of XCLIENT (after the verb). Later attributes of the same name win.
 * @returns the attributes, or 501 5.5.4 naming the first bad one (an unknown name included).
 */
export function parseXclient(arg: string): XParse<XclientAttributes> {
  const p = pairs('XCLIENT', arg);
  if (!p.ok) return p;
  const a: XclientAttributes = {};
  for (const [name, v] of p.value) {
    if (!(XCLIENT_ATTRIBUTES as readonly string[]).includes(name)) return bad(`bad XCLIENT attribute name: ${name.slice(0, 40)}`);
    const n = name as XclientName;
    const unavailable = isUnavailable(v) || (n === 'NAME' && v.toUpperCase() === '[TEMPUNAVAIL]');
    switch (n) {
      case 'NAME':
        if (!unavailable && !HOSTNAME.test(v)) return bad('bad XCLIENT NAME syntax');
        a.name = unavailable ? null : v.toLowerCase();
        break;
      case 'ADDR': case 'DESTADDR': {
        const addr = unavailable ? null : xclientAddress(v);
        if (addr === undefined) return bad(`bad XCLIENT ${n} syntax (expected IPv4 or IPV6:address)`);
        if (n === 'ADDR') a.addr = addr; else a.destaddr = addr;
        break;
      }
      case 'PORT': case 'DESTPORT': {
        const pn = unavailable ? null : port(v);
        if (pn === undefined) return bad(`bad XCLIENT ${n} syntax`);
        if (n === 'PORT') a.port = pn; else a.destport = pn;
        break;
      }
      case 'PROTO': {
        const u = v.toUpperCase();
        if (u !== 'SMTP' && u !== 'ESMTP') return bad('bad XCLIENT PROTO syntax (SMTP or ESMTP)');
        a.proto = u;
        break;
      }
      case 'HELO':
        if (!unavailable && !PRINTABLE.test(v)) return bad('bad XCLIENT HELO syntax');
        a.helo = unavailable ? null : v;
        break;
      case 'LOGIN':
        if (!unavailable && (v.length > 255 || /[\x00-\x20\x7f]/.test(v))) return bad('bad XCLIENT LOGIN syntax');
        a.login = unavailable ? null : v;
        break;
    }
  }
  return { ok: true, value: a };
}

/**
 * Parses the argument of XFORWARD (after the verb). ADDR loses an "IPV6:" prefix and an IP address
 * is written canonically; SOURCE is upper-cased.
 * @returns the attributes, or 501 5.5.4 naming the first bad one.
 */
export function parseXforward(arg: string): XParse<XforwardAttributes> {
  const p = pairs('XFORWARD', arg);
  if (!p.ok) return p;
  const a: XforwardAttributes = {};
  for (const [name, v] of p.value) {
    if (!(XFORWARD_ATTRIBUTES as readonly string[]).includes(name)) return bad(`bad XFORWARD attribute name: ${name.slice(0, 40)}`);
    const key = name.toLowerCase() as Lowercase<XforwardName>;
    if (isUnavailable(v)) { a[key] = null; continue; }
    if (!FORWARD_VALUE.test(v) || FORWARD_SPECIAL.test(v)) return bad(`bad XFORWARD ${name} syntax`);
    let value = v;
    if (key === 'addr') {
      const bare = v.replace(/^ipv6:/i, '');
      value = canonicalIp(bare) ?? bare;
    } else if (key === 'port') {
      if (port(v) === undefined) return bad('bad XFORWARD PORT syntax');
    } else if (key === 'proto') {
      if (v.length > 64) return bad('bad XFORWARD PROTO syntax (at most 64 characters)');
    } else if (key === 'source') {
      value = v.toUpperCase();
      if (value !== 'LOCAL' && value !== 'REMOTE') return bad('bad XFORWARD SOURCE syntax (LOCAL or REMOTE)');
    }
    a[key] = value;
  }
  return { ok: true, value: a };
}
