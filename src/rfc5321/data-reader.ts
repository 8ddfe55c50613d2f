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
const CR = Buffer.from('\r');

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
  /** A CR ended the previous chunk inside a line; it is emitted once its LF arrives. */
  private pendingCr = false;
  /** Bytes of the decoded message so far (CRLFs included). */
  size = 0;
  /** The first error (a bare line ending overrides the others), or undefined. */
  error: DataErrorKind | undefined;

  constructor(private readonly opts: DataReaderOptions) {}

  /**
   * Decodes one chunk. Must not be called again after a result with `done: true`.
   * Output is emitted in runs: one slice of `chunk` per stretch between dropped bytes (a stuffed
   * dot, the end-of-data line), so a chunk without dot lines gives one slice, not one per line.
   * @returns decoded bytes (slices of `chunk` or a shared CR), and `rest` once the end is found.
   * @throws Error when called after the end of data.
   */
  feed(chunk: Buffer): DataFeedResult {
    if (this.finished) throw new Error('DataReader: feed() after end of data');
    const out: Buffer[] = [];
    const n = chunk.length;
    let i = 0;
    let runStart = 0;
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
          // The next CR or LF, found with native scans (a JS byte loop was 5% of the main thread).
          const cr = chunk.indexOf(13, i);
          const lf = chunk.indexOf(10, i);
          const j = cr < 0 ? (lf < 0 ? n : lf) : lf < 0 ? cr : Math.min(cr, lf);
          this.lineLen += j - i;
          if (this.lineLen > this.opts.maxLineLength) this.error ??= 'lineTooLong';
          i = j;
          if (i < n) {
            if (chunk[i] === 13) { this.state = AFTER_CR; i++; } else this.bare();
          }
          break;
        }
        case LINE_START:
          if (b === 0x2e) {
            this.emit(chunk, runStart, i, out); // the first '.' of a line is dropped (RFC 5321 4.5.2)
            runStart = i + 1;
            this.state = DOT;
            i++;
          } else if (b === 13) { this.state = AFTER_CR; i++; }
          else if (b === 10) this.bare();
          else this.state = IN_LINE;
          break;
        case DOT:
          if (b === 13) { this.state = DOT_CR; i++; }
          else if (b === 10) this.bare();
          else this.state = IN_LINE;
          break;
        case DOT_CR: // "." CR LF at a line start: the end; the CR after the dot is never emitted
          if (b === 10) return this.end(out, chunk, i + 1);
          this.bare();
          break;
        default: // AFTER_CR
          if (b !== 10) { this.bare(); break; }
          if (this.pendingCr) { // the CR ended the previous chunk
            this.pendingCr = false;
            this.emitBytes(CR, out);
          }
          i++;
          this.lineLen = 0;
          this.state = LINE_START;
          break;
      }
    }
    if (!this.discard) {
      // A CR at the very end waits for its LF (it may be the CR of "." CR LF, or a bare CR).
      const crAtEnd = (this.state === AFTER_CR || this.state === DOT_CR) && n > 0 && chunk[n - 1] === 13;
      this.emit(chunk, runStart, crAtEnd ? n - 1 : n, out);
      if (crAtEnd && this.state === AFTER_CR) this.pendingCr = true;
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

  /** Emits chunk[from, to) when not empty. */
  private emit(chunk: Buffer, from: number, to: number, out: Buffer[]): void {
    if (to > from) this.emitBytes(from === 0 && to === chunk.length ? chunk : chunk.subarray(from, to), out);
  }

  private emitBytes(bytes: Buffer, out: Buffer[]): void {
    this.size += bytes.length;
    if (this.size > this.opts.maxMessageSize) this.error ??= 'sizeExceeded';
    if (this.error === undefined) out.push(bytes);
  }
}
