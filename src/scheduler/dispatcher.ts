/**
 * Dispatcher: runs delivery requests under a global concurrency cap (delivery.maxConnections) and
 * a per-destination cap (destination = next hop key: traffic shaping's `concurrency(key)`, the
 * matching rule's maxConnections or delivery.connectionsPerDestination, read at each start). Work
 * beyond the caps waits per destination; free slots are handed out round-robin across
 * destinations, so one slow destination with a long backlog cannot starve the others. Within a
 * destination, work waits per flow (the sender: API key, SMTP user or sender domain) in FIFOs
 * served round-robin too, so one sender's bulk send does not hold back everyone else's mail to
 * that destination; shedding takes the newest work of the longest flows first.
 */

/** Returned by `run` for work that was cancelled before it started (shutdown). */
export const CANCELLED: unique symbol = Symbol('cancelled');
/** Returned by `run` for work shed before it started because its destination has too much waiting. */
export const SHED: unique symbol = Symbol('shed');

interface Job {
  readonly start: () => void;
  readonly cancel: (why: typeof CANCELLED | typeof SHED) => void;
}

/** The waiting work of one destination: a FIFO per flow, served round-robin. */
class FairQueue {
  private readonly flows = new Map<string, Job[]>();
  private order: string[] = [];
  private next = 0;
  length = 0;

  push(flow: string, job: Job): void {
    const q = this.flows.get(flow);
    if (q) q.push(job);
    else {
      this.flows.set(flow, [job]);
      this.order.push(flow);
    }
    this.length++;
  }

  /** The oldest job of the next flow in turn. */
  shift(): Job | undefined {
    if (this.order.length === 0) return undefined;
    const i = this.next % this.order.length;
    const flow = this.order[i]!;
    const q = this.flows.get(flow)!;
    const job = q.shift()!;
    this.length--;
    if (q.length === 0) {
      this.flows.delete(flow);
      this.order.splice(i, 1);
      this.next = this.order.length ? i % this.order.length : 0;
    } else {
      this.next = (i + 1) % this.order.length;
    }
    return job;
  }

  /** Removes up to `n` jobs, the newest of the longest flows first. */
  takeNewest(n: number): Job[] {
    const out: Job[] = [];
    while (out.length < n && this.length > 0) {
      let longest = this.order[0]!;
      for (const f of this.order) if (this.flows.get(f)!.length > this.flows.get(longest)!.length) longest = f;
      const q = this.flows.get(longest)!;
      out.push(q.pop()!);
      this.length--;
      if (q.length === 0) {
        const i = this.order.indexOf(longest);
        this.flows.delete(longest);
        this.order.splice(i, 1);
        this.next = this.order.length ? this.next % this.order.length : 0;
      }
    }
    return out;
  }

  all(): Job[] {
    return [...this.flows.values()].flat();
  }
}

export class Dispatcher {
  private readonly waiting = new Map<string, FairQueue>();
  /** Destinations with waiting work, in round-robin order. */
  private ring: string[] = [];
  private cursor = 0;
  private readonly activeBy = new Map<string, number>();
  private activeTotal = 0;

  private readonly capOf: (key: string) => number;

  /**
   * @param max global cap on concurrent tasks (>= 1).
   * @param perDestination cap on concurrent tasks per destination key (>= 1), or the function
   *   giving it per key (asked whenever a task could start; a lowered cap lets running tasks finish).
   * @throws RangeError when a cap is below 1.
   */
  constructor(private readonly max: number, perDestination: number | ((key: string) => number)) {
    if (!(max >= 1) || (typeof perDestination === 'number' && !(perDestination >= 1))) throw new RangeError('dispatcher caps must be >= 1');
    this.capOf = typeof perDestination === 'number' ? () => perDestination : perDestination;
  }

  /** Tasks running now, in all or for one destination. */
  active(key?: string): number { return key === undefined ? this.activeTotal : (this.activeBy.get(key) ?? 0); }

