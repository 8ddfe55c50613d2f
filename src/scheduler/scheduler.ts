/**
 * The scheduler: the only writer of queue state (DESIGN.md). It keeps an in-memory index of
 * queue IDs by next attempt time (DueIndex), runs delivery rounds for due messages (round.ts)
 * under global and per-destination concurrency caps (Dispatcher), retries with exponential
 * backoff (RFC 5321 4.5.4.1), expires mail after the queue lifetime (RFC 3463 4.4.7), sends DSNs
 * (RFC 3461 / 3464, notify.ts), removes finished messages, and serves the operator commands
 * (flush, hold, release, delete, list, show) for the control socket.
 *
 * Owns: scheduling state in memory, and every store write except cleanup's commit.
 */
import type { PostlineConfig } from '../config/schema.js';
import type { Clock } from '../core/clock.js';
import type { Logger } from '../core/log.js';
import type { DeliveryAgent } from '../delivery/types.js';
import type { NextHop } from '../routing/types.js';
import type { QueuedMessage, QueueStore, QueueSummary } from '../spool/types.js';
import { heldError, isScheduled, messageDetail, NoSuchMessageError, scheduledError, type MessageDetail, type QueueAdmin } from './admin.js';
import { Dispatcher } from './dispatcher.js';
import { DueIndex } from './due-index.js';
import { Notifier, type DsnPort, type ReportItem } from './notify.js';
import { aboutMessage, overlayUnrecorded, queueLifetimeMs, runRound, writeUnrecorded, type RoundContext, type RoundResult } from './round.js';
import type { EventRecord } from '../events/record.js';

