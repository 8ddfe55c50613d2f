/**
 * The decoded bytes of one input chunk, kept as offsets while the chunk is decoded (used by the
 * DATA reader and the BDAT line-ending check).
 *
 * Decoding drops bytes (stuffed dots, the end-of-data line) and adds some (a CR before a bare LF):
 * the output is runs of the chunk with small constants between them. A few pieces are handed out
 * as slices (no copy); more than MAX_PIECES are copied into one buffer. Each returned buffer is one
 * write into the body stream, and a chunk of bare-LF lines has two pieces per line: as slices that
 * would be millions of tiny objects and writes for a body of LFs. Memory: two fixed arrays of
 * CAPACITY offsets, plus the copy (at most twice the chunk: a piece adds at most one byte per LF).
 */

/** More pieces than this from one chunk are copied into one buffer. */
const MAX_PIECES = 4;
/** Offsets kept before they are copied out (then the next ones reuse the arrays). */
const CAPACITY = 1024;
/** Runs shorter than this are copied byte by byte (cheaper than a native call). */
const SHORT_RUN = 16;
const EMPTY = Buffer.alloc(0);

/** Runs of one chunk and inserted constants, in order; reused for every chunk. */
export class Pieces {
  private chunk: Buffer = EMPTY;
  /** Start offset of each piece in the chunk, or -1 - k for the constant `consts[k]`. */
  private readonly from = new Int32Array(CAPACITY);
  /** End offset (exclusive) of each run; unused for constants. */
  private readonly to = new Int32Array(CAPACITY);
  private readonly consts: Buffer[] = [];
  private count = 0;
  /** The copy, once there were more than CAPACITY pieces; `written` bytes of it are used. */
  private copy: Buffer | undefined;
  private written = 0;

  /** Starts collecting the pieces of `chunk`. */
  reset(chunk: Buffer): void {
    this.chunk = chunk;
    this.count = 0;
    this.copy = undefined;
    this.written = 0;
  }

  /** Adds chunk[from, to) (nothing when empty). */
  run(from: number, to: number): void {
    if (to <= from) return;
    if (this.count === CAPACITY) this.flush();
    this.from[this.count] = from;
    this.to[this.count] = to;
    this.count++;
  }

  /** Adds a constant (a shared buffer that is never changed, at most 2 bytes). */
  insert(bytes: Buffer): void {
    let k = this.consts.indexOf(bytes);
    if (k < 0) k = this.consts.push(bytes) - 1;
    if (this.count === CAPACITY) this.flush();
    this.from[this.count] = -1 - k;
    this.count++;
  }

  /**
   * The pieces as buffers: slices of the chunk and the constants when there are at most
   * MAX_PIECES, otherwise one new buffer holding them all. Linear in the bytes.
   */
  build(): Buffer[] {
    const { chunk, from, to, count } = this;
    if (!this.copy && count <= MAX_PIECES) {
      const out: Buffer[] = [];
      for (let p = 0; p < count; p++) {
        const f = from[p]!;
        if (f < 0) out.push(this.consts[-1 - f]!);
        else out.push(f === 0 && to[p] === chunk.length ? chunk : chunk.subarray(f, to[p]));
      }
      this.chunk = EMPTY;
      return out;
    }
    this.flush();
    const out = this.copy!.subarray(0, this.written);
    this.reset(EMPTY);
    return [out];
  }

  /** Copies the pieces so far into `copy` and empties the offset arrays. */
  private flush(): void {
    const { chunk, from, to, count } = this;
    // every piece but the constants comes from the chunk, and a constant follows at most one LF
    // (a CR, or ".\r" in place of a dropped dot), so the output is at most twice the chunk
    const buf = (this.copy ??= Buffer.allocUnsafe(2 * chunk.length + 2));
    let w = this.written;
    for (let p = 0; p < count; p++) {
      const f = from[p]!;
      if (f < 0) {
        const c = this.consts[-1 - f]!;
        for (let j = 0; j < c.length; j++) buf[w++] = c[j]!;
        continue;
      }
      const t = to[p]!;
      if (t - f < SHORT_RUN) for (let j = f; j < t; j++) buf[w++] = chunk[j]!;
      else w += chunk.copy(buf, w, f, t);
    }
    this.written = w;
    this.count = 0;
  }
}
