/**
 * The minimum data rate of DATA/BDAT (limits.minDataRate, like a slowloris guard): the bytes a
 * client sent in the current window of `windowMs`; at the window's end it must have sent `bytes`.
 */

/** One session's data-rate window. */
export class DataRateWindow {
  private start: number;
  private bytes = 0;

  constructor(readonly min: { readonly bytes: number; readonly windowMs: number }, now = Date.now()) {
    this.start = now;
  }

  /** Counts bytes received. */
  add(n: number): void {
    this.bytes += n;
  }

  /** Moves the window on by `ms` that were our wait, not the client's (the store applying backpressure). */
  pauseFor(ms: number): void {
    this.start += Math.max(0, ms);
  }

  /** ms left in the current window (<= 0: it has ended). */
  left(now = Date.now()): number {
    return this.start + this.min.windowMs - now;
  }

  /**
   * At the end of a window: false when it brought fewer than `min.bytes` (then `sent` says how
   * many); otherwise a new window starts. Before the end: true.
   */
  check(now = Date.now()): { ok: true } | { ok: false; sent: number } {
    if (now - this.start < this.min.windowMs) return { ok: true };
    if (this.bytes < this.min.bytes) return { ok: false, sent: this.bytes };
    this.start = now;
    this.bytes = 0;
    return { ok: true };
  }
}
