/**
 * Strict line endings for BDAT content (RFC 3030 with RFC 5321 2.3.8): every CR must be followed by
 * LF and every LF preceded by CR, across chunk boundaries. DATA gets the same rule from the DATA
 * reader; this keeps BDAT from carrying SMTP smuggling sequences ("\r.\r", "\n.\n") to a next hop.
 */

/** Feeds chunks in order; `ok` turns false at the first bare CR or bare LF and stays false. */
export class LineEndingCheck {
  private prevCr = false;
  ok = true;

  /** Checks one chunk. Returns `ok`. Cost: two indexOf scans per chunk. */
  feed(chunk: Buffer): boolean {
    if (!this.ok || chunk.length === 0) return this.ok;
    if (this.prevCr && chunk[0] !== 0x0a) return (this.ok = false);
    for (let i = chunk.indexOf(0x0d); i >= 0; i = chunk.indexOf(0x0d, i + 1)) {
      if (i + 1 < chunk.length && chunk[i + 1] !== 0x0a) return (this.ok = false);
    }
    for (let i = chunk.indexOf(0x0a); i >= 0; i = chunk.indexOf(0x0a, i + 1)) {
      const before = i > 0 ? chunk[i - 1] === 0x0d : this.prevCr;
      if (!before) return (this.ok = false);
    }
    this.prevCr = chunk[chunk.length - 1] === 0x0d;
    return this.ok;
  }

  /** At the last chunk: a trailing CR without its LF is bare too. Returns `ok`. */
  end(): boolean {
    if (this.prevCr) this.ok = false;
    return this.ok;
  }
}