export interface SchedulerOptions {
  readonly store: QueueStore;
  readonly agent: DeliveryAgent;
  /** Next hop of a recipient address; may throw (PostlineError: temporary -> deferred, else bounced). */
  readonly route: (address: string) => NextHop;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly config: PostlineConfig;
  /** DSN builder (src/bounce/dsn.ts) and the way into the queue for generated mail (cleanup). */
  readonly dsn: DsnPort;
  /** Random source in [0, 1) for retry jitter (default Math.random). */
  readonly random?: () => number;
  /** Run the periodic due scan every delivery.scanIntervalMs (default true; tests use runDueOnce). */
  readonly scanTimer?: boolean;
  /** Messages in delivery rounds at once (default 10000); the rest wait in the index. */
  readonly maxActiveMessages?: number;
}

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
  private readonly index = new DueIndex();
  private readonly active = new Map<string, ActiveRound>();
  /** Messages waiting for a future sendAt (never tried yet): flush leaves them alone. */
  private readonly scheduledIds = new Set<string>();
  /** Operator actions per queue ID, one at a time (a flush and a hold at once must not interleave). */
  private readonly adminLocks = new Map<string, Promise<unknown>>();
  private readonly dispatcher: Dispatcher;
  private readonly notifier: Notifier;
  private readonly ctx: RoundContext;
  private readonly maxActive: number;
  private timer: NodeJS.Timeout | undefined;
  private kickPending = false;
  private started = false;
  private stopping = false;

  /** @throws RangeError when the concurrency caps or maxActiveMessages are below 1. */
  constructor(private readonly o: SchedulerOptions) {
    const d = o.config.delivery;
    this.dispatcher = new Dispatcher(d.maxConnections, d.connectionsPerDestination);
    this.maxActive = o.maxActiveMessages ?? 10_000;
    if (!(this.maxActive >= 1)) throw new RangeError('maxActiveMessages must be >= 1');
    this.notifier = new Notifier({ store: o.store, dsn: o.dsn, config: o.config, logger: o.logger, clock: o.clock });
    this.ctx = {
      store: o.store, agent: o.agent, route: o.route, dispatcher: this.dispatcher, clock: o.clock,
      config: o.config, logger: o.logger, random: o.random ?? Math.random, unrecorded: new Map(),
    };
  }

  /**
   * Loads every message that still has pending recipients (held ones stay held) into the index at
   * its stored next attempt time, and starts the due scan. @throws what store.loadAll throws; Error when started twice.
   */
  async start(): Promise<void> {
    if (this.started) throw new Error('scheduler already started');
    this.started = true;
    const all = await this.o.store.loadAll();
    const now = this.o.clock.now();
    for (const m of all) {
      if (isScheduled(m, now)) this.scheduledIds.add(m.id);
      if (!m.held) this.index.set(m.id, m.nextAttemptAt);
    }
    this.o.logger.info({ messages: all.length, scheduled: this.index.size }, 'scheduler started');
    if (this.o.scanTimer !== false) {
      this.timer = setInterval(() => this.scan(), this.o.config.delivery.scanIntervalMs);
      this.timer.unref();
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
    this.timer = undefined;
    this.dispatcher.cancelWaiting();
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
    if (this.stopping || msg.held) return;
    // A first attempt later than the arrival is a sendAt (deferred sending, issue 7 section 2):
    // kept. Otherwise: try now.
    const now = this.o.clock.now();
    if (isScheduled(msg, now)) this.scheduledIds.add(msg.id);
    this.index.set(msg.id, msg.nextAttemptAt > msg.arrivedAt ? Math.max(msg.nextAttemptAt, now) : now);
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

  /** Messages waiting or in delivery (held ones not counted): the backpressure measure. */
  queueSize(): number {
    return this.index.size + this.active.size;
  }

  /** Counts for metrics and tests. */
  stats(): { scheduled: number; activeMessages: number; activeRequests: number; waitingRequests: number } {
    return { scheduled: this.index.size, activeMessages: this.active.size, activeRequests: this.dispatcher.active(), waitingRequests: this.dispatcher.waitingCount() };
  }

  private kick(): void {
    if (this.kickPending || !this.started || this.stopping) return;
    this.kickPending = true;
    setImmediate(() => { this.kickPending = false; this.scan(); });
  }

  private scan(): void {
    if (!this.started || this.stopping) return;
    const now = this.o.clock.now();
    const busy: string[] = [];
    while (this.active.size < this.maxActive) {
      const id = this.index.popDue(now);
      if (id === undefined) break;
      if (this.active.has(id)) busy.push(id);
      else this.startRound(id);
    }
    for (const id of busy) this.index.set(id, now + this.o.config.delivery.scanIntervalMs);
  }

  private startRound(id: string): void {
    this.scheduledIds.delete(id);
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
    const later = (): void => { if (!this.stopping) this.index.set(id, this.o.clock.now() + this.o.config.delivery.retry.initialMs); };
    await writeUnrecorded(this.ctx, id);
    try {
      msg = await this.o.store.get(id);
    } catch (err) {
      this.o.logger.error({ err, queueId: id }, 'cannot read queue entry; retrying later');
      return later();
    }
    if (!msg || entry.deleted || msg.held) return;
    overlayUnrecorded(this.ctx, msg);
    if (isPending(msg)) {
      const res = await runRound(this.ctx, msg, { signal: entry.abort.signal, isDeleted: () => entry.deleted });
      if (res.removed) return void this.index.delete(id);
      if (res.quarantined || entry.deleted) return;
      if (await this.notifyAfterRound(msg, res)) return void this.index.delete(id);
    } else {
      // Only owed DSNs left (a crash or a failed DSN commit after the outcome was written).
      if ((await this.notifier.sendOwed(msg, new Map(), !this.ctx.unrecorded.has(id))).removed) return void this.index.delete(id);
    }
    if (entry.deleted) return;
    if (this.ctx.unrecorded.has(id) && !needsWork(msg)) return later();
    if (!needsWork(msg)) return this.removeDone(msg);
    if (entry.held || this.stopping) return;
    const retryDsnAt = this.o.clock.now() + this.o.config.delivery.retry.initialMs;
    this.index.set(id, isPending(msg) ? msg.nextAttemptAt : Math.max(msg.nextAttemptAt, retryDsnAt));
  }

  /** Removes a finished message (every recipient final, no DSN owed) left over by an earlier round. */
  private async removeDone(msg: QueuedMessage): Promise<void> {
    try {
      await this.o.store.record(msg.id, { updates: [], remove: true });
    } catch (err) {
      this.o.logger.error({ err, queueId: msg.id }, 'cannot remove finished message');
      return;
    }
    this.index.delete(msg.id);
  }

  /**
   * Failure and success DSNs for this round's outcomes (the marks cleared, and the message removed
   * when done, in one commit), then the delay DSN when one is due. @returns true when removed.
   */
  private async notifyAfterRound(msg: QueuedMessage, res: RoundResult): Promise<boolean> {
    const fresh = new Map<number, ReportItem>([...res.failures, ...res.successes].map((i) => [i.recipient.idx, i]));
    if ((await this.notifier.sendOwed(msg, fresh, !this.ctx.unrecorded.has(msg.id))).removed) return true;
    const now = this.o.clock.now();
    // Only recipients deferred in this round (not ones whose request was cancelled at shutdown).
    const delayed = this.notifier.delayCandidates(msg, now).filter((r) => res.latest.has(r.idx));
    if (delayed.length === 0) return false;
    const until = msg.arrivedAt + queueLifetimeMs(msg, this.o.config);
    const items: ReportItem[] = delayed.map((r) => {
      const l = res.latest.get(r.idx);
      return {
        recipient: r, action: 'delayed', status: l?.dsnStatus ?? r.dsnStatus ?? '4.0.0', diagnostic: l?.diagnostic ?? r.lastReply,
        remote: l?.remote, remoteMta: l?.remoteMta ?? r.remoteMta, lastAttemptAt: l ? now : undefined, willRetryUntil: until,
      };
    });
    const sent = await this.notifier.send(msg, 'delay', items);
    if (sent.outcome === 'failed') return false;
    try {
      await this.o.store.record(msg.id, {
        updates: delayed.map((r) => ({ idx: r.idx, status: 'pending', delayNotified: true })),
        events: sent.outcome === 'dropped' ? [sent.event] : [],
      });
      for (const r of delayed) r.delayNotified = true;
    } catch (err) {
      this.o.logger.error({ err, queueId: msg.id }, 'cannot record that a delay DSN was sent');
    }
    return false;
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

  /** Runs `fn` after every earlier operator action on `id` (one at a time per message). */
  private withLock<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.adminLocks.get(id) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.adminLocks.set(id, tail);
    void tail.then(() => { if (this.adminLocks.get(id) === tail) this.adminLocks.delete(id); });
    return run;
  }

  /**
   * Makes every waiting message due now: not held, not running, not waiting for a later sendAt
   * (those go at their time). @returns how many.
   */
  async flush(): Promise<number> {
    let n = 0;
    for (const id of this.index.ids()) {
      if (this.scheduledIds.has(id)) continue;
      const done = await this.withLock(id, async () => {
        if (!this.index.has(id)) return false; // held, deleted or started meanwhile
        const now = this.o.clock.now();
        try {
          await this.o.store.setNextAttempt(id, now, [{ type: 'message.flushed', at: now, queueId: id }]);
        } catch (err) {
          this.o.logger.warn({ err, queueId: id }, 'cannot flush message');
          return false;
        }
        if (this.index.has(id)) this.index.set(id, now);
        return true;
      });
      if (done) n++;
    }
    this.kick();
    return n;
  }

  /**
   * Makes one message due now (no-op while it is being delivered).
   * @throws NoSuchMessageError, ERR_MESSAGE_HELD, ERR_MESSAGE_SCHEDULED (waiting for a later sendAt)
   */
  async flushOne(id: string): Promise<void> {
    return this.withLock(id, async () => {
      const msg = await this.need(id);
      if (msg.held) throw heldError();
      const now = this.o.clock.now();
      if (isScheduled(msg, now)) throw scheduledError(msg.nextAttemptAt);
      if (this.active.has(id)) return;
      await this.o.store.setNextAttempt(id, now, [this.adminEvent('message.flushed', msg)]);
      if (!this.stopping) this.index.set(id, now);
      this.kick();
    });
  }

  /** Puts a message on hold: no delivery until released (a running round finishes). @throws NoSuchMessageError */
  async hold(id: string): Promise<void> {
    return this.withLock(id, async () => {
      const msg = await this.need(id);
      if (msg.held) return;
      await this.o.store.setHold(id, true, [this.adminEvent('message.held', msg)]);
      this.index.delete(id);
      const a = this.active.get(id);
      if (a) a.held = true;
    });
  }

  /** Releases a held message; it is tried at its stored next attempt time. @throws NoSuchMessageError */
  async release(id: string): Promise<void> {
    return this.withLock(id, async () => {
      const msg = await this.need(id);
      if (!msg.held) return;
      await this.o.store.setHold(id, false, [this.adminEvent('message.released', msg)]);
      const a = this.active.get(id);
      if (a) a.held = false;
      if (!this.stopping) this.index.set(id, msg.nextAttemptAt);
      this.kick();
    });
  }

  /** Deletes a message (no DSN); a running round is aborted first. @throws NoSuchMessageError */
  async delete(id: string): Promise<void> {
    return this.withLock(id, async () => {
      const msg = await this.need(id);
      const a = this.active.get(id);
      if (a) {
        a.deleted = true;
        a.abort.abort();
        await a.done;
      }
      this.index.delete(id);
      this.scheduledIds.delete(id);
      this.ctx.unrecorded.delete(id);
      await this.o.store.remove(id, [this.adminEvent('message.deleted', msg)]);
    });
  }
}
