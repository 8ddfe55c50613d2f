/**
 * Rate limits of traffic shaping (shaping.ts): a token bucket per limit, kept in its virtual
 * scheduling form (GCRA: one "theoretical arrival time" instead of a token count, which makes
 * reserving a future slot one addition). A bucket of `count` per `periodMs` with burst `b` lets
 * `b` events through at once, then one every periodMs / count; a slot may be reserved in the
 * future, so a backlog is spread over time instead of asking again and again (no busy loop).
 * Times are ms on the scheduler's clock.
 */

/** The burst of a limit of `count` per period: a tenth of it, at least 1. */
export function defaultBurst(count: number): number {
  return Math.max(1, Math.ceil(count / 10));
}

export class TokenBucket {
  /** Theoretical arrival time of the next event at the steady rate (ms); -Infinity when idle. */
  private tat = Number.NEGATIVE_INFINITY;
  private interval: number;
  private burst: number;

  /**
   * @param count events per `periodMs` (> 0, fractions allowed).
   * @param periodMs the period, ms (> 0).
   * @param burst events let through at once (>= 1; default defaultBurst(count)).
   * @throws RangeError when count or periodMs is not positive.
   */
  constructor(count: number, periodMs: number, burst?: number) {
    this.interval = 0;
    this.burst = 1;
    this.setRate(count, periodMs, burst);
  }

  /**
   * Changes the rate (a reload, a throttle) keeping what was already taken and reserved.
   * @throws RangeError when count or periodMs is not positive.
   */
  setRate(count: number, periodMs: number, burst?: number): void {
    if (!(count > 0) || !(periodMs > 0)) throw new RangeError('a rate needs a positive count and period');
    this.interval = periodMs / count;
    this.burst = Math.max(1, Math.floor(burst ?? defaultBurst(count)));
  }

  /** ms between events at the steady rate. */
  get intervalMs(): number { return this.interval; }

  /** The earliest time >= `now` at which one more event fits (a token is there). */
  nextFree(now: number): number {
    return Math.max(now, this.tat - (this.burst - 1) * this.interval);
  }

  /** Takes one token at `at` (a time from nextFree, or later). */
  commit(at: number): void {
    this.tat = Math.max(this.tat, at) + this.interval;
  }

  /** Takes one token at the earliest time >= `now` it is there. @returns that time (== now: at once). */
  reserve(now: number): number {
    const at = this.nextFree(now);
    this.commit(at);
    return at;
  }

  /** Takes a token at `now` only when one is there. @returns true when taken. */
  tryTake(now: number): boolean {
    if (this.nextFree(now) > now) return false;
    this.commit(now);
    return true;
  }
}

/**
 * Reserves one event in every bucket of `buckets` at the first time all of them have room.
 * @returns that time (>= now; == now when all had a token). An empty list gives `now`.
 */
export function reserveAll(buckets: readonly TokenBucket[], now: number): number {
  let at = now;
  for (const b of buckets) at = Math.max(at, b.nextFree(now));
  for (const b of buckets) b.commit(at);
  return at;
}
