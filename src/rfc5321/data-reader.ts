/**
 * Streaming decoder for the DATA body (RFC 5321 4.1.1.4 end of data, 4.5.2 transparency,
 * 4.5.3.1.6 line length, 2.3.8 lines end in CRLF).
 *
 * Owns: finding the end-of-data indicator CRLF "." CRLF exactly, dot-unstuffing, refusing bare CR
 * and bare LF (SMTP smuggling: "\n.\n", "\r\n.\n", "\n.\r\n", "\r.\r" can never end or split a
 * message), the line length and message size limits, and handing back the bytes after the end
 * (pipelined commands). State is a few counters: memory stays flat for any message or line length;
 * output chunks are slices of the input.
 */
import { R, type SmtpReply } from '../core/reply.js';

/** Why a message was refused; the reply is sent after the real end of data. */
export type DataErrorKind = 'bareLineEnding' | 'lineTooLong' | 'sizeExceeded';

export interface DataReaderOptions {
  /** Longest line, bytes without CRLF (after unstuffing). */
  readonly maxLineLength: number;
  /** Largest message, bytes (after unstuffing, CRLFs included). */
  readonly maxMessageSize: number;
}

/** Result of one `feed()`. */
export interface DataFeedResult {
  /** Message bytes decoded from this chunk (empty once an error is set). */
  readonly data: Buffer[];
  /** True when the end of data was found in this chunk. */
  readonly done: boolean;
  /** When done: the bytes after the end-of-data line (maybe empty). */
  readonly rest?: Buffer;
}

// Parser states in normal mode.
const LINE_START = 0; // after CRLF (or at the start of data)
const DOT = 1; // line began with '.'
const DOT_CR = 2; // "." CR at line start
const IN_LINE = 3;
const AFTER_CR = 4; // CR inside a line, LF expected

/** How many bytes of CRLF "." CRLF are already matched in each state (for the discard matcher). */
const MATCHED_IN_STATE = [2, 3, 4, 0, 1];
const CRLF = Buffer.from('\r\n');

/** One step of the matcher for CR LF "." CR LF; returns how many bytes are matched after `b`. */
function matchStep(m: number, b: number): number {
  if (b === 13) return m === 3 ? 4 : 1;
  if (b === 10) return m === 1 ? 2 : m === 4 ? 5 : 0;
  if (b === 0x2e && m === 2) return 3;
  return 0;
}

/** The reply for a refused message (RFC 5321 4.2.2 / 4.2.3, RFC 3463). */
export function dataErrorReply(kind: DataErrorKind): SmtpReply {
  if (kind === 'bareLineEnding') return R.bareLineEnding;
  return kind === 'lineTooLong' ? R.dataLineTooLong : R.sizeExceeded;
}

/**
 * Decoder for one DATA body, fed raw socket chunks in order.
 *
 * After a bare CR or LF the rest is discarded until the literal byte sequence CR LF "." CR LF;
 * other errors (line too long, size) keep parsing normally but emit nothing. `error` tells the
 * caller which reply to send once `done`.
 */
export class DataReader {
  private state = LINE_START;
  private discard = false;
  private matched = 0;
  private lineLen = 0;
  private finished = false;
  /** Bytes of the decoded message so far (CRLFs included). */
  size = 0;
  /** The first error (a bare line ending overrides the others), or undefined. */
  error: DataErrorKind | undefined;

  constructor(private readonly opts: DataReaderOptions) {}

  /**
   * Decodes one chunk. Must not be called again after a result with `done: true`.
   * @returns decoded bytes (slices of `chunk` or a shared CRLF), and `rest` once the end is found.
   * @throws Error when called after the end of data.
   */
  feed(chunk: Buffer): DataFeedResult {
    if (this.finished) throw new Error('DataReader: feed() after end of data');
    const out: Buffer[] = [];
    const n = chunk.length;
    let i = 0;
    while (i < n) {
      if (this.discard) {
        for (; i < n; i++) {
          this.matched = matchStep(this.matched, chunk[i]!);
          if (this.matched === 5) return this.end(out, chunk, i + 1);
        }
        break;
      }
      const b = chunk[i]!;
      switch (this.state) {
        case IN_LINE: {
          let j = i;
          while (j < n && chunk[j] !== 13 && chunk[j] !== 10) j++;
          if (j > i) this.content(chunk.subarray(i, j), out);
          i = j;
          if (i < n) {
            if (chunk[i] === 13) { this.state = AFTER_CR; i++; } else this.bare();
          }
          break;
        }
        case LINE_START:
          if (b === 0x2e) { this.state = DOT; i++; }
          else if (b === 13) { this.state = AFTER_CR; i++; }
          else if (b === 10) this.bare();
          else this.state = IN_LINE;
          break;
        case DOT: // the first '.' of a line is dropped (transparency, RFC 5321 4.5.2)
          if (b === 13) { this.state = DOT_CR; i++; }
          else if (b === 10) this.bare();
          else this.state = IN_LINE;
          break;
        case DOT_CR:
          if (b === 10) return this.end(out, chunk, i + 1);
          this.bare();
          break;
        default: // AFTER_CR
          if (b !== 10) { this.bare(); break; }
          i++;
          this.lineLen = 0;
          this.state = LINE_START;
          this.content(CRLF, out, false);
          break;
      }
    }
    return { data: out, done: false };
  }

  private end(out: Buffer[], chunk: Buffer, restStart: number): DataFeedResult {
    this.finished = true;
    return { data: out, done: true, rest: chunk.subarray(restStart) };
  }

  /** Bare CR or LF at the current byte: refuse the message, switch to the discard matcher. */
  private bare(): void {
    this.error = 'bareLineEnding';
    this.discard = true;
    this.matched = MATCHED_IN_STATE[this.state]!;
  }

  private content(bytes: Buffer, out: Buffer[], countLine = true): void {
    if (countLine) {
      this.lineLen += bytes.length;
      if (this.lineLen > this.opts.maxLineLength) this.error ??= 'lineTooLong';
    }
    this.size += bytes.length;
    if (this.size > this.opts.maxMessageSize) this.error ??= 'sizeExceeded';
    if (this.error === undefined) out.push(bytes);
  }
}
