/**
 * Text helpers of the feedback parsers: transfer decoding (RFC 2045 6.7, 6.8), charsets,
 * RFC 2047 encoded words, tolerant header-style field parsing (RFC 5322 2.2 and the RFC 3464
 * field blocks, with the deviations real reports have: LF line ends, "Name : value"), addresses
 * in free text, and HTML to text. Nothing here throws on any input.
 */
import { createRequire } from 'node:module';
import { TextDecoder } from 'node:util';

const require = createRequire(import.meta.url);
/** libqp (a dependency) decodes quoted-printable; it ships no types. */
const libqp = require('libqp') as { decode(s: string | Buffer): Buffer };

/** Undoes a Content-Transfer-Encoding (base64, quoted-printable; others as they are). */
export function decodeTransfer(body: Buffer, encoding: string | undefined): Buffer {
  const e = (encoding ?? '').toLowerCase();
  try {
    if (e === 'base64') return Buffer.from(body.toString('latin1').replace(/[^A-Za-z0-9+/=]/g, ''), 'base64');
    if (e === 'quoted-printable') return libqp.decode(body);
  } catch { /* keep the bytes as they came */ }
  return body;
}

const decoders = new Map<string, TextDecoder | null>();
const utf8Fatal = new TextDecoder('utf-8', { fatal: true });

/** Bytes as UTF-8 when they are valid UTF-8, else as latin1 (every byte kept). */
export function bytesToText(buf: Buffer): string {
  if (isAscii(buf)) return buf.toString('latin1');
  try {
    return utf8Fatal.decode(buf);
  } catch {
    return buf.toString('latin1');
  }
}

function isAscii(buf: Buffer): boolean {
  for (let i = 0; i < buf.length; i++) if (buf[i]! >= 0x80) return false;
  return true;
}

/** Decodes bytes in `charset` (a MIME charset name); unknown or absent: UTF-8 if valid, else latin1. */
export function decodeCharset(buf: Buffer, charset: string | undefined): string {
  const label = (charset ?? '').trim().toLowerCase().replace(/^"|"$/g, '');
  if (!label || label === 'us-ascii' || label === 'ascii' || label === 'utf-8' || label === 'utf8') return bytesToText(buf);
  let d = decoders.get(label);
  if (d === undefined) {
    try {
      d = new TextDecoder(label);
    } catch {
      d = null;
    }
    if (decoders.size < 64) decoders.set(label, d);
  }
  if (!d) return bytesToText(buf);
  try {
    return d.decode(buf);
  } catch {
    return bytesToText(buf);
  }
}

const ENCODED_WORD = /=\?([^?\s]{1,40})\?([bBqQ])\?([^?\s]{0,1000})\?=/g;

/** Decodes RFC 2047 encoded words (B and Q); whitespace between adjacent words is dropped (6.2). */
export function decodeWords(s: string): string {
  if (!s.includes('=?')) return s;
  return s.replace(/(\?=)\s+(?==\?)/g, '$1').replace(ENCODED_WORD, (all, cs: string, enc: string, text: string) => {
    try {
      const bytes = enc.toLowerCase() === 'b'
        ? Buffer.from(text, 'base64')
        : Buffer.from(text.replace(/_/g, ' ').replace(/=([0-9A-Fa-f]{2})/g, (_m, h: string) => String.fromCharCode(parseInt(h, 16))), 'latin1');
      return decodeCharset(bytes, cs.split('*')[0]);
    } catch {
      return all;
    }
  });
}

/** One header-style field: lower-case name, unfolded and trimmed value. */
export interface Field {
  readonly name: string;
  readonly value: string;
}

const FIELD_LINE = /^([A-Za-z0-9][A-Za-z0-9_.\-]{0,75})[ \t]*:[ \t]?(.*)$/;

/**
 * Parses field blocks separated by empty lines (an RFC 3464 delivery-status body, an ARF
 * feedback-report body). Continuation lines (starting with SP or HTAB) are joined with one space;
 * other lines that are not fields are skipped. At most `maxFields` fields in all.
 */
export function fieldBlocks(text: string, maxFields = 2000): Field[][] {
  const blocks: Field[][] = [];
  let block: { name: string; value: string }[] = [];
  let count = 0;
  for (const line of text.split(/\r?\n|\r/)) {
    if (line.trim() === '') {
      if (block.length) blocks.push(block);
      block = [];
      continue;
    }
    const last = block[block.length - 1];
    if ((line[0] === ' ' || line[0] === '\t') && last) {
      last.value = `${last.value} ${line.trim()}`.trim();
      continue;
    }
    const m = FIELD_LINE.exec(line);
    if (!m) continue;
    if (++count > maxFields) break;
    block.push({ name: m[1]!.toLowerCase(), value: m[2]!.trim() });
  }
  if (block.length) blocks.push(block);
  return blocks;
}

/**
 * The fields of a header section: lines up to the first empty line. A line that is neither a
 * field nor a continuation ends the section when fields were seen (a body with no empty line).
 */
export function headerFields(text: string, maxFields = 500): Field[] {
  const out: { name: string; value: string }[] = [];
  for (const line of text.split(/\r?\n|\r/)) {
    if (line.trim() === '') {
      if (out.length) break;
      continue;
    }
    const last = out[out.length - 1];
    if ((line[0] === ' ' || line[0] === '\t') && last) {
      last.value = `${last.value} ${line.trim()}`.trim();
      continue;
    }
    const m = FIELD_LINE.exec(line);
    if (!m) {
      if (out.length) break;
      continue;
    }
    if (out.length >= maxFields) break;
    out.push({ name: m[1]!.toLowerCase(), value: m[2]!.trim() });
  }
  return out;
}

