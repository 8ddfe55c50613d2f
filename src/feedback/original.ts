/**
 * The header section of the message a report is about: from its message/rfc822 part (RFC 3464
 * 2, RFC 5965 2 (c)), message/global (RFC 6532 3.7), text/rfc822-headers (RFC 6522 4) or
 * message/global-headers (RFC 6533 6.3), or, in other bounce formats, from the copy after a line
 * such as "------ This is a copy of the message, including all the headers. ------".
 * The X-Postline-* fields we add to outgoing mail are among the headers returned.
 */
import type { MimePart } from './mime.js';
import { bytesToText, decodeTransfer, decodeWords, headerFields, type Field } from './text.js';
import type { OriginalMessage } from './types.js';

const MAX_FIELDS = 200;
const MAX_VALUE = 2000;

/** Content types that enclose the original (whole, or its header section). */
export const ORIGINAL_TYPES = new Set([
  'message/rfc822', 'message/global', 'text/rfc822-headers', 'message/rfc822-headers', 'message/global-headers', 'text/rfc822',
]);

/** The original's header section from the first enclosing part; undefined when there is none or it holds no fields. */
export function originalFromParts(parts: readonly MimePart[]): OriginalMessage | undefined {
  for (const p of parts) {
    if (!ORIGINAL_TYPES.has(p.contentType)) continue;
    const text = bytesToText(decodeTransfer(p.body, p.encoding));
    const o = originalFromHeaderText(text);
    if (o) return o;
  }
  return undefined;
}

/**
 * Lines that start the copy of the original in a plain-text bounce (qmail, Exim, Sendmail,
 * Postfix, Exchange, Domino, IMail, ...); the header section is looked for after them.
 */
export const ORIGINAL_MARKER = new RegExp([
  String.raw`^\s*-{2,}\s*(?:Below this line is a copy of the message|Original message|Unsent message follows|This is a copy of the message|Returned Message|Original Message Header|The header of the original message|Message text follows|Original mail as follows)`,
  String.raw`^\s*(?:Original message follows|Original message headers|Message headers follow|Below is a copy of the original message|Included is a copy of the message header|The attachment contains the original mail headers|Original Message:|-+original mail info|\|-+ Message text follows|Original mail as follows|The original message headers)`,
].join('|'), 'im');

/**
 * The original's header section copied into a bounce's text after one of ORIGINAL_MARKER's
 * lines (or, when there is none, at the first line that starts a header section such as
 * "Received:" or "Return-Path:" after the report's text). Indentation common to the copied lines is removed.
 */
export function originalFromText(text: string): OriginalMessage | undefined {
  const m = ORIGINAL_MARKER.exec(text);
  let rest: string | undefined;
  if (m) rest = text.slice(m.index + m[0].length).replace(/^[^\n]*\n/, '');
  else {
    const h = /^[ \t]*(?:Received|Return-Path|Message-ID|From|Date)[ \t]*:/im.exec(text);
    if (h && h.index > 0) rest = text.slice(h.index);
  }
  if (rest === undefined) return undefined;
  return originalFromHeaderText(dedent(rest.slice(0, 256 * 1024)));
}

/** Where the report's own text ends and the copy of the original begins (an index into `text`). */
export function reportTextEnd(text: string): number {
  const m = ORIGINAL_MARKER.exec(text);
  return m ? m.index : text.length;
}

function dedent(s: string): string {
  const lines = s.split(/\r?\n/).slice(0, 400);
  let first = 0;
  while (first < lines.length && lines[first]!.trim() === '') first++;
  const ind = /^[ \t]*/.exec(lines[first] ?? '')![0];
  if (!ind) return lines.slice(first).join('\n');
  return lines.slice(first).map((l) => (l.startsWith(ind) ? l.slice(ind.length) : l.trimStart())).join('\n');
}

/** An OriginalMessage from a header section's text (needs at least two fields, or a Message-ID). */
export function originalFromHeaderText(text: string): OriginalMessage | undefined {
  const fields = headerFields(text, MAX_FIELDS);
  if (fields.length < 2 && !fields.some((f) => f.name === 'message-id')) return undefined;
  return toOriginal(fields);
}

function toOriginal(fields: readonly Field[]): OriginalMessage {
  const headers = Object.create(null) as Record<string, string>;
  for (const f of fields) {
    if (headers[f.name] !== undefined) continue;
    headers[f.name] = f.value.length > MAX_VALUE ? f.value.slice(0, MAX_VALUE) : f.value;
  }
  const subject = headers['subject'];
  return {
    ...(headers['message-id'] !== undefined ? { messageId: headers['message-id'] } : {}),
    ...(headers['from'] !== undefined ? { from: headers['from'] } : {}),
    ...(headers['to'] !== undefined ? { to: headers['to'] } : {}),
    ...(subject !== undefined ? { subject: decodeWords(subject) } : {}),
    ...(headers['date'] !== undefined ? { date: headers['date'] } : {}),
    headers,
  };
}
