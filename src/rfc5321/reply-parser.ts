/**
 * Incremental parser of SMTP server replies, used by the outbound client.
 *
 * RFCs: RFC 5321 4.2 (reply grammar, multi-line replies "250-..." / "250 ..."), 4.5.3.1.5 (reply
 * line length), RFC 2034 / RFC 3463 (enhanced status codes on each line).
 *
 * Owns: turning the byte stream from a server into `SmtpReply` values, bounded in line length and
 * line count. A malformed reply is reported as a `ReplyParseError` value (never thrown); the client
 * turns it into a deferral.
 */
import type { SmtpReply } from '../core/reply.js';

/** Default longest reply line accepted, bytes without CRLF (RFC 5321 says 512; real servers exceed it). */
export const DEFAULT_MAX_REPLY_LINE = 8192;
/** Default most lines in one multi-line reply (a long EHLO reply has ~20). */
export const DEFAULT_MAX_REPLY_LINES = 512;

/** A server reply that does not follow RFC 5321 4.2 (bad code, mixed codes, too long). */
export class ReplyParseError extends Error {
  readonly code = 'ERR_SMTP_REPLY_MALFORMED';
  constructor(message: string, readonly excerpt: string) {
    super(message);
    this.name = 'ReplyParseError';
  }
}

/** What one `push` produced: complete replies in order, and the error that stopped the parser, if any. */
export interface ReplyParseResult {
  readonly replies: SmtpReply[];
  readonly error?: ReplyParseError;
}

export interface ReplyParserOptions {
  /** Longest line, bytes without CRLF (default 8192). */
  readonly maxLineLength?: number;
  /** Most lines per reply (default 512). */
  readonly maxLines?: number;
}

const ENHANCED_RE = /^([245])\.(\d{1,3})\.(\d{1,3})(?= |$)/;
const LINE_RE = /^([2-5][0-9][0-9])([ -]?)(.*)$/s;

/**
 * Extracts an RFC 3463 enhanced status code from the start of reply text when its class matches the
 * reply code's first digit (RFC 2034 section 3). Returns the code and the text after it.
 */
export function extractEnhanced(code: number, text: string): { enhanced?: string; text: string } {
  const m = ENHANCED_RE.exec(text);
  if (!m || Number(m[1]) !== Math.floor(code / 100)) return { text };
  return { enhanced: m[0], text: text.slice(m[0].length).replace(/^ /, '') };
}

/**
 * Incremental reply parser. Feed it bytes with `push(chunk)`; it returns each reply as soon as its
 * last line ("xyz " or "xyz" + CRLF) arrives. Bare LF line endings are tolerated. After an error the
 * parser is stopped and returns the same error for every later push. Never throws.
 */
export class ReplyParser {
  private readonly maxLineLength: number;
  private readonly maxLines: number;
  private partial: Buffer[] = [];
  private partialLen = 0;
  private lines: string[] = [];
  private code = 0;
  private failed?: ReplyParseError;

  constructor(opts: ReplyParserOptions = {}) {
    this.maxLineLength = opts.maxLineLength ?? DEFAULT_MAX_REPLY_LINE;
    this.maxLines = opts.maxLines ?? DEFAULT_MAX_REPLY_LINES;
  }

  /** The error that stopped the parser, if any. */
  get error(): ReplyParseError | undefined { return this.failed; }

  /** True when part of a reply has been received but not its last line. */
  get pending(): boolean { return this.partialLen > 0 || this.lines.length > 0; }

  /** Parses more bytes; returns the replies completed by them (RFC 5321 4.2.1). */
  push(chunk: Buffer): ReplyParseResult {
    if (this.failed) return { replies: [], error: this.failed };
    const replies: SmtpReply[] = [];
    let start = 0;
    let nl = chunk.indexOf(0x0a, start);
    while (nl !== -1) {
      const piece = chunk.subarray(start, nl);
      const line = this.partialLen ? Buffer.concat([...this.partial, piece]) : piece;
      this.partial = [];
      this.partialLen = 0;
      const end = line.length > 0 && line[line.length - 1] === 0x0d ? line.length - 1 : line.length;
      if (end > this.maxLineLength) return this.fail('reply line too long', line.subarray(0, 80), replies);
      const r = this.takeLine(line.toString('utf8', 0, end));
      if (r instanceof ReplyParseError) return { replies, error: r };
      if (r) replies.push(r);
      start = nl + 1;
      nl = chunk.indexOf(0x0a, start);
    }
    if (start < chunk.length) {
      const rest = chunk.subarray(start);
      this.partial.push(Buffer.from(rest));
      this.partialLen += rest.length;
      if (this.partialLen > this.maxLineLength + 1) return this.fail('reply line too long', rest.subarray(0, 80), replies);
    }
    return { replies };
  }

  private fail(message: string, excerpt: Buffer | string, replies: SmtpReply[]): ReplyParseResult {
    const text = typeof excerpt === 'string' ? excerpt : excerpt.toString('latin1');
    this.failed = new ReplyParseError(message, text.replace(/[^\x20-\x7e]/g, '?').slice(0, 80));
    return { replies, error: this.failed };
  }

  /** One complete line: returns a finished reply, undefined (more lines follow) or an error. */
  private takeLine(line: string): SmtpReply | ReplyParseError | undefined {
    const m = LINE_RE.exec(line);
    if (!m || (m[2] === '' && m[3] !== '')) {
      this.fail('malformed reply line', line, []);
      return this.failed;
    }
    const code = Number(m[1]);
    if (this.lines.length > 0 && code !== this.code) {
      this.fail(`reply code changed inside a multi-line reply (${this.code} then ${code})`, line, []);
      return this.failed;
    }
    this.code = code;
    this.lines.push(m[3]);
    if (m[2] === '-') {
      if (this.lines.length >= this.maxLines) {
        this.fail('too many lines in one reply', line, []);
        return this.failed;
      }
      return undefined;
    }
    const raw = this.lines;
    this.lines = [];
    return buildReply(code, raw);
  }
}

/** Builds the reply value: the enhanced code comes from the first line and is stripped from each line. */
function buildReply(code: number, raw: readonly string[]): SmtpReply {
  const first = extractEnhanced(code, raw[0] ?? '');
  const enhanced = first.enhanced;
  const lines = raw.map((l, i) => {
    if (i === 0) return first.text;
    if (enhanced && l.startsWith(enhanced) && (l.length === enhanced.length || l[enhanced.length] === ' ')) {
      return l.slice(enhanced.length + 1);
    }
    return l;
  });
  return enhanced ? { code, enhanced, lines } : { code, lines };
}
