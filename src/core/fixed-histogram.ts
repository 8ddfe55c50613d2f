/**
 * A histogram with fixed buckets as plain data: cheap enough for hot paths (no allocation per
 * observation), and structured-clonable, so it crosses a thread boundary (the queue writer's
 * statistics) and can be rendered as a Prometheus histogram (src/metrics/).
 */

/**
 * `counts[i]` counts observations <= `bounds[i]` and > `bounds[i-1]` (not cumulative); the last
 * entry, one past the bounds, counts those above the largest bound (+Inf).
 */
export interface FixedHistogram {
  /** Upper bounds, ascending. */
  readonly bounds: readonly number[];
  readonly counts: number[];
  /** Sum of the observed values. */
  sum: number;
  /** Number of observations. */
  count: number;
}

/** An empty FixedHistogram over `bounds`. */
export function newHistogram(bounds: readonly number[]): FixedHistogram {
  return { bounds, counts: new Array<number>(bounds.length + 1).fill(0), sum: 0, count: 0 };
}

/** Counts `v` in `h` (a linear scan of a dozen bounds; no allocation). */
export function observe(h: FixedHistogram, v: number): void {
  let i = 0;
  while (i < h.bounds.length && v > h.bounds[i]!) i++;
  h.counts[i]!++;
  h.sum += v;
  h.count++;
}

