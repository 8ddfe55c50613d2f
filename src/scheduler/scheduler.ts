/**
 * The scheduler: the only writer of queue state (DESIGN.md). It keeps a bounded window of queue
 * IDs by next attempt time (DueWindow: the rest stays in the store and is read by due time), runs
 * delivery rounds for due messages (round.ts) under global and per-destination concurrency caps
 * (Dispatcher), knows dead and slow destinations (DestinationBook), retries with exponential
 * backoff (RFC 5321 4.5.4.1), expires mail after the queue lifetime (RFC 3463 4.4.7), sends DSNs
 * (RFC 3461 / 3464, notify.ts), removes finished messages, applies traffic shaping (shaping.ts:
 * per-destination limits, rates, suspensions, throttles), and serves the operator commands (flush,
 * hold, release, delete, list, show, destinations, suspend, resume, bounce) for the control socket.
 *
 * Owns: scheduling state in memory, and every store write except cleanup's commit.
 */
import { StateError } from '../core/errors.js';
import type { QueuedMessage, QueueSummary } from '../spool/types.js';
import { heldError, isScheduled, KeyedLock, messageDetail, NoSuchMessageError, scheduledError, type BounceQuery, type DestinationStatus, type MessageDetail, type QueueAdmin } from './admin.js';
import { DestinationAdmin } from './destination-admin.js';
import { Shaping } from './shaping.js';
import { DestinationBook, shedSlow } from './destinations.js';
import { Dispatcher } from './dispatcher.js';
import { DueWindow } from './due-window.js';
import { Notifier } from './notify.js';
import { aboutMessage, runRound, type RoundContext } from './round.js';
import type { SchedulerOptions } from './options.js';

export type { SchedulerOptions } from './options.js';
import { Egress, destinationOfPath } from './egress.js';
import { Sites } from './sites.js';
import { ConcurrencyWindows } from './concurrency-window.js';
import { overlayUnrecorded, writeUnrecorded } from './unrecorded.js';
import type { EventRecord } from '../events/record.js';


interface ActiveRound {
  readonly abort: AbortController;
  deleted: boolean;
  held: boolean;
  done: Promise<void>;
}

const isPending = (m: QueuedMessage): boolean => m.recipients.some((r) => r.status === 'pending');
/** Still work to do: a pending recipient or a DSN not yet queued. */
const needsWork = (m: QueuedMessage): boolean => m.recipients.some((r) => r.status === 'pending' || r.dsnOwed !== undefined);

export class Scheduler implements QueueAdmin {
  private readonly window: DueWindow;
  private readonly active = new Map<string, ActiveRound>();
  /** Dead destinations and waiting caps (shared with the rounds). */
  readonly destinations: DestinationBook;
  /** Traffic shaping: per-destination limits, suspensions and throttles (shared with the rounds). */
  readonly shaping: Shaping;
  /** Egress sources, pools and warm-up counts (egress.ts). */
  readonly egress: Egress;
  /** Destinations grouped by MX host set (sites.ts). */
  readonly sites: Sites;
  /** Slow start per dispatcher key (concurrency-window.ts). */
  private readonly windows: ConcurrencyWindows;
  /** Messages in the store (held included): counted at start, kept by enqueue and removal, recounted each minute. */
  private queued = 0;
  private recountTimer: NodeJS.Timeout | undefined;
  /** Operator actions per queue ID, one at a time (a flush and a hold at once must not interleave). */
  private readonly adminLocks = new KeyedLock();
  private readonly dispatcher: Dispatcher;
  private readonly notifier: Notifier;
  private readonly ctx: RoundContext;
  private readonly dests: DestinationAdmin;
  private readonly maxActive: number;
  private timer: NodeJS.Timeout | undefined;
  private kickPending = false;
  private started = false;
  private stopping = false;

