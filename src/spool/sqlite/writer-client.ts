/**
 * The main thread's handle on the store's writer thread (writer-worker.ts).
 *
 * Owns: the worker's life (start, close, crash) and matching replies to requests. The worker is
 * referenced (keeps the process alive) only while a write is outstanding, so a CLI that forgot
 * nothing exits normally. If the thread dies, every outstanding and later write fails with a
 * StoreError (451 4.3.0), never hangs.
 */
import { Worker } from 'node:worker_threads';
import { StoreError } from '../../core/errors.js';
import { newStats, type WireError, type WriteOp, type WriterMessage, type WriterRequest, type WriterStats } from './writer-protocol.js';
import type { WriterData } from './writer-worker.js';

/** What a write resolves with (writer-protocol.ts WriteResult without its seq). */
export interface WriteOutcome {
  readonly value: number;
  readonly firstEventId?: number;
  readonly lastEventId?: number;
  /** flushMany: the indexes of the ids it flushed (their events, in order, from firstEventId). */
  readonly kept?: number[];
}

interface Waiter {
  resolve(value: WriteOutcome): void;
  reject(err: unknown): void;
}

/** An Error rebuilt from the writer thread, keeping its `code` (ENOSPC, SQLITE_FULL...). */
function fromWire(e: WireError): Error {
  if (e.notFound) return new StoreError(e.message);
  return Object.assign(new Error(e.message), e.code !== undefined ? { code: e.code } : {});
}

export class WriterClient {
  private seq = 0;
  private readonly waiting = new Map<number, Waiter>();
  private dead: Error | undefined;
  private closed: Promise<void> | undefined;
  /** The writer's counters as of its last reply. */
  stats: WriterStats = newStats();
  /** Highest event id committed so far, and the highest covered by a WAL fsync. */
  private maxEventId = 0;
  private durable = 0;
  /**
   * Called (in a microtask, after the write promises of that batch resolved) with the newest event
   * id a WAL fsync covers, each time it grows.
   */
  onDurable: ((eventId: number) => void) | undefined;

  private constructor(private readonly worker: Worker) {
    worker.on('message', (m: WriterMessage) => this.onMessage(m));
    worker.on('error', (err) => this.die(err));
    worker.on('exit', (code) => this.die(new Error(`queue writer thread exited (${code})`)));
    worker.unref();
  }

  /**
   * Starts the writer thread and waits until it has opened the database.
   * @throws Error (with the SQLite/errno code) when it cannot open it.
   */
  static async start(data: WriterData): Promise<WriterClient> {
    const worker = new Worker(new URL('./writer-worker.js', import.meta.url), { workerData: data });
    await new Promise<void>((resolve, reject) => {
      const onMessage = (m: WriterMessage): void => {
        cleanup();
        if (m.type === 'ready') resolve();
        else reject(m.type === 'failed' ? fromWire(m.error) : new Error(`queue writer: unexpected ${m.type}`));
      };
      const onError = (err: Error): void => { cleanup(); reject(err); };
      const onExit = (code: number): void => { cleanup(); reject(new Error(`queue writer thread exited (${code})`)); };
      const cleanup = (): void => { worker.off('message', onMessage); worker.off('error', onError); worker.off('exit', onExit); };
      worker.on('message', onMessage);
      worker.on('error', onError);
      worker.on('exit', onExit);
    });
    return new WriterClient(worker);
  }

  /**
   * Sends one write; resolves when it is committed (durable unless it is a relaxed delivery-state
   * write) with `value` 1 when a removal deleted an inline body (else 0; rows deleted for prune) and
   * the id of its first event.
   * @throws StoreError for an unknown message; Error with `code` for database and fsync failures.
   */
  run(op: WriteOp): Promise<WriteOutcome> {
    if (this.dead) return Promise.reject(new StoreError(`queue writer unavailable: ${this.dead.message}`, { cause: this.dead }));
    if (this.closed) return Promise.reject(new StoreError('queue store is closing'));
    const seq = ++this.seq;
    return new Promise<WriteOutcome>((resolve, reject) => {
      if (this.waiting.size === 0) this.worker.ref();
      this.waiting.set(seq, { resolve, reject });
      this.send({ seq, op });
    });
  }

  /** Requests of this tick, posted together (one structured clone and one wake-up for the writer). */
  private outbox: WriterRequest[] = [];

  private send(req: WriterRequest): void {
    this.outbox.push(req);
    if (this.outbox.length > 1) return;
    queueMicrotask(() => {
      const list = this.outbox;
      this.outbox = [];
      this.worker.postMessage(list.length === 1 ? list[0] : list);
    });
  }

  /** Lets the writer finish everything sent, close its connection and exit. Idempotent. */
  close(): Promise<void> {
    if (this.closed) return this.closed;
    if (this.dead) return (this.closed = Promise.resolve());
    this.worker.ref();
    this.closed = new Promise<void>((resolve) => {
      this.worker.once('exit', () => resolve());
      this.send({ seq: ++this.seq, op: { kind: 'close' } });
    });
    return this.closed;
  }

  /** Sets where event ids start being counted (the newest id in the database at open: on disk). */
  startEventIds(lastId: number): void {
    this.maxEventId = Math.max(this.maxEventId, lastId);
    this.durable = Math.max(this.durable, lastId);
  }

  /** The newest event id covered by a WAL fsync. */
  durableEventId(): number {
    return this.durable;
  }

  private onMessage(m: WriterMessage): void {
    if (m.type === 'synced') {
      this.stats = m.stats;
      return this.markDurable();
    }
    if (m.type !== 'done') return;
    this.stats = m.stats;
    for (const r of m.results) {
      if (!('error' in r) && r.lastEventId !== undefined && r.lastEventId > this.maxEventId) this.maxEventId = r.lastEventId;
      const w = this.waiting.get(r.seq);
      if (!w) continue;
      this.waiting.delete(r.seq);
      if ('error' in r) w.reject(fromWire(r.error));
      else w.resolve(r);
    }
    if (m.synced) this.markDurable();
    if (this.waiting.size === 0 && !this.closed) this.worker.unref();
  }

  /** Everything committed so far is durable now. */
  private markDurable(): void {
    if (this.maxEventId <= this.durable) return;
    const id = (this.durable = this.maxEventId);
    // After the promise reactions of this batch (the store queues their events there first).
    queueMicrotask(() => queueMicrotask(() => this.onDurable?.(id)));
  }

  private die(err: Error): void {
    this.dead ??= err;
    for (const w of this.waiting.values()) w.reject(new StoreError(`queue writer failed: ${err.message}`, { cause: err }));
    this.waiting.clear();
  }
}
