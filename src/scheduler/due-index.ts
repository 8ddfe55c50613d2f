/**
 * DueIndex: queue IDs ordered by next attempt time (ms since epoch), so a scan touches only the
 * messages that are due instead of the whole table. A binary min-heap with lazy deletion: moving or
 * removing an ID leaves its old heap entry behind, recognized as stale by a sequence number; the
 * heap is rebuilt when stale entries outnumber live ones.
 */

interface HeapEntry {
  readonly at: number;
  readonly seq: number;
  readonly id: string;
}

export class DueIndex {
  private heap: HeapEntry[] = [];
  private readonly live = new Map<string, HeapEntry>();
  private seq = 0;

  /** Number of scheduled IDs. */
  get size(): number { return this.live.size; }

  /** True when `id` is scheduled. */
  has(id: string): boolean { return this.live.has(id); }

  /** The scheduled time of `id` (ms since epoch), or undefined. */
  dueAt(id: string): number | undefined { return this.live.get(id)?.at; }

  /** Every scheduled ID (no particular order). */
  ids(): string[] { return [...this.live.keys()]; }

  /** Schedules `id` at `at` (ms since epoch), replacing an earlier schedule of it. */
  set(id: string, at: number): void {
    const e: HeapEntry = { at, seq: ++this.seq, id };
    this.live.set(id, e);
    this.push(e);
    if (this.heap.length > 1024 && this.heap.length > 2 * this.live.size) this.rebuild();
  }

  /** Unschedules `id`; false when it was not scheduled. */
  delete(id: string): boolean { return this.live.delete(id); }

  /** The earliest scheduled time, or undefined when empty. */
  nextDueAt(): number | undefined {
    this.dropStale();
    return this.heap[0]?.at;
  }

  /** Removes and returns the earliest ID whose time is <= now, or undefined when none is due. */
  popDue(now: number): string | undefined {
    this.dropStale();
    const top = this.heap[0];
    if (!top || top.at > now) return undefined;
    this.pop();
    this.live.delete(top.id);
    return top.id;
  }

  private isStale(e: HeapEntry): boolean { return this.live.get(e.id) !== e; }

  private dropStale(): void {
    while (this.heap.length > 0 && this.isStale(this.heap[0]!)) this.pop();
  }

  private rebuild(): void {
    this.heap = [];
    for (const e of [...this.live.values()].sort((a, b) => a.at - b.at || a.seq - b.seq)) this.heap.push(e);
  }

  private less(a: HeapEntry, b: HeapEntry): boolean { return a.at < b.at || (a.at === b.at && a.seq < b.seq); }

  private push(e: HeapEntry): void {
    const h = this.heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  private pop(): void {
    const h = this.heap;
    const last = h.pop();
    if (h.length === 0 || !last) return;
    h[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && this.less(h[l]!, h[m]!)) m = l;
      if (r < h.length && this.less(h[r]!, h[m]!)) m = r;
      if (m === i) break;
      [h[i], h[m]] = [h[m]!, h[i]!];
      i = m;
    }
  }
}
