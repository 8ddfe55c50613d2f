/**
 * ArrayEventSource: an in-test double of the queue store's event log (EventSource of
 * src/webhooks/dispatcher.ts) backed by an array, until the store's outbox is used instead.
 * Ids grow by one per appended event; prune() drops the oldest (like retention).
 */
import type { EventQuery, EventRecord, StoredEvent } from '../../src/events/record.js';
import type { EventSource } from '../../src/webhooks/dispatcher.js';

export class ArrayEventSource implements EventSource {
  private events: StoredEvent[] = [];
  private nextId = 1;
  /** Called after each append with the new events (like QueueStore.setEventListener). */
  onAppend?: (events: readonly StoredEvent[]) => void;
  /** Reads made (for tests that check polling). */
  reads = 0;

  /** Appends events (type and fields; `at` defaults to now). */
  append(...records: Array<Partial<EventRecord> & { type: EventRecord['type'] }>): StoredEvent[] {
    const added = records.map((r) => ({ at: Date.now(), queueId: 'Q' + String(this.nextId).padStart(17, '0'), ...r, id: this.nextId++ }) as StoredEvent);
    this.events.push(...added);
    this.onAppend?.(added);
    return added;
  }

  /** Appends `n` events of `type`. */
  appendMany(n: number, type: EventRecord['type'] = 'message.received', over: Partial<EventRecord> = {}): StoredEvent[] {
    return this.append(...Array.from({ length: n }, () => ({ type, ...over })));
  }

  /** Drops every event with id <= `id` except the newest (ids are never reused). */
  prune(id: number): void {
    const newest = this.events[this.events.length - 1];
    this.events = this.events.filter((e) => e.id > id || e === newest);
  }

  async readEvents(q: EventQuery): Promise<StoredEvent[]> {
    this.reads++;
    const after = q.after ?? 0;
    const out: StoredEvent[] = [];
    for (const e of this.events) {
      if (e.id <= after) continue;
      if (q.types && !q.types.includes(e.type)) continue;
      if (q.queueId && e.queueId !== q.queueId) continue;
      if (q.since !== undefined && e.at < q.since) continue;
      out.push(e);
      if (out.length >= q.limit) break;
    }
    return out;
  }

  async lastEventId(): Promise<number> {
    return this.nextId - 1;
  }

  all(): readonly StoredEvent[] {
    return this.events;
  }
}