/** The first value of field `name` (lower case) in `fields`. */
export function firstField(fields: readonly Field[], name: string): string | undefined {
  for (const f of fields) if (f.name === name) return f.value;
  return undefined;
}

/** Every value of field `name` (lower case). */
export function allFields(fields: readonly Field[], name: string): string[] {
  const out: string[] = [];
  for (const f of fields) if (f.name === name) out.push(f.value);
  return out;
}

/**
 * An address field's value without its type and brackets: "rfc822; <a@b.example>" → "a@b.example"
 * (RFC 3464 2.3.1 address-type; "rfc/822;" and a missing type are taken too). A "utf-8" type's
 * \x{HH} escapes (RFC 6533 3) are decoded.
 */
export function stripAddressType(value: string): string {
  let v = value.trim();
  const semi = v.indexOf(';');
  let type = '';
  if (semi >= 0 && semi < 20 && /^[A-Za-z0-9/.\-]+$/.test(v.slice(0, semi).trim())) {
    type = v.slice(0, semi).trim().toLowerCase();
    v = v.slice(semi + 1).trim();
  }
  const angled = /<([^<>]*)>/.exec(v);
  if (angled) v = angled[1]!.trim();
  v = v.replace(/^["']|["']$/g, '').replace(/[.,;]+$/, '').replace(/^@[^:]*:/, '').trim(); // a source route (RFC 5321 4.1.2) dropped
  if (type === 'utf-8') v = v.replace(/\\x\{([0-9A-Fa-f]{1,6})\}/g, (_m, h: string) => String.fromCodePoint(parseInt(h, 16)));
  return v;
}

/** An RFC 3464 "type; text" value (Remote-MTA, Reporting-MTA, Diagnostic-Code) split; no type when it does not look like one. */
export function typedValue(value: string): { type?: string; text: string } {
  const semi = value.indexOf(';');
  if (semi > 0 && semi < 24) {
    const type = value.slice(0, semi).trim();
    if (/^[A-Za-z][A-Za-z0-9.\-]*$/.test(type)) return { type: type.toLowerCase(), text: value.slice(semi + 1).trim() };
  }
  return { text: value.trim() };
}

// Free text: a local part of letters, digits and !$'*+_.- only (URLs carry / ? = & around '@').
const ADDRESS = /[A-Za-z0-9!$'*+_][A-Za-z0-9!$'*+_.\-]{0,63}@[A-Za-z0-9](?:[A-Za-z0-9\-]{0,62}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]{0,62}[A-Za-z0-9])?)+/g;

/** A mailbox address with a dotted domain found in free text, and where it starts. */
export interface FoundAddress {
  readonly address: string;
  readonly index: number;
}

/** Addresses in `s` (addr-spec with a dotted domain; quoted local parts are not looked for). */
export function addressesIn(s: string): FoundAddress[] {
  const out: FoundAddress[] = [];
  ADDRESS.lastIndex = 0;
  for (let m = ADDRESS.exec(s); m; m = ADDRESS.exec(s)) {
    out.push({ address: m[0].replace(/\.+$/, ''), index: m.index });
    if (out.length >= 200) break;
  }
  return out;
}

/** The first address in a header value ("Name <a@b.example>", "a@b.example"); undefined when none. */
export function firstAddress(value: string | undefined): string | undefined {
  if (!value) return undefined;
  const angled = /<([^<>@\s]+@[^<>\s]+)>/.exec(value);
  if (angled) return angled[1];
  return addressesIn(value)[0]?.address ?? (/^[^\s@<>]+@[^\s@<>]+$/.test(value.trim()) ? value.trim() : undefined);
}

/** Rough text of an HTML part: scripts and styles dropped, tags to spaces or line ends, a few entities. Linear time. */
export function htmlToText(html: string): string {
  return withoutElements(html, ['script', 'style'])
    .replace(/<(?:br|\/p|\/div|\/tr|\/li|\/h\d)\b[^>]{0,1000}>/gi, '\n')
    .replace(/<[^>]{0,2000}>/g, ' ')
    .replace(/&nbsp;/g, ' ').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&amp;/g, '&')
    .replace(/[ \t]+/g, ' ')
    .replace(/\n\s*\n+/g, '\n\n');
}

/** `html` without the elements named (from "<name" to the next "</name", or to the end), by indexOf: no regex backtracking. */
function withoutElements(html: string, names: readonly string[]): string {
  const lower = html.toLowerCase();
  let out = '';
  let pos = 0;
  for (;;) {
    let start = -1;
    let name = '';
    for (const n of names) {
      const i = lower.indexOf(`<${n}`, pos);
      if (i >= 0 && (start < 0 || i < start)) {
        start = i;
        name = n;
      }
    }
    if (start < 0) return out + html.slice(pos);
    out += `${html.slice(pos, start)} `;
    const end = lower.indexOf(`</${name}`, start + name.length + 1);
    if (end < 0) return out;
    const close = lower.indexOf('>', end);
    pos = close < 0 ? html.length : close + 1;
  }
}

/** Collapses whitespace and cuts to `max` characters: a one-line diagnostic. */
export function oneLine(s: string, max = 1000): string {
  const t = s.replace(/\s+/g, ' ').trim();
  return t.length > max ? t.slice(0, max) : t;
}
