/**
 * Inbound parse: one stored message turned into the JSON document the http transport POSTs
 * (src/local/http-agent.ts), like SendGrid's and Mailgun's inbound parse webhooks. The MIME
 * structure is read by mailparser's simpleParser (text and HTML decoded to Unicode, attachments
 * decoded); the header fields, as written, by rfc5322/header.ts.
 *
 * The document (`InboundPayload`; every field present, null or [] when the message has none):
 *
 *   queueId, size (the stored message, bytes),
 *   envelope: { mailFrom ("" for the null reverse-path), rcptTo: [addresses of this request] },
 *   headers: [{ name, value }]: every field of the top-level header section in order, name as
 *            written, value unfolded (RFC 5322 2.2.3) and trimmed, encoded words left as they are
 *            (RFC 2047), 8-bit bytes read as UTF-8 (RFC 6532),
 *   messageId, subject (encoded words decoded), date (ISO 8601 UTC, null when absent or not a date),
 *   from, to, cc, replyTo: [{ name, address }] (groups replaced by their members; name "" when none),
 *   text: the text/plain parts, html: the text/html parts (cid: links kept; no text made from HTML
 *         and no HTML from text, so null means the message has no such part),
 *   attachments: [{ filename, contentType, size (decoded bytes), contentId (without <>),
 *                   disposition ("attachment", "inline" or null), related (an inline part of
 *                   multipart/related), content (base64 of the decoded bytes) }],
 *   authenticationResults: the values of the Authentication-Results fields (RFC 8601), top first,
 *   auth: { authservId, spf, dkim, dmarc } from the topmost Authentication-Results field that
 *         claims our authserv-id (auth.authservId, else hostname: the one inbound verification
 *         writes and removes from incoming mail on mx listeners), each the method's result
 *         ("pass", "fail", "none", ...; dkim: "pass" when any signature passed, else the first
 *         result) or null; auth is null when no such field exists.
 *
 * Memory: the caller bounds the message size (local.http.maxBytes); the parser buffers the
 * attachments, so a parse costs a few times the message's size while it runs.
 */
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { simpleParser, type AddressObject, type Attachment, type EmailAddress, type ParsedMail } from 'mailparser';
import { PostlineError } from '../core/errors.js';
import { authservIdOf } from '../auth/results.js';
import { parseHeaderFields, type HeaderField } from '../rfc5322/header.js';

/** One mailbox of an address field. */
export interface InboundAddress {
  readonly name: string;
  readonly address: string;
}

/** One attachment as sent. */
export interface InboundAttachment {
  readonly filename: string | null;
  readonly contentType: string;
  /** Decoded size, bytes. */
  readonly size: number;
  readonly contentId: string | null;
  readonly disposition: string | null;
  readonly related: boolean;
  /** Base64 of the decoded content. */
  readonly content: string;
}

/** The results of our own verification, from our Authentication-Results field. */
export interface InboundAuthSummary {
  readonly authservId: string;
  readonly spf: string | null;
  readonly dkim: string | null;
  readonly dmarc: string | null;
}

/** The JSON document POSTed for one message (see the module comment). */
export interface InboundPayload {
  readonly queueId: string;
  readonly size: number;
  readonly envelope: { readonly mailFrom: string; readonly rcptTo: readonly string[] };
  readonly headers: readonly { readonly name: string; readonly value: string }[];
  readonly messageId: string | null;
  readonly subject: string | null;
  readonly date: string | null;
  readonly from: readonly InboundAddress[];
  readonly to: readonly InboundAddress[];
  readonly cc: readonly InboundAddress[];
  readonly replyTo: readonly InboundAddress[];
  readonly text: string | null;
  readonly html: string | null;
  readonly attachments: readonly InboundAttachment[];
  readonly authenticationResults: readonly string[];
  readonly auth: InboundAuthSummary | null;
}

/**
 * The message could not be parsed (mailparser refused it: more MIME parts or a longer part header
 * than it takes, or a malformed structure it gives up on). Code ERR_INBOUND_PARSE, permanent: the
 * same bytes fail again, so the agent bounces (554 5.6.0).
 */
export class InboundParseError extends PostlineError {
  constructor(message: string, cause?: unknown) {
    super('ERR_INBOUND_PARSE', message, { temporary: false, cause });
    this.name = 'InboundParseError';
  }
}

