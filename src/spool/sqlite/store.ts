/**
 * SqliteQueueStore: the embedded default QueueStore (src/spool/types.ts).
 *
 * Metadata lives in `${dataDir}/queue.db` (better-sqlite3, WAL, synchronous=FULL). Bodies up to
 * `inlineMaxBytes` are kept in memory while received and stored as a BLOB in the same transaction
 * as their envelope row; larger ones are streamed to one file each (layout.ts). Durability rule
 * (DESIGN.md convention 5, RFC 5321 4.1.1.4 / 6.1: a 250 reply accepts responsibility for the
 * message): commit() resolves only after the row (and inline body) is committed with a WAL fsync,
 * and for a file body after the file is fdatasynced, renamed into its bucket and the bucket
 * directory fsynced first.
 *
 * Threads: every write runs in the writer thread (writer-worker.ts), which batches whatever
 * arrives while it is busy into one transaction (group commit: a batch of N small messages costs
 * one WAL fsync in total); the main thread keeps a read connection (WAL readers see each commit
 * once its promise resolved), so no fsync ever runs on the event loop.
 *
 * Owns: queue.db, spool/, quarantine/ under dataDir.
 */
import type Database from 'better-sqlite3';
import { existsSync, statSync } from 'node:fs';
import { unlink } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { systemClock, type Clock } from '../../core/clock.js';
import { NoDataDirError, StoreError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { isQueueId } from '../../core/queue-id.js';
import type { EventQuery, EventRecord, StoredEvent } from '../../events/record.js';
import type { BodyWriter, DueEntry, DueKey, NewMessage, OutcomeWrite, QueuedMessage, QueuePageQuery, QueueState, QueueStore, QueueSummary } from '../types.js';
import { BodyCache } from './body-cache.js';
import { SpoolBodyWriter } from './body-writer.js';
import { SpoolLayout } from './layout.js';
import { startRecovery, type RecoveryReport } from './recovery.js';
import { queryEvents } from './event-log.js';
import { vacuumNow } from './vacuum.js';
import { flushInChunks, type FlushQuery } from './bulk-flush.js';
import { FreeSpace } from './free-space.js';
import { commitMessage } from './commit.js';
import { EventPublisher } from './event-publisher.js';
import { moveToQuarantine, toStoreError } from './store-errors.js';
import { checkStoreOptions, type SqliteQueueStoreOptions } from './store-options.js';
import { bufferStream, countByState, fileStream, listPage, numbered, prependOf, summaryOf } from './listing.js';
import { eventRow, recordOp, RowError, toMessage, type MessageRow } from './rows.js';
import { prepareReadStatements, type ReadStatements } from './statements.js';
import type { WriterClient, WriteOutcome } from './writer-client.js';
import { openDatabase } from './open-db.js';
import { SqliteSuppressionStore } from './suppression-store.js';
import { newStats, type WriteOp, type WriterStats } from './writer-protocol.js';

export { DEFAULT_BODY_CACHE_BYTES, DEFAULT_INLINE_MAX_BYTES, type SqliteQueueStoreOptions } from './store-options.js';

/** QueueStore on SQLite (inline small bodies) plus one file per large body. Usable in tests with a temp dataDir. */
export class SqliteQueueStore implements QueueStore {
  private readonly layout: SpoolLayout;
  private readonly logger: Logger;
  private readonly clock: Clock;
  private readonly free: FreeSpace;
  private readonly inlineMaxBytes: number;
  private readonly cache: BodyCache;
  private db: Database.Database | undefined;
  private stmts: ReadStatements | undefined;
  private writer: WriterClient | undefined;
  /** Writes started and not yet settled; close() waits for them. */
  private readonly inflight = new Set<Promise<unknown>>();
  /** Result of the last open()'s crash recovery. */
  lastRecovery: RecoveryReport | undefined;
  private recovering: Promise<void> = Promise.resolve();
  private closing = false;
  /** Committed events, handed to the listener once durable. */
  private readonly publisher: EventPublisher;
  private suppressions: SqliteSuppressionStore | undefined;

  /** @throws PostlineError ERR_STORE_OPTIONS when an option is invalid. */
  constructor(private readonly opts: SqliteQueueStoreOptions) {
    const v = checkStoreOptions(opts);
    this.inlineMaxBytes = v.inlineMaxBytes;
    this.layout = new SpoolLayout(opts.dataDir);
    this.logger = opts.logger;
    this.publisher = new EventPublisher(opts.logger);
    this.clock = opts.clock ?? systemClock;
    this.free = new FreeSpace(opts.dataDir, this.clock, opts.statfsCacheMs ?? 1000);
    this.cache = new BodyCache(v.bodyCacheBytes);
  }

  /** True when `dataDir` holds a queue (its queue.db exists). Creates nothing. */
  static exists(dataDir: string): boolean {
    return existsSync(new SpoolLayout(dataDir).dbPath);
  }

  /** Writer counters: commits vs transactions vs directory fsyncs (as of the last reply). */
  commitStats(): Readonly<WriterStats> {
    return { ...(this.writer?.stats ?? newStats()) };
  }

  /**
   * Opens queue.db (WAL), runs migrations, starts the writer thread, makes whatever the database
   * holds durable (one WAL fsync: a crashed process may have left relaxed commits in the page
   * cache only) and runs crash recovery.
   * @throws NoDataDirError when `create` is false and there is no queue.db; StoreError when the
   *         data directory or database cannot be opened.
   */
  async open(): Promise<void> {
    if (this.db) return;
    this.closing = false;
    if (this.opts.create === false && !SqliteQueueStore.exists(this.opts.dataDir)) {
      throw new NoDataDirError(`no queue at ${this.opts.dataDir} (no queue.db there)`, this.opts.dataDir);
    }
    try {
      const { db, writer } = await openDatabase(this.layout, this.logger, this.opts.maxDatabasePages);
      this.db = db;
      this.writer = writer;
      this.stmts = prepareReadStatements(db);
      this.writer.onDurable = (id) => this.publisher.publishUpTo(id);
    } catch (err) {
      throw toStoreError(err, 'cannot open queue store');
    }
    const deps = { layout: this.layout, stmts: this.stmts, logger: this.logger, quarantine: (id: string, reason: string) => this.quarantine(id, reason) };
    const r = await startRecovery(deps, this.opts.recovery ?? 'blocking', this.opts.dataDir, () => this.closing, (report) => { this.lastRecovery = report; });
    this.recovering = r.checks;
  }

  /**
   * Rewrites queue.db compactly and switches it to incremental vacuum (`postline queue vacuum`,
   * server stopped: a full VACUUM locks the database while it runs). @returns bytes before and after.
   * @throws StoreError when the store is not open or SQLite fails.
   */
  async vacuum(): Promise<{ before: number; after: number }> {
    this.q();
    await Promise.allSettled([...this.inflight]);
    try {
      return vacuumNow(this.db!);
    } catch (err) {
      throw toStoreError(err, 'vacuum failed');
    }
  }

  /** Resolves when the row checks of the open are done (at once with `recovery: 'blocking'`). */
  recovered(): Promise<void> {
    return this.recovering;
  }

  /**
   * The suppression list in this queue.db (suppression-store.ts): reads on this read connection,
   * writes through this writer thread with their events. @throws StoreError when the store is not open.
   */
  suppressionStore(): SqliteSuppressionStore {
    this.q();
    return (this.suppressions ??= new SqliteSuppressionStore({ db: this.db!, write: (op, events) => this.write(op, events) }));
  }

  /** Waits for pending writes, stops the writer thread, then closes the read connection. */
  async close(): Promise<void> {
    this.suppressions = undefined;
    this.closing = true;
    await this.recovering;
    await Promise.allSettled([...this.inflight]);
    await this.writer?.close();
    this.writer = undefined;
    this.db?.close();
    this.db = undefined;
    this.stmts = undefined;
  }

  /**
   * Starts the body of message `id` (in memory; a file in spool/tmp once it outgrows inlineMaxBytes).
   * @throws StoreError(full) (452 4.3.1) below the free-space reserve or on ENOSPC/EDQUOT;
   *         StoreError (451 4.3.0) for a bad ID or other I/O errors.
   */
  async createBody(id: string): Promise<BodyWriter> {
    this.q();
    if (!isQueueId(id)) throw new StoreError(`invalid queue ID ${JSON.stringify(id)}`);
    const free = await this.cachedFreeBytes();
    const minFreeBytes = typeof this.opts.minFreeBytes === 'function' ? this.opts.minFreeBytes() : this.opts.minFreeBytes;
    if (free < minFreeBytes) {
      this.logger.warn({ queueId: id, freeBytes: free, minFreeBytes }, 'queue below free-space reserve');
      throw new StoreError('insufficient free space in the queue', { full: true });
    }
    try {
      return await SpoolBodyWriter.create(id, this.layout.tmpPath(id), this.inlineMaxBytes);
    } catch (err) {
      throw toStoreError(err, `cannot create body ${id}`);
    }
  }

  /**
   * Commits a message. Inline body: row + BLOB in the writer's next group transaction (one WAL
   * fsync per batch). File body: fdatasync -> rename into bucket -> the writer fsyncs the bucket
   * directory, then commits the row. Resolves with the stored metadata only when all of it is on disk.
   * @throws StoreError (full on ENOSPC/EDQUOT/SQLITE_FULL); the body is discarded, nothing is kept.
   */
  async commit(msg: NewMessage, body: BodyWriter, events?: readonly EventRecord[]): Promise<QueuedMessage> {
    this.q();
    return this.track(commitMessage({ layout: this.layout, cache: this.cache, logger: this.logger, write: (op, ev) => this.write(op, ev) }, msg, body, events));
  }

  /**
   * Opens the stored message (bytes exactly as committed): the prepended header fields of the row
   * (migration 8), then the body from the cache or queue.db when inline, else the body file.
   * @throws StoreError when the message is unknown, quarantined or its body missing.
   */
  openBody(id: string): Readable {
    const stmts = this.q();
    const cached = this.cache.get(id);
    if (cached) return bufferStream(cached);
    const row = isQueueId(id) ? stmts.getBody.get(id) : undefined;
    if (!row) throw new StoreError(`no such message ${id}`);
    const head = prependOf(row.prepend);
    if (row.data) return bufferStream(head ? [head, row.data] : [row.data]);
    const path = this.layout.bodyPath(id);
    try {
      statSync(path);
    } catch (err) {
      throw toStoreError(err, `body of ${id} unreadable`);
    }
    return fileStream(path, head);
  }

  /** Metadata of one message (quarantined ones are invisible); a corrupt row is quarantined. */
  async get(id: string): Promise<QueuedMessage | undefined> {
    const stmts = this.q();
    const row = stmts.getMessage.get(id);
    if (!row) return undefined;
    return this.convert(row);
  }

  /** Every message with a pending recipient (held included), oldest first; corrupt rows quarantined. */
  async loadAll(): Promise<QueuedMessage[]> {
    const out: QueuedMessage[] = [];
    for (const row of this.q().activeMessages.all()) {
      const m = await this.convert(row);
      if (m) out.push(m);
    }
    return out;
  }

  /** Up to `limit` (1..10000) messages neither held nor quarantined in due order after `after` (index messages_due). */
  async dueBatch(after: DueKey | undefined, limit: number): Promise<DueEntry[]> {
    const n = Math.min(10_000, Math.max(1, Math.floor(limit)));
    return this.q().dueAfter.all(after?.at ?? Number.MIN_SAFE_INTEGER, after?.id ?? '', n);
  }

  /** Bulk flush (QueueStore.flushMatching; bulk-flush.ts): chunks in queue ID order, one relaxed write each. @throws StoreError. */
  async flushMatching(q: FlushQuery, onProgress?: (done: number) => void): Promise<number> {
    return flushInChunks(this.q(), (op, events) => this.write(op, events), q, onProgress);
  }

  /** Messages in the store, held included, quarantined not. */
  async countMessages(): Promise<number> {
    return this.q().countMessages.get()?.n ?? 0;
  }

  /** Summaries of every (non-quarantined) message, oldest first, for `postline queue list`. */
  async list(): Promise<QueueSummary[]> {
    const out: QueueSummary[] = [];
    for (const row of this.q().allMessages.all()) {
      const m = await this.convert(row);
      if (!m) continue;
      out.push(summaryOf(m));
    }
    return out;
  }

  /** Paged summaries in queue ID order (IDs sort by arrival), filtered by state, sender and recipient domain (listing.ts). */
  async listPage(q: QueuePageQuery): Promise<{ items: QueueSummary[]; next?: string }> {
    const stmts = this.q();
    return listPage(this.db!, q, (id) => stmts.getRecipients.all(id));
  }

  /** Counts of messages by state: active (never tried), deferred (tried), held, quarantined (listing.ts). */
  async countByState(): Promise<Record<QueueState, number>> {
    this.q();
    return countByState(this.db!);
  }

  /**
   * One round's outcome in ONE transaction: recipient states and DSN marks, the next attempt, the
   * events, and the removal when `w.remove`. Written without an fsync of its own
   * (synchronous=NORMAL unless it shares a batch with a full commit): in WAL mode the next full
   * commit or checkpoint makes it durable; losing one in a crash only repeats a delivery attempt
   * (at-least-once) together with its events, never loses mail. A removal of a message whose body
   * is a file is written durably before the file is unlinked. Optional update fields left
   * undefined keep their stored values.
   * @throws StoreError for an unknown message or recipient idx (then nothing is changed).
   */
  async record(id: string, w: OutcomeWrite): Promise<void> {
    const stmts = this.q();
    const remove = w.remove === true;
    const fileBody = remove && isQueueId(id) && (stmts.inlineLength.get(id)?.len ?? null) === null;
    if (remove) this.cache.delete(id);
    const res = await this.write(recordOp(id, w, fileBody), w.events);
    if (fileBody && res.value === 0) await unlink(this.layout.bodyPath(id)).catch(() => undefined);
  }

  /** Moves the next attempt time (ms since epoch; relaxed like record). @throws StoreError for an unknown message. */
  async setNextAttempt(id: string, nextAttemptAt: number, events?: readonly EventRecord[]): Promise<void> {
    this.q();
    await this.write({ kind: 'setNext', id, at: nextAttemptAt }, events);
  }

  /** Holds or releases a message. @throws StoreError for an unknown message. */
  async setHold(id: string, held: boolean, events?: readonly EventRecord[]): Promise<void> {
    this.q();
    await this.write({ kind: 'setHold', id, held }, events);
  }

  /**
   * Deletes the rows (and inline body), then a body file if there is one. Idempotent for unknown
   * IDs. Removals share the writer's batches with other writes (one WAL fsync). The row is gone
   * for good before the file is unlinked, so a crash never leaves a row without its body.
   * @throws StoreError with the database error (then nothing was removed).
   */
  async remove(id: string, events?: readonly EventRecord[]): Promise<void> {
    this.q();
    this.cache.delete(id);
    const { value: hadInline } = await this.write({ kind: 'remove', id }, events);
    if (!hadInline && isQueueId(id)) await unlink(this.layout.bodyPath(id)).catch(() => undefined);
  }

  /**
   * Moves the body aside (file to quarantine/; an inline body is copied there, its BLOB kept) and
   * marks the row (kept for inspection, invisible to the queue), with a 'message.quarantined'
   * event in the same commit (unless `events` are given: then those). Logs queueId and reason. Never throws.
   */
  async quarantine(id: string, reason: string, events?: readonly EventRecord[]): Promise<void> {
    this.cache.delete(id);
    if (isQueueId(id)) {
      let inline: Buffer | undefined;
      try {
        inline = this.stmts?.rawBody.get(id)?.data;
      } catch { /* unreadable: nothing to copy */ }
      await moveToQuarantine(this.layout, id, inline, this.logger);
    }
    const at = this.clock.now();
    try {
      if (this.writer) await this.write({ kind: 'quarantine', id, at, reason }, events ?? [{ type: 'message.quarantined', at, queueId: id, reason }]);
    } catch (err) {
      this.logger.error({ queueId: id, err: (err as Error).message }, 'cannot mark queue entry quarantined');
    }
    this.logger.warn({ queueId: id, reason }, 'queue entry quarantined');
  }

  /** Writes events of no state change in the next group commit (relaxed). @returns them numbered. @throws StoreError. */
  async appendEvents(events: readonly EventRecord[]): Promise<StoredEvent[]> {
    this.q();
    if (events.length === 0) return [];
    const res = await this.write({ kind: 'events', events: [] }, events);
    return numbered(events, res.firstEventId!);
  }

  /**
   * Events in id order matching `q` (limit clamped to 1..10000; event-log.ts), only those a WAL
   * fsync covers: no reader sees an event a power loss could still take back.
   */
  async readEvents(q: EventQuery): Promise<StoredEvent[]> {
    this.q();
    return queryEvents(this.db!, q, 'asc', this.writer?.durableEventId());
  }

  /** The newest durable event id (0 when none was ever written). */
  async lastEventId(): Promise<number> {
    this.q();
    return this.writer?.durableEventId() ?? 0;
  }

  /** Deletes events older than `beforeMs`, at most `maxRows` (default 5000), keeping the newest. @returns rows deleted. */
  async pruneEvents(beforeMs: number, maxRows = 5000): Promise<number> {
    this.q();
    return (await this.write({ kind: 'prune', before: beforeMs, max: Math.max(1, Math.floor(maxRows)) })).value;
  }

  /**
   * Makes every commit so far durable now (one WAL fsync) and publishes the events waiting for it,
   * instead of waiting for the next full commit or the idle flush. @throws StoreError.
   */
  async sync(): Promise<void> {
    this.q();
    await this.write({ kind: 'sync' });
  }

  /** Who hears of committed events (in id order, once per commit, once a WAL fsync covers them). */
  setEventListener(fn: (events: readonly StoredEvent[]) => void): void {
    this.publisher.listener = fn;
  }

  /** Free bytes available to us on the dataDir filesystem (free-space.ts), at most statfsCacheMs old. */
  async freeBytes(): Promise<number> {
    return this.free.bytes();
  }

  private async cachedFreeBytes(): Promise<number> {
    try {
      return await this.freeBytes();
    } catch (err) {
      throw toStoreError(err, 'cannot check free space');
    }
  }

  /**
   * Runs one write in the writer thread with its events (same savepoint); once committed, the
   * events are handed to the event listener with their ids. @throws StoreError (full on disk-full codes).
   */
  private write(op: WriteOp, events?: readonly EventRecord[]): Promise<WriteOutcome> {
    const w = this.writer;
    if (!w) return Promise.reject(new StoreError('queue store is not open'));
    if (events?.length && op.kind !== 'prune' && op.kind !== 'sync') op.events = events.map(eventRow);
    return this.track(w.run(op).then((res) => {
      if (events?.length && res.firstEventId !== undefined) {
        // flushMany keeps only the events of the messages it changed (`kept`).
        this.publisher.committed(numbered(res.kept ? res.kept.map((k) => events[k]!) : events, res.firstEventId));
        this.publisher.publishUpTo(w.durableEventId());
      }
      return res;
    }, (err: unknown) => {
      throw toStoreError(err, `queue write (${op.kind}${'id' in op ? ` ${op.id}` : op.kind === 'insert' ? ` ${op.message.id}` : ''}) failed`);
    }));
  }

  /** Keeps `p` in the set close() waits for. */
  private track<T>(p: Promise<T>): Promise<T> {
    this.inflight.add(p);
    void p.then(() => this.inflight.delete(p), () => this.inflight.delete(p));
    return p;
  }

  private async convert(row: MessageRow): Promise<QueuedMessage | undefined> {
    try {
      return toMessage(row, this.q().getRecipients.all(row.id));
    } catch (err) {
      const why = err instanceof RowError ? err.message : String(err);
      await this.quarantine(row.id, `invalid queue entry: ${why}`);
      return undefined;
    }
  }

  /** The prepared read statements; @throws StoreError when the store is not open. */
  private q(): ReadStatements {
    if (!this.stmts) throw new StoreError('queue store is not open');
    return this.stmts;
  }
}
