/**
 * Retry schedule of deferred mail: exponential backoff with a cap and random spread (the idea of
 * Postfix's minimal_backoff_time / maximal_backoff_time). Pure functions; the scheduler owns the
 * clock and the random source. RFC 5321 4.5.4.1 asks for a retry interval of at least 30 minutes
 * in general; the defaults in config/schema.ts (5 min doubling up to ~67 min) follow Postfix.
 */

/** The retry settings of `config.delivery.retry` (all times in ms). */
export interface RetryPolicy {
  readonly initialMs: number;
  readonly maxMs: number;
  readonly multiplier: number;
  /** Random spread as a fraction (0.1 = +-10%); 0 = none. */
  readonly jitter: number;
}

/**
 * The wait before the next attempt after `attempts` attempts, without jitter:
 * initialMs x multiplier^(attempts-1), capped at maxMs. `attempts` below 1 counts as 1.
 * Non-decreasing in `attempts` and never above max(initialMs, maxMs) when multiplier >= 1.
 * @returns milliseconds (integer).
 */
export function baseDelayMs(attempts: number, p: RetryPolicy): number {
  const n = Math.max(1, Math.floor(Number.isFinite(attempts) ? attempts : 1));
  const cap = Math.max(p.initialMs, p.maxMs);
  const raw = p.initialMs * Math.pow(Math.max(1, p.multiplier), n - 1);
  return Math.round(Number.isFinite(raw) ? Math.min(raw, cap) : cap);
}

/**
 * The wait before the next attempt with jitter: baseDelayMs x (1 + jitter x (2r - 1)) for a random
 * r in [0, 1), clamped to [1, max(initialMs, maxMs)] so the spread never passes the cap.
 * @param random returns a number in [0, 1) (Math.random in production, fixed in tests).
 * @returns milliseconds (integer >= 1).
 */
export function retryDelayMs(attempts: number, p: RetryPolicy, random: () => number = Math.random): number {
  const base = baseDelayMs(attempts, p);
  const r = Math.min(Math.max(random(), 0), 1);
  const spread = base * Math.min(Math.max(p.jitter, 0), 1) * (2 * r - 1);
  const cap = Math.max(p.initialMs, p.maxMs);
  return Math.max(1, Math.min(cap, Math.round(base + spread)));
}

/** The time of the next attempt (ms since epoch) after a deferral at `now` that was attempt number `attempts`. */
export function nextAttemptAt(now: number, attempts: number, p: RetryPolicy, random: () => number = Math.random): number {
  return now + retryDelayMs(attempts, p, random);
}