/** The message was longer than the limit while read. Code ERR_INBOUND_TOO_BIG, permanent (552 5.3.4). */
export class InboundTooBigError extends PostlineError {
  /** @param size the message's size when known (else it was found longer than `limit` while read). */
  constructor(readonly limit: number, size?: number) {
    super('ERR_INBOUND_TOO_BIG', `message too big for inbound parse (${size === undefined ? `more than ${limit} bytes` : `${size} bytes, the limit is ${limit}`})`, { temporary: false });
    this.name = 'InboundTooBigError';
  }
}

/** What parseInbound needs besides the body. */
export interface InboundInput {
  readonly queueId: string;
  readonly mailFrom: string;
  readonly rcptTo: readonly string[];
  /** The body stream (CRLF lines, as stored). */
  readonly body: Readable;
  /** The most bytes read; past it InboundTooBigError. */
  readonly maxBytes: number;
  /** Our authserv-id (auth.authservId or hostname), for `auth`. */
  readonly authservId: string;
  readonly signal?: AbortSignal;
}

/** Largest header section kept for `headers` (cleanup refuses longer ones), bytes. */
const HEADER_KEEP_LIMIT = 1024 * 1024 + 4;

/**
 * A pass-through that counts bytes (failing past `max`) and keeps the top-level header section
 * (up to the empty line, at most HEADER_KEEP_LIMIT bytes).
 */
class Tap extends Transform {
  bytes = 0;
  private head: Buffer[] = [];
  private headLen = 0;
  header: Buffer | undefined;

  constructor(private readonly max: number) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.max) return cb(new InboundTooBigError(this.max));
    if (!this.header) this.keepHead(chunk);
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    if (!this.header) this.header = Buffer.concat(this.head, this.headLen);
    this.head = [];
    cb();
  }

  private keepHead(chunk: Buffer): void {
    // Look for the end from 3 bytes before this chunk, so a CRLFCRLF split across chunks is found.
    const from = Math.max(0, this.headLen - 3);
    this.head.push(chunk);
    this.headLen += chunk.length;
    const all = this.head.length === 1 ? this.head[0]! : Buffer.concat(this.head, this.headLen);
    const end = all.length >= 2 && all[0] === 0x0d && all[1] === 0x0a ? -2 : all.indexOf('\r\n\r\n', from);
    if (end !== -1) this.header = all.subarray(0, end + 2);
    else if (this.headLen > HEADER_KEEP_LIMIT) this.header = all.subarray(0, HEADER_KEEP_LIMIT);
    else if (this.head.length > 1) this.head = [all];
    if (this.header) this.head = [];
  }
}

/** A latin1-read header value as UTF-8 when its bytes are valid UTF-8, else as read. */
function utf8Value(v: string): string {
  if (!/[\x80-\xff]/.test(v)) return v;
  const b = Buffer.from(v, 'latin1');
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(b);
  } catch {
    return v;
  }
}

/** The mailboxes of an address field (groups flattened). */
function addresses(v: AddressObject | AddressObject[] | undefined): InboundAddress[] {
  const out: InboundAddress[] = [];
  const add = (e: EmailAddress): void => {
    if (e.group) e.group.forEach(add);
    else if (e.address !== undefined) out.push({ name: e.name ?? '', address: e.address });
  };
  for (const o of v === undefined ? [] : Array.isArray(v) ? v : [v]) o.value.forEach(add);
  return out;
}

/** One attachment as sent. */
function attachmentOf(a: Attachment): InboundAttachment {
  return {
    filename: a.filename ?? null,
    contentType: a.contentType,
    size: a.size,
    contentId: a.cid ?? (a.contentId ? a.contentId.replace(/^<|>$/g, '') : null),
    disposition: a.contentDisposition ?? null,
    related: a.related === true,
    content: a.content.toString('base64'),
  };
}

/**
 * The result of each method in an Authentication-Results value (RFC 8601 2.2: "method=result"
 * after the authserv-id, resinfo separated by ";"), in order. Comments and quoted strings are
 * skipped so a ";" or "=" inside them does not count.
 */
