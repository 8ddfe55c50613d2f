/**
 * MemoryQueueStore: an in-memory QueueStore (src/spool/types.ts) for unit tests of the scheduler,
 * the control socket and the queue CLI. Bodies are Buffers; every read returns a copy, so a caller
 * cannot change stored state except through the interface (like a real store).
 *
 * Test hooks: `put()` commits a message in one call, `breakBody()` makes a body unreadable (missing
 * or failing mid-stream), `calls` counts writes, `quarantined` records what was moved aside.
 */
import { Readable, Writable } from 'node:stream';
import { StoreError } from '../../src/core/errors.js';
import { newQueueId } from '../../src/core/queue-id.js';
import type {
  DueEntry, DueKey, BodyWriter, NewMessage, OutcomeWrite, QueuedMessage, QueuePageQuery, QueueState, QueueStore, QueueSummary, MessageOrigin,
} from '../../src/spool/types.js';
import type { EventQuery, EventRecord, StoredEvent } from '../../src/events/record.js';
import type { BodyType, DsnNotify, DsnRet, OriginalRecipient } from '../../src/core/envelope.js';

interface Entry {
  msg: QueuedMessage;
  body: Buffer | undefined;
  /** 'missing': openBody throws; 'stream-error': the stream fails after opening. */
  broken?: 'missing' | 'stream-error';
}

class MemoryBodyWriter implements BodyWriter {
  readonly chunks: Buffer[] = [];
  aborted = false;
  readonly stream: Writable;
  constructor(readonly id: string) {
    this.stream = new Writable({
      write: (chunk: Buffer, _enc, cb) => { this.chunks.push(Buffer.from(chunk)); cb(); },
    });
  }
  bytesWritten(): number { return this.chunks.reduce((n, c) => n + c.length, 0); }
  async abort(): Promise<void> { this.aborted = true; this.stream.destroy(); }
}

/** What `put` takes: a new message without the fields the store fills in. */
export interface PutMessage {
  id?: string;
  mailFrom: string;
  recipients: readonly { address: string; notify?: readonly DsnNotify[]; orcpt?: OriginalRecipient }[];
  bodyType?: BodyType;
  smtputf8?: boolean;
  utf8Headers?: boolean;
  ret?: DsnRet;
  envid?: string;
  origin?: MessageOrigin;
  arrivedAt?: number;
  /** tags, metadata, sendAt (deferred sending). */
  meta?: NewMessage['meta'];
}

export class MemoryQueueStore implements QueueStore {
  private readonly entries = new Map<string, Entry>();
  readonly quarantined = new Map<string, { msg: QueuedMessage; reason: string }>();
  /** Count of calls per write method, for assertions. */
  readonly calls = { record: 0, setNextAttempt: 0, setHold: 0, remove: 0, quarantine: 0, commit: 0, appendEvents: 0 };
  /** The event log (outbox), in id order. */
  readonly events: StoredEvent[] = [];
  private nextEventId = 1;
  private listener: ((e: readonly StoredEvent[]) => void) | undefined;
  opened = false;
  closed = false;
  /** Value returned by freeBytes(). */
  free = 10 * 1024 ** 3;

  async open(): Promise<void> { this.opened = true; }
  async close(): Promise<void> { this.closed = true; }

  async createBody(id: string): Promise<BodyWriter> {
    if (this.free <= 0) throw new StoreError('store full', { full: true });
    return new MemoryBodyWriter(id);
  }

  /** Appends events as one commit would, and tells the listener. */
  private log(events: readonly EventRecord[] | undefined): StoredEvent[] {
    if (!events?.length) return [];
    const out = events.map((e) => ({ ...structuredClone(e), id: this.nextEventId++ }) as StoredEvent);
    this.events.push(...out);
    this.listener?.(out);
    return out;
  }

  async commit(msg: NewMessage, body: BodyWriter, events?: readonly EventRecord[]): Promise<QueuedMessage> {
    if (!(body instanceof MemoryBodyWriter) || body.aborted) throw new StoreError('body writer not from this store or aborted');
    this.calls.commit++;
    const data = Buffer.concat([...(msg.prepend ? [Buffer.from(msg.prepend, 'utf8')] : []), ...body.chunks]);
    const qm: QueuedMessage = {
      id: msg.id, mailFrom: msg.mailFrom, bodyType: msg.bodyType, smtputf8: msg.smtputf8,
      ...(msg.utf8Headers !== undefined ? { utf8Headers: msg.utf8Headers } : {}),
      ret: msg.ret, envid: msg.envid, size: data.length, arrivedAt: msg.arrivedAt, origin: msg.origin,
      recipients: msg.recipients.map((r, idx) => ({ idx, address: r.address, notify: r.notify, orcpt: r.orcpt, status: 'pending' })),
      attempts: 0, nextAttemptAt: Math.max(msg.arrivedAt, msg.meta?.sendAt ?? 0), held: msg.held === true,
      ...(msg.meta?.sendAt !== undefined && msg.meta.sendAt > msg.arrivedAt ? { sendAt: msg.meta.sendAt } : {}),
      ...(msg.messageId !== undefined ? { messageId: msg.messageId } : {}),
      ...(msg.meta?.tags ? { tags: msg.meta.tags } : {}),
      ...(msg.meta?.metadata ? { metadata: msg.meta.metadata } : {}),
    };
    this.entries.set(msg.id, { msg: qm, body: data });
    this.log(events);
    return structuredClone(qm);
  }

