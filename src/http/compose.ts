/**
 * Composes the JSON of POST /api/v1/messages into an RFC 5322 / MIME message with nodemailer's
 * MailComposer (nodemailer/lib/mail-composer), and normalizes the raw messages of
 * POST /api/v1/messages/raw. Messages without attachments are built by compose-fast.ts, which
 * writes the same bytes as MailComposer without its streams.
 *
 * Only content given in the request is used: MailComposer's file and URL access is off and no
 * attachment is built from a path or URL. Bcc is not written into the header.
 */
import { isAscii } from 'node:buffer';
import MailComposer from 'nodemailer/lib/mail-composer';
import { pooledRandomBytes } from '../core/random.js';
import { composeFast, fastComposable, nodemailerAddress } from './compose-fast.js';
import { apiErrors } from './errors.js';
import { addressOf, type SendMessageInput } from './schemas.js';

/** What composeMessage returns. */
export interface ComposedMessage {
  /** The whole message, CRLF line endings. */
  readonly body: Buffer;
  /** The Message-ID field value, with angle brackets. */
  readonly messageId: string;
  /** Envelope recipients: to, cc, bcc, duplicates (in lower case) removed, in that order. */
  readonly recipients: readonly string[];
}

/** A new Message-ID value for `hostname` (RFC 5322 3.6.4). */
export function newMessageId(hostname: string): string {
  return `<${Date.now().toString(36)}.${pooledRandomBytes(12).toString('base64url')}@${hostname}>`;
}

/**
 * Builds the message: compose-fast.ts when it can (no attachments), else MailComposer; both
 * write the same bytes. The Message-ID is a `headers` one when given, else a new one on `hostname`.
 * @throws ApiError 400 when the input cannot be composed.
 */
export async function composeMessage(m: SendMessageInput, hostname: string): Promise<ComposedMessage> {
  const hasMessageId = Object.keys(m.headers ?? {}).some((k) => k.toLowerCase() === 'message-id');
  const messageId = hasMessageId ? undefined : newMessageId(hostname);
  let built: { body: Buffer; messageId: string };
  if (fastComposable(m)) {
    try {
      built = composeFast(m, { messageId: messageId ?? '' });
    } catch (err) {
      throw apiErrors.invalid([{ in: 'body', path: '', reason: `cannot compose the message: ${(err as Error).message}` }]);
    }
  } else {
    built = await composeWithMailComposer(m, messageId !== undefined ? { messageId } : {});
  }
  return { body: built.body, messageId: built.messageId, recipients: envelopeRecipients(m) };
}

/**
 * The message as nodemailer's MailComposer builds it (any input; the reference for compose-fast.ts).
 * @param opts messageId: the Message-ID field when `headers` has none (MailComposer makes one
 *        otherwise); baseBoundary: the shared part of the multipart boundaries (tests; default random).
 * @throws ApiError 400 when MailComposer refuses the input.
 */
export async function composeWithMailComposer(m: SendMessageInput, opts: { messageId?: string; baseBoundary?: string }): Promise<{ body: Buffer; messageId: string }> {
  const replyTo = m.replyTo === undefined ? undefined : Array.isArray(m.replyTo) ? m.replyTo.map(nodemailerAddress) : nodemailerAddress(m.replyTo);
  const composer = new MailComposer({
    from: nodemailerAddress(m.from),
    to: m.to.map(nodemailerAddress),
    cc: m.cc.map(nodemailerAddress),
    bcc: m.bcc.map(nodemailerAddress),
    ...(replyTo !== undefined ? { replyTo } : {}),
    ...(m.subject !== undefined ? { subject: m.subject } : {}),
    ...(m.text !== undefined ? { text: m.text } : {}),
    ...(m.html !== undefined ? { html: m.html } : {}),
    attachments: m.attachments.map((a) => ({
      filename: a.filename,
      content: Buffer.from(a.content, 'base64'),
      ...(a.contentType ? { contentType: a.contentType } : {}),
      ...(a.contentId ? { cid: a.contentId } : {}),
    })),
    headers: m.headers ?? {},
    ...(opts.messageId !== undefined ? { messageId: opts.messageId } : {}),
    ...(opts.baseBoundary !== undefined ? { baseBoundary: opts.baseBoundary } : {}),
    disableFileAccess: true,
    disableUrlAccess: true,
    newline: '\r\n',
  });
  const node = composer.compile();
  let body: Buffer;
  try {
    body = await new Promise<Buffer>((resolve, reject) => node.build((err, out) => (err ? reject(err) : resolve(out))));
  } catch (err) {
    throw apiErrors.invalid([{ in: 'body', path: '', reason: `cannot compose the message: ${(err as Error).message}` }]);
  }
  return { body, messageId: node.messageId() };
}

/** to, cc, bcc addresses in that order, duplicates (in lower case) removed. */
function envelopeRecipients(m: SendMessageInput): string[] {
  const seen = new Set<string>();
  const recipients: string[] = [];
  for (const a of [...m.to, ...m.cc, ...m.bcc]) {
    const addr = addressOf(a);
    const k = addr.toLowerCase();
    if (seen.has(k)) continue;
    seen.add(k);
    recipients.push(addr);
  }
  return recipients;
}

/**
 * A raw message as SMTP would store it: every line ending CRLF (a bare LF gets its CR, like the
 * listeners' `bareNewline: normalize`), ending in CRLF.
 * @throws ApiError 400 for a bare CR or a message without a header section.
 */
export function normalizeRaw(raw: Buffer): Buffer {
  if (raw.length === 0) throw apiErrors.invalid([{ in: 'body', path: 'raw', reason: 'empty message' }]);
  let needsFix = false;
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i];
    if (c === 0x0d) {
      if (raw[i + 1] !== 0x0a) throw apiErrors.invalid([{ in: 'body', path: 'raw', reason: 'bare CR in the message (lines end in CRLF)' }]);
      i++;
    } else if (c === 0x0a) {
      needsFix = true;
    }
  }
  let out = needsFix ? Buffer.from(raw.toString('latin1').replace(/\r?\n/g, '\r\n'), 'latin1') : raw;
  if (!(out.length >= 2 && out[out.length - 2] === 0x0d && out[out.length - 1] === 0x0a)) out = Buffer.concat([out, Buffer.from('\r\n')]);
  const firstLineEnd = out.indexOf('\r\n');
  const firstLine = out.subarray(0, firstLineEnd).toString('latin1');
  if (!/^[\x21-\x39\x3b-\x7e]+:/.test(firstLine)) throw apiErrors.invalid([{ in: 'body', path: 'raw', reason: 'the message must start with a header field (RFC 5322 2.2)' }]);
  return out;
}

/** True when any byte is 8-bit (BODY=8BITMIME). */
export function has8bit(b: Buffer): boolean {
  return !isAscii(b);
}

/** True when the header section (up to the first empty line) has a non-ASCII byte (SMTPUTF8 needed, RFC 6532). */
export function utf8InHeader(b: Buffer): boolean {
  const end = b.indexOf('\r\n\r\n');
  return has8bit(end < 0 ? b : b.subarray(0, end));
}
