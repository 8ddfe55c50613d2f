/**
 * The message as `postline sendmail` reads it from standard input, made ready for cleanup:
 *
 * - line endings: LF (cron, scripts), CRLF (PHP's headers), a lone CR (old Mac files) or any mix
 *   all become CRLF (RFC 5322 2.1; cleanup takes CRLF lines only); a last line without an end gets one;
 * - without -i, a line with only "." ends the input (sendmail's old convention; PHP passes -i);
 * - the header section ends at the first empty line; a first line that is not a header field
 *   starts the body (an empty line is put before it), and a leading mbox "From " line is dropped;
 * - Bcc: and Resent-Bcc: are removed (as Postfix's cleanup does, with or without -t);
 * - -t: the recipients of To/Cc/Bcc, or of Resent-To/Resent-Cc/Resent-Bcc when any of those is
 *   present (the recipients of the resending, as Postfix does);
 * - a missing From: is added from -F (or $NAME) and the sender address. Date: and Message-ID: are
 *   added by the server's cleanup when missing (RFC 6409 8.2, 8.3), not here.
 *
 * Owns: LineNormalizer and readMessage. Memory: the header section (at most MAX_HEADER_BYTES);
 * the body streams.
 */
import addressparser from 'nodemailer/lib/addressparser';
import { encodeWord } from 'nodemailer/lib/mime-funcs';
import { getHeaderFields, parseHeaderFields, withoutFields } from '../rfc5322/header.js';
import { EX, SendmailExit } from './sysexits.js';

/** Largest header section accepted, bytes (cleanup's own bound is the same). */
export const MAX_HEADER_BYTES = 1024 * 1024;

const CR = 0x0d;
const LF = 0x0a;
const CRLF = Buffer.from('\r\n');
const DOT = Buffer.from('.');

/** Streams bytes to CRLF lines; with `stopAtDot`, a line of only "." ends the input (`done`). */
export class LineNormalizer {
  /** The last byte was a CR whose line end was already written (a following LF belongs to it). */
  private afterCr = false;
  /** Bytes in the current line so far, and whether they are exactly ".". */
  private lineLen = 0;
  private lineIsDot = false;
  /** The current line so far is one "." at the end of the last chunk, not written yet (it may be the end). */
  private heldDot = false;
  /** A "." line was seen: everything after it is ignored. */
  done = false;

  constructor(private readonly stopAtDot: boolean) {}

  /** Normalizes one chunk. @returns the output pieces (views of `chunk` and CRLFs). */
  push(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    if (this.done || chunk.length === 0) return out;
    if (this.heldDot) {
      this.heldDot = false;
      if (chunk[0] === CR || chunk[0] === LF) { this.done = true; return out; }
      out.push(DOT);
    }
    let start = 0;
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk[i]!;
      if (c !== CR && c !== LF) {
        if (this.lineLen === 0) this.lineIsDot = c === 0x2e;
        else this.lineIsDot = false;
        this.lineLen++;
        this.afterCr = false;
        continue;
      }
      if (c === LF && this.afterCr) { // the LF of a CRLF whose end was written at the CR
        this.afterCr = false;
        start = i + 1;
        continue;
      }
      if (this.stopAtDot && this.lineLen === 1 && this.lineIsDot) { // the "." line is not content
        this.done = true;
        return out;
      }
      if (i > start) out.push(chunk.subarray(start, i));
      out.push(CRLF);
      this.afterCr = c === CR;
      this.lineLen = 0;
      this.lineIsDot = false;
      start = i + 1;
    }
    if (this.stopAtDot && this.lineLen === 1 && this.lineIsDot) this.heldDot = true; // the tail is that "."
    else if (start < chunk.length) out.push(chunk.subarray(start));
    return out;
  }

  /** At the end of input: a CRLF for a last line without one (and nothing after a "." line). */
  end(): Buffer[] {
    if (this.done || this.heldDot || this.lineLen === 0) return [];
    return [CRLF];
  }
}

/** The normalized chunks of `input`. */
export async function* normalizedChunks(input: AsyncIterable<Buffer | string>, stopAtDot: boolean): AsyncGenerator<Buffer> {
  const n = new LineNormalizer(stopAtDot);
  for await (const raw of input) {
    const chunk = typeof raw === 'string' ? Buffer.from(raw) : raw;
    const parts = n.push(chunk);
    if (parts.length) yield parts.length === 1 ? parts[0]! : Buffer.concat(parts);
    if (n.done) return; // the rest of standard input is not read (sendmail stops at the "." line)
  }
  const tail = n.end();
  if (tail.length) yield Buffer.concat(tail);
}

export interface MessageOptions {
  readonly ignoreDots: boolean;
  /** Collect the recipients of the header section (-t). */
  readonly extract: boolean;
  /** The address for an added From: field. */
  readonly fromAddress: string;
  /** The display name for an added From: field (-F, else $NAME). */
  readonly fullName?: string;
}

