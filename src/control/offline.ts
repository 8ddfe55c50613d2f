/**
 * StoreQueueAdmin: queue administration straight on the store, for `postline queue ...` when no
 * server is running (nobody else writes then). Same QueueAdmin shape as the Scheduler; flush just
 * sets the next attempt time to now (never for a message waiting for a later sendAt). Each change
 * writes its event to the event log like the server's (read later by `postline events`, webhooks).
 */
import type { Clock } from '../core/clock.js';
import type { EventRecord } from '../events/record.js';
import { heldError, isScheduled, messageDetail, NoSuchMessageError, scheduledError, type MessageDetail, type QueueAdmin } from '../scheduler/admin.js';
import type { QueuedMessage, QueueStore, QueueSummary } from '../spool/types.js';

export class StoreQueueAdmin implements QueueAdmin {
  constructor(private readonly store: QueueStore, private readonly clock: Clock) {}

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

  private event(type: EventRecord['type'], m: QueuedMessage): EventRecord {
    return { type, at: this.clock.now(), queueId: m.id, mailFrom: m.mailFrom, ...(m.messageId !== undefined ? { messageId: m.messageId } : {}), ...(m.tags ? { tags: m.tags } : {}), ...(m.metadata ? { metadata: m.metadata } : {}) };
  }
}