  /** @throws RangeError when the concurrency caps or maxActiveMessages are below 1. */
  constructor(private readonly o: SchedulerOptions) {
    const d = o.config.delivery;
    this.shaping = new Shaping({
      config: o.config, clock: o.clock, logger: o.logger, random: o.random ?? Math.random,
      ...(o.destinationStates ? { store: o.destinationStates } : {}), ...(o.mxNames ? { mxNames: o.mxNames } : {}),
      ...(o.shortWaitMs !== undefined ? { shortWaitMs: o.shortWaitMs } : {}),
      onResume: (ids) => this.wake(ids),
    });
    // The scheduler is the one authority on connections per destination; the agent's pool follows.
    // Dispatcher keys are egress paths (destination x source) when pools are configured: each gets the destination's cap.
    const concurrency = (key: string): number => this.shaping.concurrency(this.sites.destinationOf(destinationOfPath(key)));
    // Slow start: the dispatcher's cap is the concurrency window, at most the shaping cap.
    this.windows = new ConcurrencyWindows({ initial: () => o.config.delivery.initialConcurrency, now: () => o.clock.now() });
    this.dispatcher = new Dispatcher(d.maxConnections, (key) => this.windows.limit(key, concurrency(key)));
    this.maxActive = o.maxActiveMessages ?? d.maxActiveMessages;
    if (!(this.maxActive >= 1)) throw new RangeError('maxActiveMessages must be >= 1');
    this.window = new DueWindow(o.store, o.dueWindow ?? d.dueWindow, 5000, o.logger);
    this.destinations = new DestinationBook({
      retry: d.retry, concurrency, minWaiting: Math.max(2 * d.connectionsPerDestination, 20), horizonMs: d.destinationBacklogMs,
    });
    this.notifier = new Notifier({ store: o.store, dsn: o.dsn, config: o.config, logger: o.logger, clock: o.clock });
    this.sites = new Sites({ ...(o.mxNames ? { mxNames: (d: string) => this.shaping.mxNamesOf(d) } : {}), enabled: () => o.config.delivery.sites });
    this.egress = new Egress({ config: () => o.config.egress, clock: o.clock, logger: o.logger, ...(o.egressFile ? { file: o.egressFile } : {}) });
    this.ctx = {
      store: o.store, agent: o.agent, route: o.route, ...(o.returnPath ? { returnPath: o.returnPath } : {}), dispatcher: this.dispatcher, clock: o.clock,
      config: o.config, logger: o.logger, random: o.random ?? Math.random, unrecorded: new Map(), destinations: this.destinations, shaping: this.shaping,
      egress: this.egress, sites: this.sites,
      windows: { feedback: (key, reached) => this.windows.feedback(key, reached, concurrency(key)) },
    };
    this.dests = new DestinationAdmin({
      store: o.store, clock: o.clock, logger: o.logger, shaping: this.shaping, book: this.destinations, notifier: this.notifier, unrecorded: this.ctx.unrecorded,
      interrupt: async (id) => {
        const a = this.active.get(id); // its round must not place it again (held): the caller does
        if (a) { a.held = true; a.abort.abort(); await a.done; }
        return a !== undefined;
      },
      lock: (id, fn) => this.adminLocks.run(id, fn),
      place: (id, at) => this.window.place(id, at),
      gone: (id) => this.gone(id),
      reread: async () => { this.window.reset(); await this.window.refill(); this.kick(); },
      stopping: () => this.stopping,
    });
  }

  /**
   * Reads the first window of due messages from the store (at most delivery.dueWindow IDs, not the
   * whole queue: start-up time and memory do not grow with it) and starts the due scan.
   * @throws StoreError when the store cannot be counted; Error when started twice.
   */
  async start(): Promise<void> {
    if (this.started) throw new StateError('scheduler already started');
    this.started = true;
    await this.shaping.start(); // the suspended and throttled destinations (a small table)
    this.egress.start(); // warm-up counts written every few seconds
    // One read before the listeners open; the window fills behind it (scan), and the queue is
    // counted a moment later: neither holds the start at a million queued.
    await this.window.refill(1);
    const count = (): Promise<void> => this.o.store.countMessages().then((n) => {
      this.queued = n;
      this.o.logger.info({ messages: n, inWindow: this.window.size, complete: this.window.complete }, 'queue counted');
    }, (err: unknown) => this.o.logger.warn({ err }, 'cannot count the queue'));
    if (this.o.scanTimer === false) await count();
    else setTimeout(() => void count(), 500).unref();
    this.o.logger.info({ inWindow: this.window.size, complete: this.window.complete }, 'scheduler started');
    if (this.o.scanTimer !== false) {
      this.timer = setInterval(() => this.scan(), this.o.config.delivery.scanIntervalMs);
      this.timer.unref();
      this.recountTimer = setInterval(() => {
        this.o.store.countMessages().then((n) => { this.queued = n; }, () => undefined);
      }, 60_000);
      this.recountTimer.unref();
    }
    this.kick();
  }

