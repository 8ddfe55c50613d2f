/**
 * A synchronous composer for the common POST /api/v1/messages: text, html or both, no
 * attachments. Its output is byte for byte what nodemailer's MailComposer (compose.ts) makes of
 * the same fields (test/unit/http/compose-fast.test.ts compares the two on generated input), but
 * without MailComposer's tree of streams: one string, built in one pass (issue 7, "Figures for
 * the note": composing was the largest API-only cost per message).
 *
 * The layout is MailComposer's: a single text/plain or text/html part, or multipart/alternative
 * with both (RFC 2046 5.1.4); header fields in its order, folded at 76 characters (RFC 5322
 * 2.2.3); bodies 7bit when they are plain ASCII with short lines, otherwise quoted-printable or
 * base64 (RFC 2045 6.7, 6.8), chosen as MailComposer chooses. Every value that is not plain
 * ASCII (non-ASCII or quoted names, encoded-word look-alikes, UTF-8 addresses, long lines) is
 * encoded by nodemailer's own public functions (MimeNode#encodeHeaderValue for RFC 2047 encoded
 * words and punycode, mime-funcs foldLines, qp), so only the plain cases are written here.
 */
import MimeNode from 'nodemailer/lib/mime-node';
import { foldLines } from 'nodemailer/lib/mime-funcs';
import * as qp from 'nodemailer/lib/qp';
import { pooledRandomBytes } from '../core/random.js';
import { nameAndAddress, type AddressInput, type SendMessageInput } from './schemas.js';

/** What composeFast needs of the request (the validated JSON). */
export type FastInput = Pick<SendMessageInput, 'from' | 'to' | 'cc' | 'replyTo' | 'subject' | 'text' | 'html' | 'headers'> & {
  readonly attachments: readonly unknown[];
};

/** Options of composeFast; the defaults are what a request gets, tests pass fixed values. */
export interface FastOptions {
  /** The Message-ID to write when `headers` has none, angle brackets included. */
  readonly messageId: string;
  /** The Date field's time (default now). */
  readonly date?: Date;
  /** The shared part of multipart boundaries (default 8 random bytes in hex, as MailComposer). */
  readonly baseBoundary?: string;
}

/** One encoder node for the header values that need nodemailer's encoding (it keeps no state between calls). */
const encoder = new MimeNode(false);

/** Header fields whose values nodemailer encodes by their own rules (addresses, msg-ids, dates...). */
const STRUCTURED = new Set(['From', 'Sender', 'To', 'Cc', 'Bcc', 'Reply-To', 'Message-ID', 'In-Reply-To', 'Content-ID', 'OTP-Token', 'References', 'Date']);
/** Fields MailComposer treats apart when it builds the header (parsed parameters, dropped Bcc): such requests take the full path. */
const NOT_HERE = new Set(['Content-Type', 'Content-Disposition', 'Content-Transfer-Encoding', 'MIME-Version', 'Bcc']);

