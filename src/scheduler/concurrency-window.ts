/**
 * Slow start of concurrency per dispatcher key (site or egress path), like Postfix's destination
 * concurrency window (qmgr.h: initial concurrency, positive and negative feedback): a destination
 * not seen for a while starts at `initial` connections at once, grows by 1/window for each
 * delivery that reached its host (about one more connection per window-full of deliveries) up to
 * the shaping cap, and shrinks by one for each delivery whose connection failed (never below 1).
 * A dead destination is handled by the dead cache (destinations.ts), not here. Windows idle for
 * `idleMs` are forgotten (the next delivery starts slow again); at most `maxKeys` are kept.
 */
export class ConcurrencyWindows {
  private readonly w = new Map<string, { size: number; at: number }>();

  /**
   * @param o.initial live initial window (delivery.initialConcurrency; >= 1)
   * @param o.now clock, ms
   */
  constructor(private readonly o: { readonly initial: () => number; readonly now: () => number; readonly idleMs?: number; readonly maxKeys?: number }) {}

  /** The connections `key` may have at once now, at most `cap`. */
  limit(key: string, cap: number): number {
    const e = this.w.get(key);
    const now = this.o.now();
    const size = e && now - e.at < (this.o.idleMs ?? 600_000) ? e.size : this.o.initial();
    return Math.max(1, Math.min(cap, Math.floor(size)));
  }

  /** Feedback of one delivery to `key`: `reached` its host or not; `cap` bounds the growth. */
  feedback(key: string, reached: boolean, cap: number): void {
    const now = this.o.now();
    const e = this.w.get(key);
    const cur = e && now - e.at < (this.o.idleMs ?? 600_000) ? e.size : this.o.initial();
    const size = reached ? Math.min(Math.max(cap, 1), cur + 1 / Math.max(1, cur)) : Math.max(1, cur - 1);
    this.w.delete(key); // re-insert: the map's order is the use order, the oldest goes first
    this.w.set(key, { size, at: now });
    if (this.w.size > (this.o.maxKeys ?? 100_000)) this.w.delete(this.w.keys().next().value!);
  }
}
