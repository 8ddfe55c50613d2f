/**
 * The scheduler's operator commands on destinations and in bulk (`queue destinations`, `suspend`,
 * `resume`, `bounce`), kept beside scheduler.ts, which hands over the narrow part of its state
 * these need (DestinationAdminHost). Owns nothing of its own.
 */
import { parseDestinationMatch } from '../config/delivery-shaping.js';
import type { Clock } from '../core/clock.js';
import type { Logger } from '../core/log.js';
import type { QueueStore } from '../spool/types.js';
import type { BounceQuery, DestinationStatus } from './admin.js';
import type { DestinationBook } from './destinations.js';
import type { Notifier } from './notify.js';
import { bounceQuery, bounceStored, deadStatus, forEachMatching, statusOf } from './operator.js';
import type { RoundContext } from './round.js';
import type { Shaping } from './shaping.js';

/** What the scheduler lends these commands. */
export interface DestinationAdminHost {
  readonly store: QueueStore;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly shaping: Shaping;
  readonly book: DestinationBook;
  readonly notifier: Notifier;
  readonly unrecorded: RoundContext['unrecorded'];
  /** Aborts `id`'s running round, if any, so that it does not place the message again, and waits for it. @returns true when one ran. */
  interrupt(id: string): Promise<boolean>;
  /** Runs `fn` under the operator lock of `id`. */
  lock<T>(id: string, fn: () => Promise<T>): Promise<T>;
  /** `id` was written with next attempt `at` and still has work (not held). */
  place(id: string, at: number): void;
  /** `id` left the queue. */
  gone(id: string): void;
  /** Next attempt times changed in bulk in the store: read the due window again and scan. */
  reread(): Promise<void>;
  stopping(): boolean;
}

export class DestinationAdmin {
  constructor(private readonly h: DestinationAdminHost) {}

  /** Dead, suspended and throttled destinations now. */
  async list(): Promise<DestinationStatus[]> {
    const now = this.h.clock.now();
    return [...this.h.book.dead(now).map(deadStatus), ...this.h.shaping.holds.list(now).map(statusOf)];
  }

  /** Suspends a destination (kept across restarts). @throws PostlineError ERR_BAD_DESTINATION; the store's error */
  async suspend(destination: string, opts: { forMs?: number } = {}): Promise<DestinationStatus> {
    return statusOf(await this.h.shaping.suspend(destination, opts.forMs));
  }

  /**
   * Ends a destination's suspensions and throttles; its waiting mail is tried now (the messages
   * this process postponed; for a domain name, every message with a pending recipient there, as
   * `queue flush --domain`, so mail postponed before a restart goes too).
   * @throws PostlineError ERR_BAD_DESTINATION, ERR_NOT_SUSPENDED; StoreError
   */
  async resume(destination: string): Promise<DestinationStatus[]> {
    const ended = await this.h.shaping.resume(destination);
    const m = parseDestinationMatch(destination);
    if (m?.kind === 'domain' && !this.h.stopping()) {
      await this.h.store.flushMatching({ now: this.h.clock.now(), domain: m.domain });
      await this.h.reread();
    }
    return ended.map(statusOf);
  }

  /**
   * Bounces what `q` matches (operator.ts), one message at a time under its operator lock; a running
   * round is aborted first (what it delivered stays delivered). @returns messages affected.
   * @throws PostlineError ERR_BAD_QUERY; StoreError when the listing or a write fails (earlier ones stay).
   */
  async bounce(query: BounceQuery): Promise<number> {
    const q = bounceQuery(query);
    let n = 0;
    await forEachMatching(this.h.store, q, (id) => this.h.lock(id, async () => { if (await this.bounceOne(id, q)) n++; }));
    this.h.logger.info({ bounced: n, ...q }, 'mail bounced by the operator');
    return n;
  }

  private async bounceOne(id: string, q: BounceQuery): Promise<boolean> {
    const wasRunning = await this.h.interrupt(id);
    const r = await bounceStored({ store: this.h.store, clock: this.h.clock, notifier: this.h.notifier, unrecorded: this.h.unrecorded }, id, q);
    if (r.removed) this.h.gone(id);
    else if (r.msg && (wasRunning || r.bounced) && !r.msg.held && !this.h.stopping()) this.h.place(id, r.msg.nextAttemptAt);
    return r.bounced;
  }
}
