/**
 * DueWindow: the bounded part of the queue the scheduler keeps in memory, in due order. The store
 * is the truth (every next attempt time is written there first); the window holds at most about
 * `capacity` queue IDs and reads more from the store (QueueStore.dueBatch, the messages_due index)
 * as it empties, so memory does not grow with the queue (issue 14: 1,000,000 deferred in < 1 GB).
 *
 * Rule (stated once, everything below keeps it): every message in the store that is neither held,
 * quarantined nor in a delivery round and whose due key (next attempt, queue ID) is at or before
 * the `frontier` is in the window, at its stored time. Keys after the frontier may be in the
 * window too (fresh mail, an operator's flush), never required. So:
 * - a refill reads keys after the frontier and moves it to the last key read ('all' when the
 *   store had fewer than asked: then everything is here);
 * - a message rescheduled after the frontier is dropped (the store has it; a later refill finds
 *   it), before or at it kept;
 * - when the window grows past its capacity, the latest keys are dropped and the frontier moves
 *   back before them.
 * Reads are synchronous on the main thread's connection (better-sqlite3), so a refill sees one
 * committed state; the scheduler places a message only after its write committed.
 */
import type { Logger } from '../core/log.js';
import type { DueEntry, DueKey } from '../spool/types.js';
import { DueIndex } from './due-index.js';

/** Where more due messages come from (QueueStore.dueBatch). */
export interface DueSource {
  dueBatch(after: DueKey | undefined, limit: number): Promise<DueEntry[]>;
}

/** Compares due keys: time, then queue ID (the store's order). */
export function compareDue(a: DueKey, b: DueKey): number {
  return a.at - b.at || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

export class DueWindow {
  private readonly index = new DueIndex();
  /** undefined: nothing read yet (before every key); 'all': the whole queue is in the window. */
  private frontier: DueKey | 'all' | undefined;
  private refilling = false;
  /** Bumped by reset(): a refill started before it must not move the new frontier. */
  private generation = 0;
  /** Rows read from the store so far (for stats and tests). */
  loaded = 0;

  /**
   * @param capacity IDs kept at most (>= 1); the window refills below half of it.
   * @param batch rows per store read (1..10000).
   * @throws RangeError when capacity or batch is below 1.
   */
  constructor(private readonly source: DueSource, private readonly capacity: number, private readonly batch: number, private readonly logger: Logger) {
    if (!(capacity >= 1) || !(batch >= 1)) throw new RangeError('DueWindow capacity and batch must be >= 1');
  }

  /** IDs in the window. */
  get size(): number { return this.index.size; }

  /** True once the whole queue is in the window (no refill needed until it overflows). */
  get complete(): boolean { return this.frontier === 'all'; }

  has(id: string): boolean { return this.index.has(id); }

  /** IDs in the window (no order). */
  ids(): string[] { return this.index.ids(); }

  /** Earliest time in the window (ms), or undefined. */
  nextDueAt(): number | undefined { return this.index.nextDueAt(); }

  /** Removes and returns an ID due at `now` (ms), or undefined. */
  popDue(now: number): string | undefined { return this.index.popDue(now); }

  /** Forgets `id` (held, deleted, in a round). */
  delete(id: string): void { this.index.delete(id); }

  /**
   * Keeps `id` at `at` whatever the frontier (fresh mail, a flushed message: tried soon even behind
   * a backlog). The window may pass its capacity; trim() brings it back.
   */
  add(id: string, at: number): void {
    this.index.set(id, at);
    if (this.index.size > this.capacity * 1.1 + 16) this.trim();
  }

  /** `id` was written with next attempt `at`: kept when at or before the frontier, else dropped (the store has it). */
  place(id: string, at: number): void {
    if (this.frontier === 'all' || (this.frontier !== undefined && compareDue({ at, id }, this.frontier) <= 0)) this.add(id, at);
    else this.index.delete(id);
  }

  /** Everything in the store changed (bulk flush): forget the window and read it again from the start. */
  reset(): void {
    this.generation++;
    for (const id of this.index.ids()) this.index.delete(id);
    this.frontier = undefined;
    this.refilling = false;
  }

  /** True when a refill would read something: below half full and not everything is here. */
  wantsRefill(): boolean {
    return !this.refilling && this.frontier !== 'all' && this.index.size < this.capacity / 2;
  }

  /**
   * Reads from the store until the window is full or the store has no more, `batch` rows per read
   * with a turn of the event loop between reads. One refill at a time; never rejects (a failed read
   * is logged and tried again on the next call). `maxReads` bounds the reads of this call (the
   * start reads one, the rest follows from the scans). @returns rows read.
   */
  async refill(maxReads = 1000): Promise<number> {
    if (this.refilling || this.frontier === 'all') return 0;
    this.refilling = true;
    const gen = this.generation;
    let read = 0;
    try {
      for (let i = 0; i < Math.min(1000, maxReads) && gen === this.generation && this.frontier !== 'all'; i++) {
        const room = this.capacity - this.index.size;
        if (room <= 0) break;
        const want = Math.min(this.batch, room);
        const after = this.frontier;
        const rows = await this.source.dueBatch(after, want);
        if (gen !== this.generation) break;
        for (const r of rows) this.index.set(r.id, r.at);
        read += rows.length;
        this.loaded += rows.length;
        this.frontier = rows.length < want ? 'all' : rows[rows.length - 1]!;
        if (rows.length < want) break;
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    } catch (err) {
      this.logger.error({ err }, 'cannot read due messages from the queue store; trying again');
    } finally {
      if (gen === this.generation) this.refilling = false;
    }
    return read;
  }

  /** Drops the latest keys down to the capacity and moves the frontier before them. */
  private trim(): void {
    const entries = this.index.ids().map((id) => ({ id, at: this.index.dueAt(id)! })).sort(compareDue);
    if (entries.length <= this.capacity) return;
    const last = entries[this.capacity - 1]!;
    for (let i = this.capacity; i < entries.length; i++) this.index.delete(entries[i]!.id);
    if (this.frontier === undefined) return; // nothing below the frontier to keep complete
    if (this.frontier === 'all' || compareDue(last, this.frontier) < 0) this.frontier = { at: last.at, id: last.id };
    this.logger.debug({ kept: this.capacity, dropped: entries.length - this.capacity }, 'due window trimmed');
  }
}