export interface ReadyMessage {
  /** The header section as sent on, CRLF lines, with the empty line that ends it. */
  readonly head: Buffer;
  /** -t: the addresses of To/Cc/Bcc (or Resent-*), as written (no domain added yet). */
  readonly headerRecipients: readonly string[];
  /** The body: the normalized bytes after the head. */
  readonly body: AsyncGenerator<Buffer>;
}

const FIELD_LINE = /^[\x21-\x39\x3b-\x7e]+[ \t]*:/;

/**
 * Reads the header section from `input` and prepares it (see the file comment); the body is left
 * to stream. @throws SendmailExit: EX_DATAERR for a header section over MAX_HEADER_BYTES, EX_IOERR when standard input fails.
 */
export async function readMessage(input: AsyncIterable<Buffer | string>, opts: MessageOptions): Promise<ReadyMessage> {
  const chunks = normalizedChunks(input, !opts.ignoreDots);
  const lines: string[] = []; // header lines (latin1: bytes kept)
  let acc: Buffer = Buffer.alloc(0);
  let rest: Buffer | undefined; // bytes of the body already read
  let headerBytes = 0;
  let first = true;
  outer: for (;;) {
    let r: IteratorResult<Buffer>;
    try {
      r = await chunks.next();
    } catch (err) {
      throw new SendmailExit(EX.IOERR, `cannot read standard input: ${(err as Error).message}`, { cause: err });
    }
    if (r.done) break;
    acc = acc.length ? Buffer.concat([acc, r.value]) : r.value;
    let from = 0;
    for (let nl = acc.indexOf(CRLF); nl >= 0; nl = acc.indexOf(CRLF, from)) {
      const line = acc.subarray(from, nl).toString('latin1');
      const next = nl + 2;
      if (first && line.startsWith('From ')) { first = false; from = next; continue; } // mbox separator
      first = false;
      if (line === '') { rest = acc.subarray(next); break outer; }
      const continuation = (line[0] === ' ' || line[0] === '\t') && lines.length > 0;
      if (!continuation && !FIELD_LINE.test(line)) { rest = acc.subarray(from); break outer; } // the body starts without an empty line
      lines.push(line);
      headerBytes += line.length + 2;
      if (headerBytes > MAX_HEADER_BYTES) throw new SendmailExit(EX.DATAERR, `the header section is over ${MAX_HEADER_BYTES} bytes`);
      from = next;
    }
    acc = acc.subarray(from);
    if (acc.length > MAX_HEADER_BYTES) throw new SendmailExit(EX.DATAERR, `the header section is over ${MAX_HEADER_BYTES} bytes`);
  }
  if (rest === undefined && acc.length) rest = acc; // input ended inside a line (cannot happen: the normalizer ends lines)
  let header: Buffer = Buffer.from(lines.length ? lines.join('\r\n') + '\r\n' : '', 'latin1');
  const fields = parseHeaderFields(header);
  const headerRecipients = opts.extract ? recipientsOf(fields) : [];
  header = withoutFields(header, (name) => name === 'bcc' || name === 'resent-bcc');
  if (getHeaderFields(fields, 'from').length === 0) header = Buffer.concat([header, Buffer.from(`From: ${fromField(opts.fromAddress, opts.fullName)}\r\n`, 'utf8')]);
  const head = Buffer.concat([header, CRLF]);
  async function* body(): AsyncGenerator<Buffer> {
    if (rest?.length) yield rest;
    try {
      for (;;) {
        const r = await chunks.next();
        if (r.done) return;
        yield r.value;
      }
    } catch (err) {
      throw new SendmailExit(EX.IOERR, `cannot read standard input: ${(err as Error).message}`, { cause: err });
    }
  }
  return { head, headerRecipients, body: body() };
}

/** To/Cc/Bcc addresses, or Resent-To/Cc/Bcc when the message has any (RFC 5322 3.6.6). */
function recipientsOf(fields: ReturnType<typeof parseHeaderFields>): string[] {
  const resent = ['resent-to', 'resent-cc', 'resent-bcc'].flatMap((n) => getHeaderFields(fields, n));
  const use = resent.length ? resent : ['to', 'cc', 'bcc'].flatMap((n) => getHeaderFields(fields, n));
  const out: string[] = [];
  for (const f of use) {
    const value = Buffer.from(f.value, 'latin1').toString('utf8');
    for (const a of addressparser(value, { flatten: true })) {
      const address = a.address || (/^[^\s@<>"(),;:]+$/.test(a.name) ? a.name : ''); // "To: root": a local user
      if (address) out.push(address);
    }
  }
  return out;
}

/** "Full Name <addr>" with the name quoted or RFC 2047-encoded as needed (RFC 5322 3.4), or the address alone. */
export function fromField(address: string, name: string | undefined): string {
  const n = name?.replace(/[\r\n]+/g, ' ').trim();
  if (!n) return address;
  let display: string;
  if (/[^\x20-\x7e]/.test(n)) display = encodeWord(n, 'Q', 52);
  else if (/^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~ ]+$/.test(n)) display = n;
  else display = `"${n.replace(/(["\\])/g, '\\$1')}"`;
  return `${display} <${address}>`;
}
