/**
 * The DSN builder: a delivery status notification as a multipart/report message.
 *
 * RFCs: RFC 3464 (message/delivery-status), RFC 6522 (multipart/report), RFC 6533 (message/global,
 * message/global-delivery-status, message/global-headers for SMTPUTF8 originals), RFC 3834 5
 * (Auto-Submitted: auto-replied), RFC 5322 (header fields, CRLF, 998-octet lines), RFC 2045/2046.
 *
 * Owns: the message layout. It does not decide whether a DSN is due (the scheduler does), nor
 * bound how much of the original is returned (the caller passes what to attach).
 */
import { PostlineError, StateError } from '../core/errors.js';
import { randomBytes } from 'node:crypto';
import type { DsnInput } from './types.js';
import { formatDate, foldHeaderLine, makeMessageId } from '../rfc5322/format.js';
import { headerSection } from '../rfc5322/header.js';
import { cleanText, deliveryStatusBody } from './dsn-fields.js';
import type { DsnKind } from '../core/envelope.js';
import { dsnKind, dsnSubject, humanText } from './dsn-text.js';

export { dsnKind, dsnSubject, type DsnKind };

/** True when the buffer has a byte above 0x7F (the part needs Content-Transfer-Encoding: 8bit). */
export function hasEightBit(b: Buffer): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] > 0x7f) return true;
  return false;
}

/** A boundary that does not occur in `content` (RFC 2046 5.1.1: at most 70 characters). */
function pickBoundary(content: Buffer): string {
  for (let i = 0; i < 16; i++) {
    const b = `=_postline_dsn_${randomBytes(12).toString('hex')}`;
    if (content.indexOf(b) < 0) return b;
  }
  throw new PostlineError('ERR_INTERNAL', 'could not pick a MIME boundary');
}

function headerField(name: string, value: string): string {
  return foldHeaderLine(`${name}: ${value}`) + '\r\n';
}

interface Part {
  readonly headers: string;
  readonly body: Buffer;
}

/** The third part: the original (FULL) or its header section (HDRS), with matching media type. */
function originalPart(input: DsnInput, global: boolean, kind: DsnKind): Part {
  const full = input.ret === 'FULL';
  const body = full ? input.original : headerSection(input.original);
  const type = full ? (global ? 'message/global' : 'message/rfc822') : (global ? 'message/global-headers' : 'text/rfc822-headers');
  const what = kind === 'failure' ? 'Undelivered Message' : kind === 'delay' ? 'Delayed Message' : 'Delivered Message';
  const desc = full ? what : `${what} Headers`;
  let headers = `Content-Description: ${desc}\r\nContent-Type: ${type}\r\n`;
  if (hasEightBit(body)) headers += 'Content-Transfer-Encoding: 8bit\r\n';
  return { headers, body };
}

/**
 * Builds an RFC 3464 DSN.
 * @param input see src/bounce/types.ts; times in ms since the epoch; `original` CRLF bytes (a full
 *        message, or only its header section; with ret HDRS only the header section is used).
 * @returns the complete message (CRLF line endings), starting with its header section. Outside
 *          the returned original it is 7-bit unless `input.smtputf8`; every line we write is at
 *          most 998 octets. Content-Transfer-Encoding: 8bit is declared when the attached original
 *          has 8-bit bytes (then send it with BODY=8BITMIME; check with `hasEightBit`).
 * @throws Error when `input.recipients` is empty.
 */
export function buildDsn(input: DsnInput): Buffer {
  if (!input.recipients.length) throw new StateError('a DSN needs at least one recipient report');
  const global = input.smtputf8 === true;
  const kind = dsnKind(input.recipients);
  const host = cleanText(input.reportingMta, false);
  const textBody = humanText(input, global);
  const textIs8bit = /[^\x00-\x7f]/.test(textBody);
  const reportType = global ? 'global-delivery-status' : 'delivery-status';
  const parts: Part[] = [
    {
      headers: 'Content-Description: Notification\r\n'
        + `Content-Type: text/plain; charset=${global ? 'utf-8' : 'us-ascii'}\r\n`
        + (textIs8bit ? 'Content-Transfer-Encoding: 8bit\r\n' : ''),
      body: Buffer.from(textBody, 'utf8'),
    },
    {
      headers: `Content-Description: Delivery report\r\nContent-Type: message/${reportType}\r\n`,
      body: Buffer.from(deliveryStatusBody(input, global), 'utf8'),
    },
    originalPart(input, global, kind),
  ];
  const eightBit = parts.some((p) => hasEightBit(p.body));
  const boundary = pickBoundary(Buffer.concat(parts.map((p) => p.body)));
  const to = cleanText(input.to, global);
  const head = headerField('From', `Mail Delivery System <MAILER-DAEMON@${host}>`)
    + headerField('To', `<${to}>`)
    + headerField('Subject', dsnSubject(kind))
    + headerField('Date', formatDate(input.now))
    + headerField('Message-ID', makeMessageId(cleanText(input.queueId, false), host))
    + 'Auto-Submitted: auto-replied\r\n'
    + 'MIME-Version: 1.0\r\n'
    + `Content-Type: multipart/report; report-type=${reportType};\r\n\tboundary="${boundary}"\r\n`
    + (eightBit ? 'Content-Transfer-Encoding: 8bit\r\n' : '')
    + '\r\n'
    + 'This is a MIME-encapsulated message.\r\n';
  const chunks: Buffer[] = [Buffer.from(head, 'utf8')];
  for (const p of parts) {
    chunks.push(Buffer.from(`\r\n--${boundary}\r\n${p.headers}\r\n`, 'ascii'), p.body);
  }
  chunks.push(Buffer.from(`\r\n--${boundary}--\r\n`, 'ascii'));
  return Buffer.concat(chunks);
}
