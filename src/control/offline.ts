/**
 * StoreQueueAdmin: queue administration straight on the store, for `postline queue ...` when no
 * server is running (nobody else writes then). Same QueueAdmin shape as the Scheduler; flush just
 * sets the next attempt time to now (never for a message waiting for a later sendAt). Each change
 * writes its event to the event log like the server's (read later by `postline events`, webhooks).
 * Suspensions are written to the destination states table the server loads at start; a bounce
 * writes the outcomes and the DSN marks, and the server sends the DSNs when it starts (a held
 * message's when it is released).
 */
import { destinationText, parseDestinationMatch } from '../config/delivery-shaping.js';
import type { Clock } from '../core/clock.js';
import type { EventRecord } from '../events/record.js';
import { heldError, isScheduled, messageDetail, NoSuchMessageError, scheduledError, type BounceQuery, type DestinationStatus, type MessageDetail, type QueueAdmin } from '../scheduler/admin.js';
import { badDestination } from '../scheduler/destination-holds.js';
import type { DestinationStateRecord, DestinationStateStore } from '../scheduler/destination-store.js';
import { bounceQuery, bounceStored, forEachMatching, statusOf } from '../scheduler/operator.js';
import { factsOfKey, matchRank } from '../scheduler/shaping-rules.js';
import { PostlineError } from '../core/errors.js';
import type { QueuedMessage, QueueStore, QueueSummary } from '../spool/types.js';

export class StoreQueueAdmin implements QueueAdmin {
  /** @param states the destination states table (absent: suspend, resume and destinations refuse). */
  constructor(private readonly store: QueueStore, private readonly clock: Clock, private readonly states?: DestinationStateStore) {}

  private async need(id: string): Promise<QueuedMessage> {
    const m = await this.store.get(id);
    if (!m) throw new NoSuchMessageError(id);
    return m;
  }

  list(): Promise<QueueSummary[]> { return this.store.list(); }

  async show(id: string, opts: { body?: boolean } = {}): Promise<MessageDetail> {
    return messageDetail(this.store, await this.need(id), opts.body === true);
  }

  /** Bulk flush in the store (QueueStore.flushMatching). */
  async flush(opts: { domain?: string } = {}): Promise<number> {
    return this.store.flushMatching({ now: this.clock.now(), ...(opts.domain !== undefined ? { domain: opts.domain } : {}) });
  }

  async flushOne(id: string): Promise<void> {
    const m = await this.need(id);
    if (m.held) throw heldError();
    const now = this.clock.now();
    if (isScheduled(m, now)) throw scheduledError(m.nextAttemptAt);
    await this.store.setNextAttempt(id, now, [this.event('message.flushed', m)]);
  }

  async hold(id: string): Promise<void> {
    const m = await this.need(id);
    if (!m.held) await this.store.setHold(id, true, [this.event('message.held', m)]);
  }

  async release(id: string): Promise<void> {
    const m = await this.need(id);
    if (m.held) await this.store.setHold(id, false, [this.event('message.released', m)]);
  }

  async delete(id: string): Promise<void> {
    const m = await this.need(id);
    await this.store.remove(id, [this.event('message.deleted', m)]);
  }

  /** Stored suspensions and throttles in force (dead destinations are known only to a running server). */
  async listDestinations(): Promise<DestinationStatus[]> {
    const now = this.clock.now();
    return (await this.needStates().list()).filter((r) => r.until === undefined || r.until > now).map(statusOf);
  }

  async suspend(destination: string, opts: { forMs?: number } = {}): Promise<DestinationStatus> {
    const m = parseDestinationMatch(destination);
    if (!m) throw badDestination(destination);
    const now = this.clock.now();
    const rec: DestinationStateRecord = {
      destination: destinationText(m), kind: 'suspend', source: 'operator', reason: 'suspended by the operator', since: now,
      ...(opts.forMs !== undefined ? { until: now + opts.forMs } : {}),
    };
    await this.needStates().put(rec);
    return statusOf(rec);
  }

  async resume(destination: string): Promise<DestinationStatus[]> {
    const m = parseDestinationMatch(destination);
    if (!m) throw badDestination(destination);
    const text = destinationText(m);
    const states = this.needStates();
    const hit = (await states.list()).filter((r) => {
      if (r.destination === text) return true;
      const f = factsOfKey(r.destination);
      return f !== undefined && matchRank(m, f) > 0;
    });
    if (hit.length === 0) throw new PostlineError('ERR_NOT_SUSPENDED', `${text} is neither suspended nor throttled`, { temporary: false });
    for (const r of hit) await states.remove(r.destination, r.kind);
    return hit.map(statusOf);
  }

  /** Bounce in the store: outcomes, events and DSN marks now; the server sends the DSNs when it starts. */
  async bounce(query: BounceQuery): Promise<number> {
    const q = bounceQuery(query);
    let n = 0;
    await forEachMatching(this.store, q, async (id) => { if ((await bounceStored({ store: this.store, clock: this.clock }, id, q)).bounced) n++; });
    return n;
  }

  private needStates(): DestinationStateStore {
    if (!this.states) throw new PostlineError('ERR_NO_DESTINATION_STATES', 'destination states are not available here', { temporary: false });
    return this.states;
  }

  private event(type: EventRecord['type'], m: QueuedMessage): EventRecord {
    return { type, at: this.clock.now(), queueId: m.id, mailFrom: m.mailFrom, ...(m.messageId !== undefined ? { messageId: m.messageId } : {}), ...(m.tags ? { tags: m.tags } : {}), ...(m.metadata ? { metadata: m.metadata } : {}) };
  }
}