  /**
   * Stops taking new work; requests not yet started are cancelled (their recipients stay pending),
   * in-flight requests get `graceMs` (ms) to finish and are then aborted through their AbortSignal.
   * Resolves when nothing is in flight. Never rejects.
   */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    if (this.timer) clearInterval(this.timer);
    if (this.recountTimer) clearInterval(this.recountTimer);
    this.timer = undefined;
    this.dispatcher.cancelWaiting();
    this.egress.stop();
    if (this.active.size === 0) return;
    let t: NodeJS.Timeout | undefined;
    const grace = new Promise<void>((resolve) => { t = setTimeout(resolve, Math.max(0, graceMs)); });
    await Promise.race([this.idle(), grace]);
    clearTimeout(t);
    for (const a of this.active.values()) a.abort.abort();
    await this.idle();
  }

  /** Cleanup committed `msg`: schedule it now without waiting for the scan. */
  enqueued(msg: QueuedMessage): void {
    this.queued++;
    if (this.stopping || msg.held) return;
    // A first attempt later than the arrival is a sendAt (deferred sending, issue 7 section 2):
    // kept (in the window only when it is due soon enough). Otherwise: try now, even behind a backlog.
    const now = this.o.clock.now();
    if (isScheduled(msg, now)) this.window.place(msg.id, msg.nextAttemptAt);
    else this.window.add(msg.id, Math.min(msg.nextAttemptAt, now));
    this.kick();
  }

  /** Tests: starts every due message and resolves when all running rounds are done. */
  async runDueOnce(): Promise<void> {
    this.scan();
    await this.idle();
  }

  /** Resolves when no delivery round is running (bounded wait: rounds end on their own). */
  async idle(): Promise<void> {
    for (let i = 0; i < 10_000 && this.active.size > 0; i++) {
      await Promise.allSettled([...this.active.values()].map((a) => a.done));
    }
  }

  /** Messages in the queue (held ones included): the backpressure measure. */
  queueSize(): number {
    return this.queued;
  }

  /** Counts for metrics and tests: `scheduled` is the in-memory window, `loaded` the rows it read from the store so far. */
  stats(): { scheduled: number; activeMessages: number; activeRequests: number; waitingRequests: number; loaded: number; deadDestinations: number; suspendedDestinations: number; throttledDestinations: number } {
    const now = this.o.clock.now();
    const held = this.shaping.holds.counts(now);
    return {
      scheduled: this.window.size, activeMessages: this.active.size, activeRequests: this.dispatcher.active(), waitingRequests: this.dispatcher.waitingCount(),
      loaded: this.window.loaded, deadDestinations: this.destinations.dead(now).length, suspendedDestinations: held.suspended, throttledDestinations: held.throttled,
    };
  }

  private kick(): void {
    if (this.kickPending || !this.started || this.stopping) return;
    this.kickPending = true;
    setImmediate(() => { this.kickPending = false; this.scan(); });
  }

  private scan(): void {
    if (!this.started || this.stopping) return;
    const now = this.o.clock.now();
    this.shaping.sweep(now);
    this.dispatcher.poke();
    shedSlow(this.dispatcher, this.destinations, now);
    const busy: string[] = [];
    while (this.active.size < this.maxActive) {
      const id = this.window.popDue(now);
      if (id === undefined) break;
      if (this.active.has(id)) busy.push(id);
      else this.startRound(id);
    }
    // Running already (read again by a refill): the round places it when it ends.
    for (const id of busy) this.window.add(id, now + this.o.config.delivery.scanIntervalMs);
    if (this.window.wantsRefill()) void this.window.refill().then((n) => { if (n > 0) this.kick(); });
  }

  private startRound(id: string): void {
    const entry: ActiveRound = { abort: new AbortController(), deleted: false, held: false, done: Promise.resolve() };
    this.active.set(id, entry);
    entry.done = this.process(id, entry)
      .catch((err: unknown) => this.o.logger.error({ err, queueId: id }, 'delivery round failed'))
      .finally(() => {
        this.active.delete(id);
        this.kick();
      });
  }

  private async process(id: string, entry: ActiveRound): Promise<void> {
    let msg: QueuedMessage | undefined;
    const later = (): Promise<void> => this.reschedule(id, this.o.clock.now() + this.o.config.delivery.retry.initialMs);
    await writeUnrecorded(this.ctx, id);
    try {
      msg = await this.o.store.get(id);
    } catch (err) {
      this.o.logger.error({ err, queueId: id }, 'cannot read queue entry; retrying later');
      return later();
    }
    if (!msg || entry.deleted || msg.held) return;
    overlayUnrecorded(this.ctx, msg);
    let postponeUntil: number | undefined;
    let attempted = false;
    if (isPending(msg)) {
      const res = await runRound(this.ctx, msg, { signal: entry.abort.signal, isDeleted: () => entry.deleted });
      if (res.removed) return this.gone(id);
      if (res.quarantined || entry.deleted) return;
      if (await this.notifier.afterRound(msg, res, !this.ctx.unrecorded.has(id))) return this.gone(id);
      postponeUntil = res.postponeUntil;
      attempted = res.latest.size > 0;
    } else {
      // Only owed DSNs left (a crash or a failed DSN commit after the outcome was written).
      if ((await this.notifier.sendOwed(msg, new Map(), !this.ctx.unrecorded.has(id))).removed) return this.gone(id);
    }
    if (entry.deleted) return;
    if (this.ctx.unrecorded.has(id) && !needsWork(msg)) return later();
    if (!needsWork(msg)) return this.removeDone(msg);
    if (entry.held || this.stopping) return;
    if (!isPending(msg)) return this.reschedule(id, Math.max(msg.nextAttemptAt, this.o.clock.now() + this.o.config.delivery.retry.initialMs));
    if (postponeUntil !== undefined) {
      // Groups left untried (their destination had too much waiting): no attempt counted for them.
      return this.reschedule(id, attempted ? Math.min(msg.nextAttemptAt, postponeUntil) : postponeUntil);
    }
    this.window.place(id, msg.nextAttemptAt);
  }

  /** `id` left the queue. */
  private gone(id: string): void {
    this.window.delete(id);
    this.queued = Math.max(0, this.queued - 1);
  }

  /**
   * Moves `id`'s next attempt to `at` in the store first (the store is the truth the window reads),
   * then in the window. A failed write keeps it in the window only (tried again then).
   */
  private async reschedule(id: string, at: number): Promise<void> {
    if (this.stopping) return;
    try {
      await this.o.store.setNextAttempt(id, at);
    } catch (err) {
      this.o.logger.warn({ err, queueId: id }, 'cannot write the next attempt time; kept in memory');
      return void this.window.add(id, at);
    }
    this.window.place(id, at);
  }

  /** Removes a finished message (every recipient final, no DSN owed) left over by an earlier round. */
  private async removeDone(msg: QueuedMessage): Promise<void> {
    try {
      await this.o.store.record(msg.id, { updates: [], remove: true });
    } catch (err) {
      this.o.logger.error({ err, queueId: msg.id }, 'cannot remove finished message');
      return;
    }
    this.gone(msg.id);
  }

  /** An operator event about `msg`. */
  private adminEvent(type: EventRecord['type'], msg: QueuedMessage): EventRecord {
    return { type, at: this.o.clock.now(), ...aboutMessage(msg) };
  }

  private async need(id: string): Promise<QueuedMessage> {
    const msg = await this.o.store.get(id);
    if (!msg) throw new NoSuchMessageError(id);
    return msg;
  }

  /** Summaries for `queue list` (from the store). */
  async list(): Promise<QueueSummary[]> {
    return this.o.store.list();
  }

  /** Metadata, headers and optionally the whole message. @throws NoSuchMessageError */
  async show(id: string, opts: { body?: boolean } = {}): Promise<MessageDetail> {
    return messageDetail(this.o.store, await this.need(id), opts.body === true);
  }


  /**
   * Bulk flush: every message not held, not running and not waiting for a later sendAt (or, with
   * `domain`, those with a pending recipient there) is made due now in the store, a commit per
   * few thousand, then the window is read again from the start; dead destinations are
   * tried again at once. Answered when the store is
   * written (about 100,000 a second), not when the mail is delivered. @returns how many.
   * @throws StoreError when a commit fails (the ones before it stay flushed).
   */
  async flush(opts: { domain?: string } = {}): Promise<number> {
    if (this.stopping) return 0;
    const now = this.o.clock.now();
    const t0 = Date.now();
    // The operator says "now": dead destinations are tried again at once (Postfix's flush does the
    // same), before the flush so that what it makes due is not deferred again meanwhile.
    const revived = this.destinations.reviveAll();
    const n = await this.o.store.flushMatching({ now, ...(opts.domain !== undefined ? { domain: opts.domain } : {}) }, (done) => {
      this.o.logger.debug({ flushed: done }, 'flushing');
    });
    this.window.reset();
    await this.window.refill();
    this.o.logger.info({ flushed: n, domain: opts.domain, revived, ms: Date.now() - t0 }, 'queue flushed');
    this.kick();
    return n;
  }

  /**
   * Makes one message due now (no-op while it is being delivered).
   * @throws NoSuchMessageError, ERR_MESSAGE_HELD, ERR_MESSAGE_SCHEDULED (waiting for a later sendAt)
   */
  async flushOne(id: string): Promise<void> {
    return this.adminLocks.run(id, async () => {
      const msg = await this.need(id);
      if (msg.held) throw heldError();
      const now = this.o.clock.now();
      if (isScheduled(msg, now)) throw scheduledError(msg.nextAttemptAt);
      if (this.active.has(id)) return;
      await this.o.store.setNextAttempt(id, now, [this.adminEvent('message.flushed', msg)]);
      if (!this.stopping) this.window.add(id, now);
      this.kick();
    });
  }

  /** Puts a message on hold: no delivery until released (a running round finishes). @throws NoSuchMessageError */
  async hold(id: string): Promise<void> {
    return this.adminLocks.run(id, async () => {
      const msg = await this.need(id);
      if (msg.held) return;
      await this.o.store.setHold(id, true, [this.adminEvent('message.held', msg)]);
      this.window.delete(id);
      const a = this.active.get(id);
      if (a) a.held = true;
    });
  }

  /** Releases a held message; it is tried at its stored next attempt time. @throws NoSuchMessageError */
  async release(id: string): Promise<void> {
    return this.adminLocks.run(id, async () => {
      const msg = await this.need(id);
      if (!msg.held) return;
      await this.o.store.setHold(id, false, [this.adminEvent('message.released', msg)]);
      const a = this.active.get(id);
      if (a) a.held = false;
      if (!this.stopping) this.window.place(id, msg.nextAttemptAt);
      this.kick();
    });
  }

  /** Deletes a message (no DSN); a running round is aborted first. @throws NoSuchMessageError */
  async delete(id: string): Promise<void> {
    return this.adminLocks.run(id, async () => {
      const msg = await this.need(id);
      const a = this.active.get(id);
      if (a) {
        a.deleted = true;
        a.abort.abort();
        await a.done;
      }
      this.window.delete(id);
      this.ctx.unrecorded.delete(id);
      await this.o.store.remove(id, [this.adminEvent('message.deleted', msg)]);
      this.queued = Math.max(0, this.queued - 1);
    });
  }

  /** Mail that waited for a suspension the operator ended: due now (in memory; the round writes its next time). */
  private wake(ids: readonly string[]): void {
    if (this.stopping) return;
    const now = this.o.clock.now();
    for (const id of ids) if (!this.active.has(id)) this.window.add(id, now);
    this.kick();
  }

  /** Dead, suspended and throttled destinations now (destination-admin.ts). */
  listDestinations(): Promise<DestinationStatus[]> { return this.dests.list(); }
  /** Suspends a destination, kept across restarts. @throws PostlineError ERR_BAD_DESTINATION; the store's error */
  suspend(destination: string, opts: { forMs?: number } = {}): Promise<DestinationStatus> { return this.dests.suspend(destination, opts); }
  /** Ends its suspensions and throttles; its mail goes now. @throws PostlineError ERR_BAD_DESTINATION, ERR_NOT_SUSPENDED */
  resume(destination: string): Promise<DestinationStatus[]> { return this.dests.resume(destination); }
  /** Bounces the mail `q` matches, with DSNs. @returns messages affected. @throws PostlineError ERR_BAD_QUERY; StoreError */
  bounce(q: BounceQuery): Promise<number> { return this.dests.bounce(q); }
}
