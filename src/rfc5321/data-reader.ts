/**
 * Streaming decoder for the DATA body (RFC 5321 4.1.1.4 end of data, 4.5.2 transparency,
 * 4.5.3.1.6 line length, 2.3.8 lines end in CRLF).
 *
 * Owns: finding the end-of-data indicator CRLF "." CRLF exactly, dot-unstuffing, the bare CR / bare
 * LF rules, the line length and message size limits, and handing back the bytes after the end
 * (pipelined commands). State is a few counters: memory stays flat for any message or line length;
 * output chunks are slices of the input (plus shared constant buffers for added bytes), or one copy
 * when a chunk gives more than a few pieces (many dot lines, or bare-LF lines in normalize mode).
 *
 * Bare line endings (`bareNewline`, like Postfix's smtpd_forbid_bare_newline):
 * - `reject`: a bare LF or bare CR refuses the message (550 5.5.2), read up to the literal
 *   CR LF "." CR LF.
 * - `normalize`: a line ending in a bare LF is decoded as if it ended in CRLF (the CR is added), a
 *   deviation from RFC 5321 2.3.8 for clients that send LF-only text. The end of data is still
 *   ONLY CR LF "." CR LF: a "." line next to a bare LF ("\n.\n", "\r\n.\n", "\n.\r\n") never ends
 *   the message (SMTP smuggling stays impossible); it is content and is stored as ".\r\n" (it cannot
 *   be a stuffed line, so its dot is kept). Other lines starting with "." are unstuffed whatever
 *   ended the line before. A bare CR is refused in both modes: passing it on could let a next hop
 *   that ends lines at CR see "\r.\r" as an end of data.
 */
import { R, type SmtpReply } from '../core/reply.js';
import { Pieces } from './pieces.js';

/** Why a message was refused; the reply is sent after the real end of data. */
export type DataErrorKind = 'bareLf' | 'bareCr' | 'lineTooLong' | 'sizeExceeded';

/** What to do with a line that ends in a bare LF (see the module header). */
export type BareNewlineMode = 'normalize' | 'reject';

export interface DataReaderOptions {
  /** Longest line, bytes without CRLF (after unstuffing). */
  readonly maxLineLength: number;
  /** Largest message, bytes (after unstuffing and normalizing, CRLFs included). */
  readonly maxMessageSize: number;
  /** Default 'reject' (strict RFC 5321 2.3.8). */
  readonly bareNewline?: BareNewlineMode;
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

// Parser states.
const LINE_START = 0; // after CRLF (or a normalized bare LF, or at the start of data)
const DOT = 1; // line began with '.'
const DOT_CR = 2; // "." CR at line start
const IN_LINE = 3;
const AFTER_CR = 4; // CR inside a line, LF expected

/** How many bytes of CRLF "." CRLF are already matched in each state (for the discard matcher). */
const MATCHED_IN_STATE = [2, 3, 4, 0, 1];
const CR = Buffer.from('\r');
/** A content "." line next to a bare LF: its dot (dropped on the way in) and the CR it needs. */
const DOT_CR_BYTES = Buffer.from('.\r');

/** One step of the matcher for CR LF "." CR LF; returns how many bytes are matched after `b`. */
function matchStep(m: number, b: number): number {
  if (b === 13) return m === 3 ? 4 : 1;
  if (b === 10) return m === 1 ? 2 : m === 4 ? 5 : 0;
  if (b === 0x2e && m === 2) return 3;
  return 0;
}

/** The reply for a refused message (RFC 5321 4.2.2 / 4.2.3, RFC 3463). */
export function dataErrorReply(kind: DataErrorKind): SmtpReply {
  if (kind === 'bareLf') return R.bareLf;
  if (kind === 'bareCr') return R.bareCr;
  return kind === 'lineTooLong' ? R.dataLineTooLong : R.sizeExceeded;
}

/**
 * Decoder for one DATA body, fed raw socket chunks in order.
 *
 * After a refused bare CR or LF the rest is discarded until the literal byte sequence
 * CR LF "." CR LF; other errors (line too long, size) keep parsing normally but emit nothing.
 * `error` tells the caller which reply to send once `done`.
 */
export class DataReader {
  private state = LINE_START;
  private discard = false;
  private matched = 0;
  private lineLen = 0;
  private finished = false;
  /** A CR ended the previous chunk inside a line; it is emitted once its LF arrives. */
  private pendingCr = false;
  /** The current line began after a bare LF (normalize mode): a "." line here is content. */
  private afterBareLf = false;
  private readonly normalize: boolean;
  /** The output of the current feed(), as offsets into its chunk. */
  private readonly out = new Pieces();
  /** Bytes of the decoded message so far (CRLFs included). */
  size = 0;
  /** The first error (a bare line ending overrides the others), or undefined. */
  error: DataErrorKind | undefined;

  constructor(private readonly opts: DataReaderOptions) {
    this.normalize = opts.bareNewline === 'normalize';
  }