  /** Test helper: creates and commits a message with `body` in one call. */
  async put(m: PutMessage, body: Buffer | string): Promise<QueuedMessage> {
    const id = m.id ?? newQueueId(m.arrivedAt ?? Date.now());
    const w = await this.createBody(id);
    w.stream.write(typeof body === 'string' ? Buffer.from(body) : body);
    return this.commit({
      id, mailFrom: m.mailFrom, bodyType: m.bodyType ?? '8BITMIME', smtputf8: m.smtputf8 ?? false,
      ...(m.utf8Headers !== undefined ? { utf8Headers: m.utf8Headers } : {}),
      ret: m.ret, envid: m.envid, origin: m.origin ?? { kind: 'smtp', clientAddress: '192.0.2.9', clientName: 'client.example' },
      recipients: m.recipients, arrivedAt: m.arrivedAt ?? Date.now(), ...(m.meta ? { meta: m.meta } : {}),
    }, w);
  }

  /** Test helper: makes the body of `id` unreadable. */
  breakBody(id: string, how: 'missing' | 'stream-error' = 'missing'): void {
    const e = this.entries.get(id);
    if (e) e.broken = how;
  }

  /** Test helper: the stored body, or undefined. */
  bodyOf(id: string): Buffer | undefined {
    const b = this.entries.get(id)?.body;
    return b ? Buffer.from(b) : undefined;
  }

  openBody(id: string): Readable {
    const e = this.entries.get(id);
    if (!e || !e.body || e.broken === 'missing') throw new StoreError(`body of ${id} is missing`);
    if (e.broken === 'stream-error') {
      return new Readable({ read() { this.destroy(new StoreError(`body of ${id} is unreadable`)); } });
    }
    const data = Buffer.from(e.body);
    let sent = false;
    return new Readable({
      read() {
        if (!sent) { sent = true; this.push(data); }
        this.push(null);
      },
    });
  }

  async get(id: string): Promise<QueuedMessage | undefined> {
    const e = this.entries.get(id);
    return e ? structuredClone(e.msg) : undefined;
  }

  async loadAll(): Promise<QueuedMessage[]> {
    return [...this.entries.values()]
      .filter((e) => e.msg.recipients.some((r) => r.status === 'pending' || r.dsnOwed !== undefined))
      .sort((a, b) => a.msg.arrivedAt - b.msg.arrivedAt)
      .map((e) => structuredClone(e.msg));
  }

  async list(): Promise<QueueSummary[]> {
    return (await this.loadAll()).map((m) => ({
      id: m.id, mailFrom: m.mailFrom, size: m.size, arrivedAt: m.arrivedAt, held: m.held,
      nextAttemptAt: m.nextAttemptAt, attempts: m.attempts, lastError: m.lastError,
      pending: m.recipients.filter((r) => r.status === 'pending').map((r) => r.address),
    }));
  }

  private need(id: string): Entry {
    const e = this.entries.get(id);
    if (!e) throw new StoreError(`no such message ${id}`);
    return e;
  }

  async record(id: string, w: OutcomeWrite): Promise<void> {
    const e = this.need(id);
    this.calls.record++;
    for (const u of w.updates) {
      if (!e.msg.recipients.some((x) => x.idx === u.idx)) throw new StoreError(`message ${id} has no recipient ${u.idx}`);
    }
    for (const u of w.updates) {
      const r = e.msg.recipients.find((x) => x.idx === u.idx)!;
      r.status = u.status;
      if (u.lastReply !== undefined) r.lastReply = u.lastReply;
      if (u.dsnStatus !== undefined) r.dsnStatus = u.dsnStatus;
      if (u.remoteMta !== undefined) r.remoteMta = u.remoteMta;
      if (u.doneAt !== undefined) r.doneAt = u.doneAt;
      if (u.delayNotified !== undefined) r.delayNotified = u.delayNotified;
      if (u.dsnOwed === null) delete r.dsnOwed;
      else if (u.dsnOwed !== undefined) r.dsnOwed = u.dsnOwed;
    }
    if (w.next) {
      e.msg.attempts = w.next.attempts;
      e.msg.nextAttemptAt = w.next.nextAttemptAt;
      if (w.next.lastError !== undefined) e.msg.lastError = w.next.lastError;
    }
    if (w.remove) {
      this.calls.remove++;
      this.entries.delete(id);
    }
    this.log(w.events);
  }

