/**
 * Per-client counters shared by every session and listener (like Postfix's anvil): how many
 * connections, messages, recipients, unknown recipients, AUTH failures a key (a client address, a
 * network, a user and address) had in the last window.
 *
 * Owns: sliding-window counts (two fixed windows, the previous one weighted by how much of it still
 * overlaps the sliding window: O(1) per check, no timestamps kept per event) in a table capped by
 * entries with least-recently-used eviction. Eviction forgets a key's counts (the client starts
 * again at zero): memory never grows past the cap and nothing is ever refused for lack of room.
 */

/**
 * One counter table: every key has `slots` counters, all over the same window. Entry layout (a
 * plain array of small integers): [windowIndex, cur0..curN-1, prev0..prevN-1].
 */
export class Anvil {
  private readonly map = new Map<string, number[]>();

  /**
   * @param slots counters per key (1..16).
   * @param windowMs the sliding window, ms.
   * @param maxEntries keys kept at most (the least recently used is forgotten first).
   * @throws RangeError on a bad argument.
   */
  constructor(readonly slots: number, readonly windowMs: number, private maxEntries: number) {
    if (!Number.isInteger(slots) || slots < 1 || slots > 16) throw new RangeError('Anvil: slots must be 1..16');
    if (!(windowMs > 0)) throw new RangeError('Anvil: windowMs must be positive');
    if (!Number.isInteger(maxEntries) || maxEntries < 1) throw new RangeError('Anvil: maxEntries must be a positive integer');
  }

  /** Keys held now. */
  get size(): number {
    return this.map.size;
  }

  /** Changes the cap (a reload); excess keys are forgotten at once, oldest first. */
  setMaxEntries(n: number): void {
    this.maxEntries = Math.max(1, Math.floor(n));
    this.evict();
  }

  /** The count of `slot` for `key` over the last windowMs at `now` (ms), without adding. */
  count(key: string, slot: number, now: number): number {
    const e = this.map.get(key);
    if (!e) return 0;
    this.roll(e, now);
    return this.estimate(e, slot, now);
  }

  /**
   * Adds `n` (may be negative: taking back a provisional count) to `slot` of `key` and returns the new count over the window. Marks the key as most
   * recently used; may forget the least recently used key.
   */
  add(key: string, slot: number, now: number, n = 1): number {
    let e = this.map.get(key);
    if (e) {
      this.map.delete(key); // re-insert: most recently used at the end
    } else {
      e = new Array<number>(1 + 2 * this.slots).fill(0);
      e[0] = Math.floor(now / this.windowMs);
    }
    this.map.set(key, e);
    this.roll(e, now);
    e[1 + slot]! += n;
    this.evict();
    return this.estimate(e, slot, now);
  }

  /** Forgets a key (e.g. AUTH success clears the pair's failures). */
  delete(key: string): void {
    this.map.delete(key);
  }

  private roll(e: number[], now: number): void {
    const w = Math.floor(now / this.windowMs);
    const d = w - e[0]!;
    if (d <= 0) return;
    for (let i = 0; i < this.slots; i++) {
      e[1 + this.slots + i] = d === 1 ? e[1 + i]! : 0;
      e[1 + i] = 0;
    }
    e[0] = w;
  }

  private estimate(e: number[], slot: number, now: number): number {
    const frac = (now - e[0]! * this.windowMs) / this.windowMs;
    return Math.max(0, e[1 + slot]! + Math.floor(e[1 + this.slots + slot]! * Math.max(0, 1 - frac)));
  }

  private evict(): void {
    while (this.map.size > this.maxEntries) {
      const oldest = this.map.keys().next().value as string;
      this.map.delete(oldest);
    }
  }
}
