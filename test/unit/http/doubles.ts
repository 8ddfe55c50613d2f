/**
 * Test doubles for the HTTP API tests, standing in for work that lands elsewhere (issue 7):
 * `TestSubmissionSink` for cleanup's `submit` and `TestApiStore` / `TestQueueAdmin` for the
 * store's paged listing and event log and the scheduler's operator actions. In memory; they
 * record what the API asked of them. Replaced by the real parts in test/e2e/api.test.ts.
 */
import { PostlineError, StoreError } from '../../../src/core/errors.js';
import { newQueueId } from '../../../src/core/queue-id.js';
import type { Submission, SubmissionSink, Submitted } from '../../../src/core/session.js';
import type { EventQuery, EventRecord, StoredEvent } from '../../../src/events/record.js';
import type { ApiQueuedMessage, ApiStore, QueuePageQuery, QueueState } from '../../../src/http/store.js';
import { heldError, NoSuchMessageError, type QueueAdmin } from '../../../src/scheduler/admin.js';
import type { QueueSummary } from '../../../src/spool/types.js';

/** The Message-ID field value of a message, if any. */
function messageIdOf(body: Buffer): string | undefined {
  const end = body.indexOf('\r\n\r\n');
  const head = body.subarray(0, end < 0 ? body.length : end).toString('latin1').replace(/\r\n[ \t]+/g, ' ');
  return /^message-id:[ \t]*(\S+)/im.exec(head)?.[1];
}

/** cleanup's submit, in memory: every accepted submission is queued into `store` with a message.received event. */
export class TestSubmissionSink implements SubmissionSink {
  readonly submissions: Submission[] = [];
  /** When set, the next submits throw what it returns (undefined: accept). */
  fail?: (s: Submission) => PostlineError | undefined;
  /** ms each submit waits before answering. */
  delayMs = 0;

  constructor(private readonly store: TestApiStore) {}

  async submit(s: Submission): Promise<Submitted> {
    if (this.delayMs) await new Promise((r) => setTimeout(r, this.delayMs));
    const err = this.fail?.(s);
    if (err) throw err;
    this.submissions.push(s);
    const queueId = newQueueId();
    const messageId = messageIdOf(s.body);
    this.store.queue({
      id: queueId, mailFrom: s.envelope.mailFrom, bodyType: s.envelope.bodyType, smtputf8: s.envelope.smtputf8,
      size: s.body.length, arrivedAt: Date.now(), origin: s.origin, attempts: 0, nextAttemptAt: s.meta?.sendAt ?? Date.now(), held: false,
      recipients: s.envelope.recipients.map((r, idx) => ({ idx, address: r.address, status: 'pending' as const })),
      ...(messageId ? { messageId } : {}),
      ...(s.meta?.tags ? { tags: s.meta.tags } : {}),
      ...(s.meta?.metadata ? { metadata: s.meta.metadata } : {}),
    });
    this.store.append({
      type: 'message.received', at: Date.now(), queueId, mailFrom: s.envelope.mailFrom, recipients: s.envelope.recipients.map((r) => r.address),
      size: s.body.length, origin: { kind: s.origin.kind, ...(s.origin.apiKey ? { apiKey: s.origin.apiKey } : {}) },
      ...(messageId ? { messageId } : {}), ...(s.meta?.tags ? { tags: s.meta.tags } : {}), ...(s.meta?.metadata ? { metadata: s.meta.metadata } : {}),
    });
    return { queueId, size: s.body.length, ...(messageId ? { messageId } : {}) };
  }
}

/** The store slice the API reads, in memory. */
export class TestApiStore implements ApiStore {
  readonly messages = new Map<string, ApiQueuedMessage>();
  readonly events: StoredEvent[] = [];
  /** What freeBytes() answers. */
  free = 10 * 1024 ** 3;
  readonly pageQueries: QueuePageQuery[] = [];
  private nextId = 1;

  queue(m: ApiQueuedMessage): void { this.messages.set(m.id, m); }
  append(e: EventRecord): StoredEvent {
    const s = { ...e, id: this.nextId++ };
    this.events.push(s);
    return s;
  }

  private stateOf(m: ApiQueuedMessage): QueueState {
    return m.held ? 'held' : m.attempts > 0 ? 'deferred' : 'active';
  }

  async listPage(q: QueuePageQuery): Promise<{ items: QueueSummary[]; next?: string }> {
    this.pageQueries.push(q);
    const all = [...this.messages.values()].sort((a, b) => (a.id < b.id ? -1 : 1)).filter((m) =>
      (!q.after || m.id > q.after) && (!q.state || this.stateOf(m) === q.state) && (q.sender === undefined || m.mailFrom === q.sender)
      && (!q.recipientDomain || m.recipients.some((r) => r.status === 'pending' && r.address.toLowerCase().endsWith(`@${q.recipientDomain}`))));
    const items = all.slice(0, q.limit).map((m) => ({
      id: m.id, mailFrom: m.mailFrom, size: m.size, arrivedAt: m.arrivedAt, held: m.held, nextAttemptAt: m.nextAttemptAt,
      attempts: m.attempts, pending: m.recipients.filter((r) => r.status === 'pending').map((r) => r.address),
    }));
    return { items, ...(all.length > q.limit ? { next: items[items.length - 1]!.id } : {}) };
  }

  async countByState(): Promise<Record<QueueState, number>> {
    const c: Record<QueueState, number> = { active: 0, deferred: 0, held: 0, quarantined: 0 };
    for (const m of this.messages.values()) c[this.stateOf(m)]++;
    return c;
  }

  async readEvents(q: EventQuery): Promise<StoredEvent[]> {
    return this.events.filter((e) => e.id > (q.after ?? 0) && (!q.types || q.types.includes(e.type)) && (!q.queueId || e.queueId === q.queueId)
      && (q.since === undefined || e.at >= q.since)).slice(0, q.limit);
  }

  async lastEventId(): Promise<number> { return this.events.at(-1)?.id ?? 0; }
  async get(id: string): Promise<ApiQueuedMessage | undefined> { return this.messages.get(id); }
  async freeBytes(): Promise<number> { return this.free; }
}

/** The scheduler's operator actions on TestApiStore, with the events they write. */
export class TestQueueAdmin implements Pick<QueueAdmin, 'flushOne' | 'hold' | 'release' | 'delete'> {
  readonly calls: string[] = [];
  constructor(private readonly store: TestApiStore) {}
  private need(id: string): ApiQueuedMessage {
    const m = this.store.messages.get(id);
    if (!m) throw new NoSuchMessageError(id);
    return m;
  }
  async flushOne(id: string): Promise<void> {
    const m = this.need(id);
    if (m.held) throw heldError();
    m.nextAttemptAt = Date.now();
    this.calls.push(`flush ${id}`);
    this.store.append({ type: 'message.flushed', at: Date.now(), queueId: id });
  }
  async hold(id: string): Promise<void> {
    this.need(id).held = true;
    this.calls.push(`hold ${id}`);
    this.store.append({ type: 'message.held', at: Date.now(), queueId: id });
  }
  async release(id: string): Promise<void> {
    this.need(id).held = false;
    this.calls.push(`release ${id}`);
    this.store.append({ type: 'message.released', at: Date.now(), queueId: id });
  }
  async delete(id: string): Promise<void> {
    this.need(id);
    this.store.messages.delete(id);
    this.calls.push(`delete ${id}`);
    this.store.append({ type: 'message.deleted', at: Date.now(), queueId: id });
  }
}

export { PostlineError, StoreError };