/** Printable ASCII without '"' and without "=?": nodemailer leaves such a value as it is. */
const PLAIN_VALUE = /^[\x20\x21\x23-\x7e]*$/;
/** A local part written as is by every path of nodemailer (a dot-atom of these characters). */
const SIMPLE_LOCAL = /^[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*$/;
/** A host name label starting with a letter (no IPv4 look-alike, no A-label: those are mapped). */
const SIMPLE_LABEL = /^[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
/** A display name nodemailer writes without quotes. */
const BARE_NAME = /^[\w ]*$/;

const keyCache = new Map<string, string>();

/**
 * The field name as MailComposer writes it: lower case, then the first letter and each letter
 * after a '-' in upper case; MIME, DKIM, ARC, BIMI as a first word, and a last word SPF, FBL, ID
 * or MD5, in capitals; X-SMTPAPI, OTP-Token and Content-features as they are spelt.
 * `key` is a validated field name (printable ASCII without ':').
 */
export function fieldName(key: string): string {
  const hit = keyCache.get(key);
  if (hit !== undefined) return hit;
  const k = key.toLowerCase();
  let out: string;
  if (k === 'x-smtpapi') out = 'X-SMTPAPI';
  else if (k === 'otp-token') out = 'OTP-Token';
  else if (k === 'content-features') out = 'Content-features';
  else {
    let i = 0;
    out = '';
    const lead = /^(mime|dkim|arc|bimi)(?![a-z0-9_])/.exec(k);
    if (lead) { out = lead[1]!.toUpperCase(); i = lead[1]!.length; }
    else if (k.charCodeAt(0) >= 0x61 && k.charCodeAt(0) <= 0x7a) { out = k[0]!.toUpperCase(); i = 1; }
    for (; i < k.length; i++) {
      const c = k[i]!;
      if (c !== '-') { out += c; continue; }
      const rest = k.slice(i + 1);
      if (rest === 'spf' || rest === 'fbl' || rest === 'id' || rest === 'md5') { out += '-' + rest.toUpperCase(); break; }
      const n = k.charCodeAt(i + 1);
      if (n >= 0x61 && n <= 0x7a) { out += '-' + k[i + 1]!.toUpperCase(); i++; } else out += '-';
    }
  }
  if (keyCache.size >= 1000) keyCache.clear();
  keyCache.set(key, out);
  return out;
}

/** local@domain as nodemailer writes a simple address (domain in lower case), or undefined when it is not simple. */
function simpleAddress(address: string): string | undefined {
  const at = address.lastIndexOf('@');
  if (at <= 0 || !SIMPLE_LOCAL.test(address.slice(0, at))) return undefined;
  const domain = address.slice(at + 1);
  if (domain.length > 253) return undefined;
  for (const label of domain.split('.')) {
    if (!SIMPLE_LABEL.test(label) || /^xn--/i.test(label)) return undefined;
  }
  return address.slice(0, at) + '@' + domain.toLowerCase();
}

/** The value MailComposer is given for an address: the bare address, or { name, address } when it has a name. */
export const nodemailerAddress = (a: AddressInput): string | { name: string; address: string } => {
  const p = nameAndAddress(a);
  return p.name ? p : p.address;
};

/** An address field's value as nodemailer encodes it: written here when every address is simple, else by nodemailer. */
function addressValue(key: string, list: readonly AddressInput[]): string {
  const out: string[] = [];
  for (const a of list) {
    const p = nameAndAddress(a);
    const addr = simpleAddress(p.address);
    if (addr === undefined || !BARE_NAME.test(p.name)) {
      return encoder.encodeHeaderValue(key, list.map(nodemailerAddress));
    }
    out.push(p.name ? `${p.name} <${addr}>` : addr);
  }
  return out.join(', ');
}

/** One field line, folded as MimeNode folds (at 76 characters). */
const line = (name: string, value: string): string => {
  const l = `${name}: ${value}`;
  return l.length < 76 ? l : foldLines(l, 76);
};

/** True when some line (split at CR or LF) is longer than `max` characters. */
function hasLongLine(s: string, max: number): boolean {
  let start = 0;
  let cr = s.indexOf('\r');
  let lf = s.indexOf('\n');
  for (;;) {
    const end = cr < 0 ? lf : lf < 0 ? cr : Math.min(cr, lf);
    if ((end < 0 ? s.length : end) - start > max) return true;
    if (end < 0) return false;
    start = end + 1;
    if (end === cr) cr = s.indexOf('\r', start);
    else lf = s.indexOf('\n', start);
  }
}

/** Characters that keep a text from being sent 7bit (MailComposer's test: C0 controls but TAB/LF/CR, and non-ASCII). */
const NOT_PLAIN = /[\x00-\x08\x0b\x0c\x0e-\x1f\u0080-\uffff]/;

/** The transfer encoding MailComposer picks for a text part and the encoded body. */
function encodeText(content: string): { cte: string; body: string } {
  if (!NOT_PLAIN.test(content) && content.length <= 128 * 1024 && !hasLongLine(content, 76)) return { cte: '7bit', body: content };
  // More Latin letters than controls and non-ASCII: quoted-printable, else base64.
  let latin = 0, other = 0;
  for (let i = 0; i < content.length; i++) {
    const c = content.charCodeAt(i);
    if (c >= 0x80 || c <= 0x08 || c === 0x0b || c === 0x0c || (c >= 0x0e && c <= 0x1f)) other++;
    else if ((c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a)) latin++;
  }
  const bytes = Buffer.from(content, 'utf8');
  return other < latin ? { cte: 'quoted-printable', body: quotedPrintable(bytes) } : { cte: 'base64', body: base64Lines(bytes) };
}

/** base64 in lines of 76 characters joined by CRLF, no line break after the last (RFC 2045 6.8). */
function base64Lines(b: Buffer): string {
  const s = b.toString('base64');
  if (s.length <= 76) return s;
  const parts: string[] = [];
  for (let i = 0; i < s.length; i += 76) parts.push(s.slice(i, i + 76));
  return parts.join('\r\n');
}

const SLICE = 64 * 1024;
const isWsp = (c: number | undefined): boolean => c === 0x20 || c === 0x09;

/**
 * Quoted-printable as nodemailer's streaming encoder writes a text part given in one piece
 * (RFC 2045 6.7): trailing white space held back to the end, the input encoded 64 KiB at a
 * time, each piece soft-wrapped at 76 with the last unfinished line carried into the next.
 */
function quotedPrintable(b: Buffer): string {
  let end = b.length;
  while (end > 0 && isWsp(b[end - 1])) end--;
  if (b.length - end > SLICE) end = b.length; // the encoder holds back at most one piece
  let out = '';
  let cur = '';
  const pieces = (buf: Buffer): void => {
    for (let start = 0; start < buf.length; start += SLICE) {
      const stop = Math.min(start + SLICE, buf.length);
      let enc = qp.encode(buf.subarray(start, stop));
      // qp.encode treats the piece's end as the end of the input: white space there is encoded,
      // where the streaming encoder, seeing the next byte, keeps it when no line break follows.
      const next = stop < buf.length ? buf[stop] : undefined;
      if (isWsp(buf[stop - 1]) && next !== undefined && next !== 0x0a && next !== 0x0d) enc = enc.slice(0, -3) + String.fromCharCode(buf[stop - 1]!);
      const wrapped = qp.wrap(cur + enc, 76);
      const lf = wrapped.lastIndexOf('\n');
      cur = wrapped.slice(lf + 1);
      out += wrapped.slice(0, lf + 1);
    }
  };
  pieces(b.subarray(0, end));
  if (end < b.length) pieces(b.subarray(end));
  return out + cur;
}

/** A LF without a CR before it (the start of `s` counts as no CR). */
const BARE_LF = /(?:^|[^\r])\n/;

/**
 * One text part: its Content-Type and Content-Transfer-Encoding and its body, every bare LF made
 * CRLF (MailComposer's last stage does so over the whole message; only bodies can hold one).
 */
function part(type: 'text/plain' | 'text/html', content: string): { fields: string[]; body: string } {
  const e = encodeText(content);
  const body = BARE_LF.test(e.body) ? e.body.replace(/\r?\n/g, '\r\n') : e.body;
  return { fields: [`Content-Type: ${type}; charset=utf-8`, `Content-Transfer-Encoding: ${e.cte}`], body };
}

/** True when composeFast can build this message (no attachments; text and html non-empty when given; no field MailComposer treats apart). */
export function fastComposable(m: FastInput): boolean {
  if (m.attachments.length) return false;
  if (m.text === '' || m.html === '' || (m.text === undefined && m.html === undefined)) return false;
  for (const [k, v] of Object.entries(m.headers ?? {})) {
    const name = fieldName(k);
    // An empty Message-ID or Date counts as none for MailComposer, which then writes its own in that place.
    if (NOT_HERE.has(name) || ((name === 'Message-ID' || name === 'Date') && v === '')) return false;
  }
  return true;
}

/**
 * Builds the message as MailComposer would (see the file's comment); call only when
 * fastComposable(m). @returns the message (CRLF line endings, ending in CRLF) and its Message-ID
 * value as MailComposer reports it (the `headers` one as given, else opts.messageId).
 */
export function composeFast(m: FastInput, opts: FastOptions): { body: Buffer; messageId: string } {
  const fields: string[] = [];
  let messageId: string | undefined;
  let hasDate = false;
  for (const [k, v] of Object.entries(m.headers ?? {})) {
    const name = fieldName(k);
    if (name === 'Message-ID' && messageId === undefined) messageId = v;
    if (name === 'Date') hasDate = true;
    const value = STRUCTURED.has(name) || !PLAIN_VALUE.test(v) || v.includes('=?') ? encoder.encodeHeaderValue(name, v) : v;
    if (value.trim()) fields.push(line(name, value));
  }
  const address = (name: string, list: readonly AddressInput[]): void => {
    if (!list.length) return;
    const value = addressValue(name, list);
    if (value.trim()) fields.push(line(name, value));
  };
  address('From', [m.from]);
  address('To', m.to);
  address('Cc', m.cc);
  if (m.replyTo !== undefined) address('Reply-To', Array.isArray(m.replyTo) ? m.replyTo : [m.replyTo]);
  if (m.subject) {
    const s = PLAIN_VALUE.test(m.subject) && !m.subject.includes('=?') ? m.subject : encoder.encodeHeaderValue('Subject', m.subject);
    if (s.trim()) fields.push(line('Subject', s));
  }
  if (messageId === undefined) {
    messageId = opts.messageId;
    fields.push(line('Message-ID', /^<[\x20-\x7e]*>$/.test(messageId) ? messageId : encoder.encodeHeaderValue('Message-ID', messageId)));
  }
  const date = `Date: ${(opts.date ?? new Date()).toUTCString().replace('GMT', '+0000')}`;
  let out: string;
  if (m.text !== undefined && m.html !== undefined) {
    const boundary = `--_NmP-${opts.baseBoundary ?? pooledRandomBytes(8).toString('hex')}-Part_1`;
    if (!hasDate) fields.push(date);
    fields.push('MIME-Version: 1.0', line('Content-Type', `multipart/alternative; boundary="${boundary}"`));
    const t = part('text/plain', m.text), h = part('text/html', m.html);
    out = `${fields.join('\r\n')}\r\n\r\n--${boundary}\r\n${t.fields.join('\r\n')}\r\n\r\n${t.body}`
      + `\r\n--${boundary}\r\n${h.fields.join('\r\n')}\r\n\r\n${h.body}\r\n--${boundary}--\r\n`;
  } else {
    const p = m.text !== undefined ? part('text/plain', m.text) : part('text/html', m.html!);
    fields.push(p.fields[1]!);
    if (!hasDate) fields.push(date);
    fields.push('MIME-Version: 1.0', p.fields[0]!);
    out = `${fields.join('\r\n')}\r\n\r\n${p.body}`;
  }
  // As MailComposer's last stage: the message ends in a line break (bare LFs are gone, see part()).
  if (!out.endsWith('\n')) out += out.endsWith('\r') ? '\n' : '\r\n';
  return { body: Buffer.from(out, 'utf8'), messageId };
}