  /** Tasks waiting for a slot of one destination. */
  waitingFor(key: string): number {
    return this.waiting.get(key)?.length ?? 0;
  }

  /** Destinations with waiting tasks. */
  waitingKeys(): readonly string[] {
    return this.ring;
  }

  /** Tasks waiting for a slot. */
  waitingCount(): number {
    let n = 0;
    for (const q of this.waiting.values()) n += q.length;
    return n;
  }

  /**
   * Runs `task` when a slot for `key` is free, in turn with the other flows waiting for `key`
   * (`flow`: the sender, default one flow for all). Resolves with the task's result, or CANCELLED
   * when `cancelWaiting()` was called before it started, or SHED. Rejects only when the task rejects.
   */
  run<T>(key: string, task: () => Promise<T>, flow = ''): Promise<T | typeof CANCELLED | typeof SHED> {
    return new Promise((resolve, reject) => {
      const job: Job = {
        cancel: (why) => resolve(why),
        start: () => {
          this.activeTotal++;
          this.activeBy.set(key, (this.activeBy.get(key) ?? 0) + 1);
          let p: Promise<T>;
          try { p = task(); } catch (err) { p = Promise.reject(err); }
          p.then(resolve, reject).finally(() => this.finished(key));
        },
      };
      let q = this.waiting.get(key);
      if (!q) {
        q = new FairQueue();
        this.waiting.set(key, q);
        this.ring.push(key);
      }
      q.push(flow, job);
      this.pump();
    });
  }

  /** Cancels every task that has not started (they resolve with CANCELLED). Running tasks go on. */
  cancelWaiting(): void {
    const jobs = [...this.waiting.values()].flatMap((q) => q.all());
    this.waiting.clear();
    this.ring = [];
    this.cursor = 0;
    for (const j of jobs) j.cancel(CANCELLED);
  }

  /** Sheds the newest waiting tasks of `key` beyond `keep` (they resolve with SHED). @returns how many. */
  shed(key: string, keep: number): number {
    const q = this.waiting.get(key);
    if (!q || q.length <= keep) return 0;
    const out = q.takeNewest(q.length - Math.max(0, keep));
    if (q.length === 0) {
      this.waiting.delete(key);
      const i = this.ring.indexOf(key);
      if (i >= 0) this.ring.splice(i, 1);
      this.cursor = this.ring.length ? this.cursor % this.ring.length : 0;
    }
    for (const j of out) j.cancel(SHED);
    return out.length;
  }

  /** Starts what a raised cap allows now (a throttle ended, a reload). */
  poke(): void { this.pump(); }

  private finished(key: string): void {
    this.activeTotal--;
    const n = (this.activeBy.get(key) ?? 1) - 1;
    if (n <= 0) this.activeBy.delete(key);
    else this.activeBy.set(key, n);
    this.pump();
  }

  /** Starts waiting jobs while slots are free, visiting destinations round-robin. */
  private pump(): void {
    while (this.activeTotal < this.max && this.ring.length > 0) {
      const i = this.nextEligible();
      if (i < 0) return;
      const key = this.ring[i]!;
      const q = this.waiting.get(key)!;
      const job = q.shift()!;
      if (q.length === 0) {
        this.waiting.delete(key);
        this.ring.splice(i, 1);
        this.cursor = this.ring.length ? i % this.ring.length : 0;
      } else {
        this.cursor = (i + 1) % this.ring.length;
      }
      job.start();
    }
  }

  /** Index in the ring of the next destination (from the cursor) below its cap, or -1. */
  private nextEligible(): number {
    const n = this.ring.length;
    for (let k = 0; k < n; k++) {
      const i = (this.cursor + k) % n;
      const key = this.ring[i]!;
      if ((this.activeBy.get(key) ?? 0) < Math.max(1, this.capOf(key))) return i;
    }
    return -1;
  }
}
