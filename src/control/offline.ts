/**
 * StoreQueueAdmin: queue administration straight on the store, for `postline queue ...` when no
 * server is running (nobody else writes then). Same QueueAdmin shape as the Scheduler; flush just
 * sets the next attempt time to now. Emits no events (no server to hear them).
 */
import type { Clock } from '../core/clock.js';
import { heldError, messageDetail, NoSuchMessageError, type MessageDetail, type QueueAdmin } from '../scheduler/admin.js';
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

  async flush(): Promise<number> {
    const now = this.clock.now();
    let n = 0;
    for (const s of await this.store.list()) {
      if (s.held) continue;
      await this.store.setNextAttempt(s.id, now);
      n++;
    }
    return n;
  }

  async flushOne(id: string): Promise<void> {
    const m = await this.need(id);
    if (m.held) throw heldError();
    await this.store.setNextAttempt(id, this.clock.now());
  }

  async hold(id: string): Promise<void> {
    await this.need(id);
    await this.store.setHold(id, true);
  }

  async release(id: string): Promise<void> {
    await this.need(id);
    await this.store.setHold(id, false);
  }

  async delete(id: string): Promise<void> {
    await this.need(id);
    await this.store.remove(id);
  }
}