export function methodResults(value: string): Array<{ method: string; result: string }> {
  let s = '';
  let depth = 0;
  let quoted = false;
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!;
    if (c === '\\' && (depth > 0 || quoted)) { i++; continue; }
    if (quoted) { if (c === '"') quoted = false; continue; }
    if (depth > 0) { if (c === '(') depth++; else if (c === ')') depth--; continue; }
    if (c === '(') { depth = 1; s += ' '; continue; }
    if (c === '"') { quoted = true; s += '""'; continue; }
    s += c;
  }
  const out: Array<{ method: string; result: string }> = [];
  for (const part of s.split(';').slice(1)) {
    const m = /^\s*([A-Za-z0-9][A-Za-z0-9_.-]*)(?:\/\d+)?\s*=\s*([A-Za-z0-9_-]+)/.exec(part);
    if (m) out.push({ method: m[1]!.toLowerCase(), result: m[2]!.toLowerCase() });
  }
  return out;
}

/** The summary of the topmost Authentication-Results field claiming `authservId`, or null. */
export function authSummary(values: readonly string[], authservId: string): InboundAuthSummary | null {
  const ours = values.find((v) => authservIdOf(v) === authservId.toLowerCase());
  if (ours === undefined) return null;
  const rs = methodResults(ours);
  const first = (m: string): string | null => rs.find((r) => r.method === m)?.result ?? null;
  const dkim = rs.some((r) => r.method === 'dkim' && r.result === 'pass') ? 'pass' : first('dkim');
  return { authservId, spf: first('spf'), dkim, dmarc: first('dmarc') };
}

/** The Date field as ISO 8601, or null when absent or not a date (mailparser would give "now"). */
function dateOf(fields: readonly HeaderField[]): string | null {
  const f = fields.find((x) => x.name.toLowerCase() === 'date');
  if (!f) return null;
  const d = new Date(f.value.trim());
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}

/**
 * Reads and parses one message into its InboundPayload (see the module comment).
 * @throws InboundTooBigError past `maxBytes`; InboundParseError when mailparser gives up; the
 *         body stream's own error (a read failure: temporary) or an AbortError as they come.
 */
export async function parseInbound(input: InboundInput): Promise<InboundPayload> {
  const tap = new Tap(input.maxBytes);
  const { body, signal } = input;
  let sourceError: unknown;
  const fail = (err: unknown): void => {
    if (sourceError === undefined) sourceError = err;
    tap.destroy(err as Error);
  };
  const onAbort = (): void => fail(Object.assign(new Error('delivery aborted'), { name: 'AbortError', code: 'ABORT_ERR' }));
  body.once('error', fail);
  if (signal?.aborted) onAbort();
  else signal?.addEventListener('abort', onAbort, { once: true });
  let mail: ParsedMail;
  try {
    body.pipe(tap);
    mail = await simpleParser(tap, { keepCidLinks: true, skipHtmlToText: true, skipTextToHtml: true, skipTextLinks: true, checksumAlgo: false });
  } catch (err) {
    if (sourceError !== undefined) throw sourceError;
    if (err instanceof InboundTooBigError) throw err;
    throw new InboundParseError(`cannot parse the message: ${(err as Error)?.message ?? String(err)}`, err);
  } finally {
    signal?.removeEventListener('abort', onAbort);
    body.destroy();
    tap.destroy();
  }
  if (sourceError !== undefined) throw sourceError;
  const fields = parseHeaderFields(tap.header ?? Buffer.alloc(0));
  const headers = fields.map((f) => ({ name: f.name, value: utf8Value(f.value.trim()) }));
  const authenticationResults = headers.filter((h) => h.name.toLowerCase() === 'authentication-results').map((h) => h.value);
  return {
    queueId: input.queueId,
    size: tap.bytes,
    envelope: { mailFrom: input.mailFrom, rcptTo: [...input.rcptTo] },
    headers,
    messageId: mail.messageId ?? null,
    subject: mail.subject ?? null,
    date: dateOf(fields),
    from: addresses(mail.from),
    to: addresses(mail.to),
    cc: addresses(mail.cc),
    replyTo: addresses(mail.replyTo),
    text: mail.text ?? null,
    html: typeof mail.html === 'string' ? mail.html : null,
    attachments: mail.attachments.map(attachmentOf),
    authenticationResults,
    auth: authSummary(authenticationResults, input.authservId),
  };
}