  async setNextAttempt(id: string, nextAttemptAt: number, events?: readonly EventRecord[]): Promise<void> {
    this.calls.setNextAttempt++;
    this.need(id).msg.nextAttemptAt = nextAttemptAt;
    this.log(events);
  }

  async setHold(id: string, held: boolean, events?: readonly EventRecord[]): Promise<void> {
    this.calls.setHold++;
    this.need(id).msg.held = held;
    this.log(events);
  }

  async remove(id: string, events?: readonly EventRecord[]): Promise<void> {
    this.calls.remove++;
    this.entries.delete(id);
    this.log(events);
  }

  async quarantine(id: string, reason: string, events?: readonly EventRecord[]): Promise<void> {
    this.calls.quarantine++;
    const e = this.entries.get(id);
    if (!e) return;
    this.entries.delete(id);
    this.quarantined.set(id, { msg: e.msg, reason });
    this.log(events ?? [{ type: 'message.quarantined', at: Date.now(), queueId: id, reason }]);
  }

  async dueBatch(after: DueKey | undefined, limit: number): Promise<DueEntry[]> {
    const key = (m: QueuedMessage): DueKey => ({ at: m.nextAttemptAt, id: m.id });
    const cmp = (a: DueKey, b: DueKey): number => a.at - b.at || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
    return [...this.entries.values()].filter((e) => !e.msg.held).map((e) => key(e.msg))
      .filter((k) => after === undefined || cmp(k, after) > 0).sort(cmp).slice(0, Math.max(1, limit));
  }

  async flushMatching(q: { now: number; domain?: string }, onProgress?: (done: number) => void): Promise<number> {
    let n = 0;
    const domain = q.domain?.replace(/^@/, '').toLowerCase();
    for (const e of [...this.entries.values()].sort((a, b) => (a.msg.id < b.msg.id ? -1 : 1))) {
      const m = e.msg;
      if (m.held || (m.sendAt !== undefined && m.sendAt > q.now)) continue;
      if (domain !== undefined && !m.recipients.some((r) => r.status === 'pending' && r.address.slice(r.address.indexOf('@') + 1).toLowerCase() === domain)) continue;
      m.nextAttemptAt = q.now;
      this.log([{ type: 'message.flushed', at: q.now, queueId: m.id, mailFrom: m.mailFrom }]);
      n++;
    }
    onProgress?.(n);
    return n;
  }

  async countMessages(): Promise<number> { return this.entries.size; }

  async listPage(q: QueuePageQuery): Promise<{ items: QueueSummary[]; next?: string }> {
    const all = (await this.list()).filter((m) => (q.after === undefined || m.id > q.after) && (q.sender === undefined || m.mailFrom === q.sender))
      .sort((a, b) => (a.id < b.id ? -1 : 1));
    const items = all.slice(0, q.limit);
    return all.length > q.limit ? { items, next: items[items.length - 1]!.id } : { items };
  }

  async countByState(): Promise<Record<QueueState, number>> {
    const c = { active: 0, deferred: 0, held: 0, quarantined: this.quarantined.size };
    for (const { msg } of this.entries.values()) {
      if (msg.held) c.held++;
      else if (msg.attempts === 0) c.active++;
      else c.deferred++;
    }
    return c;
  }

  async appendEvents(events: readonly EventRecord[]): Promise<StoredEvent[]> {
    this.calls.appendEvents++;
    return this.log(events);
  }

  async readEvents(q: EventQuery): Promise<StoredEvent[]> {
    return this.events.filter((e) => e.id > (q.after ?? 0) && (q.queueId === undefined || e.queueId === q.queueId)
      && (q.since === undefined || e.at >= q.since) && (!q.types?.length || q.types.includes(e.type))).slice(0, q.limit).map((e) => structuredClone(e));
  }

  async lastEventId(): Promise<number> { return this.nextEventId - 1; }

  async pruneEvents(beforeMs: number, maxRows = 5000): Promise<number> {
    let n = 0;
    while (n < maxRows && this.events.length > 1 && this.events[0]!.at < beforeMs) { this.events.shift(); n++; }
    return n;
  }

  setEventListener(fn: (events: readonly StoredEvent[]) => void): void { this.listener = fn; }

  async freeBytes(): Promise<number> { return this.free; }

  /** Test helper: number of messages held in the store (any status). */
  get size(): number { return this.entries.size; }
}
