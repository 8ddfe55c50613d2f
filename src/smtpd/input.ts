/**
 * Buffered socket input for one SMTP session (RFC 5321 2.3.8 lines end in CRLF, 4.5.3.1.4 limits).
 *
 * Owns: the queue of received chunks, reading one command line at a time with a length limit
 * (overlong lines are discarded as they arrive, never buffered whole), detecting bare CR / bare LF
 * in command lines, and handing raw chunks to the DATA and BDAT readers. No socket access here.
 *
 * A command line ends at LF. One that ends in a bare LF (no CR before it) is reported as such
 * (`bareLf: true`): the session then takes it as a line (bareNewline: normalize, as Postfix does; a
 * deviation from RFC 5321 2.3.8, which allows only CRLF) or refuses it and closes (reject). Either
 * way "NOOP\nMAIL FROM:<a@b>\r\n" is never one line (an overlong line, discarded, reports its
 * ending too, so that reject mode closes for it as well). A CR anywhere else in the line (bare CR) is
 * refused in both modes: Postfix would take it as part of the command text, which then fails
 * to parse; Postline answers 500 5.5.2 at once.
 */

/** One command line read from the client. */
export type LineResult =
  /** A line ended by CRLF, or by a bare LF (`bareLf`); `line` excludes the line ending. */
  | { readonly kind: 'line'; readonly line: Buffer; readonly bareLf: boolean }
  /** The line was longer than allowed; its bytes were discarded up to its LF (`bareLf`: no CR before it). */
  | { readonly kind: 'tooLong'; readonly bareLf: boolean }
  /** The line contained a bare CR (refused, RFC 5321 2.3.8). */
  | { readonly kind: 'bare' };

/** FIFO of received bytes with line and octet-count readers. */
export class InputQueue {
  private chunks: Buffer[] = [];
  private bytes = 0;
  /** Bytes at the front already searched for LF without finding one. */
  private scanned = 0;
  /** True while dropping the rest of an overlong line. */
  private discarding = false;
  /** While discarding: the last byte dropped was a CR (it may be the CR of the line's CRLF). */
  private discardedCr = false;

  /** Bytes queued. */
  get length(): number {
    return this.bytes;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.bytes += chunk.length;
  }

  /** Puts bytes back at the front (the bytes after the end of DATA). */
  unshift(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.unshift(chunk);
    this.bytes += chunk.length;
    this.scanned = 0;
  }

  /** Drops everything queued (STARTTLS: plaintext sent before the handshake, CVE-2011-0411). */
  clear(): void {
    this.chunks = [];
    this.bytes = 0;
    this.scanned = 0;
    this.discarding = false;
  }

  /** Takes up to `max` bytes from the front as one buffer (a slice, no copy); undefined when empty. */
  take(max = Infinity): Buffer | undefined {
    const first = this.chunks[0];
    if (!first || max <= 0) return undefined;
    this.scanned = 0;
    if (first.length <= max) {
      this.chunks.shift();
      this.bytes -= first.length;
      return first;
    }
    this.chunks[0] = first.subarray(max);
    this.bytes -= max;
    return first.subarray(0, max);
  }

  private takeExactly(n: number): Buffer {
    const parts: Buffer[] = [];
    while (n > 0) {
      const b = this.take(n)!;
      parts.push(b);
      n -= b.length;
    }
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }

  /** Position of the first LF, searching only bytes not scanned before; -1 when none. */
  private findLf(): number {
    let offset = 0;
    for (const c of this.chunks) {
      if (offset + c.length > this.scanned) {
        const idx = c.indexOf(10, Math.max(0, this.scanned - offset));
        if (idx >= 0) return offset + idx;
      }
      offset += c.length;
    }
    return -1;
  }

  /**
   * Reads one line terminated by LF.
   * @param maxOctets longest line allowed including CRLF; longer lines are dropped as they arrive.
   * @returns the line (CRLF or bare LF ended), 'tooLong' (with how it ended), 'bare' (a bare CR inside), or undefined
   *          when no full line is queued yet.
   */
  readLine(maxOctets: number): LineResult | undefined {
    const lf = this.findLf();
    if (lf < 0) {
      this.scanned = this.bytes;
      if (this.discarding || this.bytes > maxOctets) {
        const last = this.chunks.at(-1);
        if (last) this.discardedCr = last[last.length - 1] === 13;
        this.clear();
        this.discarding = true;
      }
      return undefined;
    }
    const raw = this.takeExactly(lf + 1);
    const n = raw.length;
    const bareLf = n < 2 ? !(this.discarding && this.discardedCr) : raw[n - 2] !== 13;
    if (this.discarding || n > maxOctets) {
      this.discarding = false;
      return { kind: 'tooLong', bareLf };
    }
    const line = raw.subarray(0, bareLf ? n - 1 : n - 2);
    if (line.includes(13)) return { kind: 'bare' };
    return { kind: 'line', line, bareLf };
  }
}