  /**
   * Decodes one chunk. Must not be called again after a result with `done: true`.
   * Output is emitted in runs: one slice of `chunk` per stretch between dropped or added bytes (a
   * stuffed dot, the end-of-data line, a CR added before a bare LF), so a chunk of CRLF lines
   * without dot lines gives one slice, not one per line; more than a few pieces are copied into one
   * buffer (so a body of bare LFs is not two tiny body writes per line). CR and LF are found with native indexOf
   * scans whose results are kept for the rest of the chunk (linear in the chunk, also for LF-only text).
   * @returns decoded bytes (slices of `chunk`, shared constants or one copy), and `rest` once the end is found.
   * @throws Error when called after the end of data.
   */
  feed(chunk: Buffer): DataFeedResult {
    if (this.finished) throw new Error('DataReader: feed() after end of data');
    this.out.reset(chunk);
    const n = chunk.length;
    let i = 0;
    let runStart = 0;
    let nextCr = -1; // position of the next CR at or after i (n: none), valid while >= i
    let nextLf = -1;
    while (i < n) {
      if (this.discard) {
        for (; i < n; i++) {
          this.matched = matchStep(this.matched, chunk[i]!);
          if (this.matched === 5) return this.end(chunk, i + 1);
        }
        break;
      }
      const b = chunk[i]!;
      switch (this.state) {
        case IN_LINE: {
          if (nextCr < i) { nextCr = chunk.indexOf(13, i); if (nextCr < 0) nextCr = n; }
          if (nextLf < i) { nextLf = chunk.indexOf(10, i); if (nextLf < 0) nextLf = n; }
          const j = nextCr < nextLf ? nextCr : nextLf;
          this.lineLen += j - i;
          if (this.lineLen > this.opts.maxLineLength) this.error ??= 'lineTooLong';
          i = j;
          if (i < n) {
            if (chunk[i] === 13) { this.state = AFTER_CR; i++; } else if (this.normalize) runStart = this.bareLf(runStart, i++, CR);
            else this.bare('bareLf');
          }
          break;
        }
        case LINE_START:
          if (b === 0x2e) {
            this.emit(runStart, i); // the first '.' of a line is dropped (RFC 5321 4.5.2)
            runStart = i + 1;
            this.state = DOT;
            i++;
          } else if (b === 13) { this.state = AFTER_CR; i++; }
          else if (b === 10) {
            if (this.normalize) runStart = this.bareLf(runStart, i++, CR);
            else this.bare('bareLf');
          } else { this.state = IN_LINE; this.afterBareLf = false; }
          break;
        case DOT:
          if (b === 13) { this.state = DOT_CR; i++; }
          else if (b === 10) { // "." LF: content in normalize mode, never the end
            if (this.normalize) runStart = this.bareLf(runStart, i++, DOT_CR_BYTES);
            else this.bare('bareLf');
          } else { this.state = IN_LINE; this.afterBareLf = false; }
          break;
        case DOT_CR: // "." CR LF at a line start: the end, unless the line began after a bare LF
          if (b !== 10) { this.bare('bareCr'); break; }
          if (!this.afterBareLf) return this.end(chunk, i + 1); // the CR after the dot is never emitted
          // "\n.\r\n": content. The run holds at most the CR (or it ended the previous chunk unsent).
          this.emitBytes(DOT_CR_BYTES);
          runStart = i; // the LF starts the next run
          i++;
          this.lineEnd(false);
          break;
        default: // AFTER_CR
          if (b !== 10) { this.bare('bareCr'); break; }
          if (this.pendingCr) { // the CR ended the previous chunk
            this.pendingCr = false;
            this.emitBytes(CR);
          }
          i++;
          this.lineEnd(false);
          break;
      }
    }
    if (!this.discard) {
      // A CR at the very end waits for its LF (it may be the CR of "." CR LF, or a bare CR).
      const crAtEnd = (this.state === AFTER_CR || this.state === DOT_CR) && n > 0 && chunk[n - 1] === 13;
      this.emit(runStart, crAtEnd ? n - 1 : n);
      if (crAtEnd && this.state === AFTER_CR) this.pendingCr = true;
    }
    return { data: this.out.build(), done: false };
  }

  private end(chunk: Buffer, restStart: number): DataFeedResult {
    this.finished = true;
    return { data: this.out.build(), done: true, rest: chunk.subarray(restStart) };
  }

  private lineEnd(bareLf: boolean): void {
    this.lineLen = 0;
    this.state = LINE_START;
    this.afterBareLf = bareLf;
  }

  /**
   * Normalize mode, a bare LF at `lf`: emits the run before it and `insert` (the missing CR, or
   * ".\r" for a content "." line whose dot was dropped); the LF itself starts the next run.
   * @returns the new run start.
   */
  private bareLf(runStart: number, lf: number, insert: Buffer): number {
    this.emit(runStart, lf);
    this.emitBytes(insert);
    this.lineEnd(true);
    return lf;
  }

  /** A refused bare CR or LF at the current byte: refuse the message, switch to the discard matcher. */
  private bare(kind: 'bareLf' | 'bareCr'): void {
    this.error = kind;
    this.discard = true;
    this.matched = MATCHED_IN_STATE[this.state]!;
  }

  /** Emits chunk[from, to) of the current chunk when not empty. */
  private emit(from: number, to: number): void {
    if (to > from && this.count(to - from)) this.out.run(from, to);
  }

  /** Emits a constant. */
  private emitBytes(bytes: Buffer): void {
    if (this.count(bytes.length)) this.out.insert(bytes);
  }

  /** Counts `len` decoded bytes against the size limit; true while the message is not refused. */
  private count(len: number): boolean {
    this.size += len;
    if (this.size > this.opts.maxMessageSize) this.error ??= 'sizeExceeded';
    return this.error === undefined;
  }
}
