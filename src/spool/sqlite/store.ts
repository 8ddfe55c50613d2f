/**
 * SqliteQueueStore: the embedded default QueueStore (src/spool/types.ts).
 *
 * Metadata lives in `${dataDir}/queue.db` (better-sqlite3, WAL, synchronous=FULL); each body is one
 * file (layout.ts). Durability rule (DESIGN.md convention 5, RFC 5321 4.1.1.4 / 6.1: a 250 reply
 * accepts responsibility for the message): commit() resolves only after the body file is
 * fdatasynced, renamed into its bucket, the bucket directory fsynced and the row committed.
 * Concurrent commits share one directory fsync and one transaction (group-commit.ts).
 *
 * Owns: queue.db, spool/, quarantine/ under dataDir.
 */
import Database from 'better-sqlite3';
import { createReadStream, statSync } from 'node:fs';
import { rename, statfs, unlink } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { systemClock, type Clock } from '../../core/clock.js';
import { PostlineError, StoreError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { isQueueId } from '../../core/queue-id.js';
import type { EventBus } from '../../events/bus.js';
import type {
  BodyWriter, NewMessage, QueuedMessage, QueueStore, QueueSummary, RecipientUpdate,
} from '../types.js';
import { FileBodyWriter } from './body-writer.js';
import { GroupCommitter, type GroupCommitStats } from './group-commit.js';
import { SpoolLayout, syncDir } from './layout.js';
import { migrate } from './migrations.js';
import { recover, type RecoveryReport } from './recovery.js';
import { newMessageRow, newRecipientRows, RowError, toMessage, type MessageRow, type RecipientRow } from './rows.js';
import { prepareStatements, type Statements } from './statements.js';

/** Constructor options of SqliteQueueStore. */
export interface SqliteQueueStoreOptions {
  /** Directory that holds queue.db, spool/ and quarantine/ (created when missing). */
  readonly dataDir: string;
  /** Free-space reserve, bytes: createBody refuses (452 4.3.1) below it (Postfix queue_minfree). A function is read at each check (live reload). */
  readonly minFreeBytes: number | (() => number);
  readonly logger: Logger;
  readonly clock?: Clock;
  /** Extra wait before a group commit is flushed, ms (0..2 sensible; 0 = next setImmediate tick). Default 0. */
  readonly groupCommitWindowMs?: number;
  /** How long a statfs result is reused by the free-space check, ms. Default 1000. */
  readonly statfsCacheMs?: number;
  /** When given, quarantines are published as 'message.quarantined' events. */
  readonly events?: EventBus;
}

interface CommitRow {
  readonly message: MessageRow;
  readonly recipients: RecipientRow[];
}

const isDiskFull = (e: unknown): boolean => {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT';
};

/** Maps any failure to a StoreError (full for ENOSPC/EDQUOT; other PostlineErrors kept). */
function toStoreError(err: unknown, what: string): PostlineError {
  if (err instanceof PostlineError) return err;
  if (isDiskFull(err)) return new StoreError(`${what}: disk full`, { full: true, cause: err });
  return new StoreError(`${what}: ${(err as Error)?.message ?? String(err)}`, { cause: err });
}

/** QueueStore on SQLite plus one body file per message. Usable in tests with a temp dataDir. */
export class SqliteQueueStore implements QueueStore {
  private readonly layout: SpoolLayout;
  private readonly logger: Logger;
  private readonly clock: Clock;
  private readonly statfsCacheMs: number;
  private readonly committer: GroupCommitter<CommitRow>;
  private db: Database.Database | undefined;
  private stmts: Statements | undefined;
  private freeCache: { at: number; bytes: number } | undefined;
  /** Commits started and not yet settled; close() waits for them. */
  private readonly inflight = new Set<Promise<unknown>>();
  /** Result of the last open()'s crash recovery. */
  lastRecovery: RecoveryReport | undefined;

  /** @throws ConfigError-like PostlineError when an option is invalid. */
  constructor(private readonly opts: SqliteQueueStoreOptions) {
    if (!opts.dataDir) throw new PostlineError('ERR_STORE_OPTIONS', 'dataDir is required', { temporary: false });
    const reserve = typeof opts.minFreeBytes === 'function' ? opts.minFreeBytes() : opts.minFreeBytes;
    if (!Number.isFinite(reserve) || reserve < 0) {
      throw new PostlineError('ERR_STORE_OPTIONS', 'minFreeBytes must be >= 0', { temporary: false });
    }
    const windowMs = opts.groupCommitWindowMs ?? 0;
    if (!(windowMs >= 0 && windowMs <= 1000)) {
      throw new PostlineError('ERR_STORE_OPTIONS', 'groupCommitWindowMs must be 0..1000', { temporary: false });
    }
    this.layout = new SpoolLayout(opts.dataDir);
    this.logger = opts.logger;
    this.clock = opts.clock ?? systemClock;
    this.statfsCacheMs = opts.statfsCacheMs ?? 1000;
    this.committer = new GroupCommitter<CommitRow>({
      windowMs,
      syncDir,
      runTransaction: (rows) => this.insertRows(rows),
    });
  }

  /** Group-commit counters: commits vs transactions vs directory fsyncs. */
  commitStats(): Readonly<GroupCommitStats> {
    return { ...this.committer.stats };
  }

  /**
   * Opens queue.db (WAL, synchronous=FULL), runs migrations and crash recovery (recovery.ts).
   * @throws StoreError when the data directory or database cannot be opened.
   */
  async open(): Promise<void> {
    if (this.db) return;
    try {
      await this.layout.ensureDirs();
      const db = new Database(this.layout.dbPath);
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      db.pragma('busy_timeout = 5000');
      migrate(db);
      this.db = db;
      this.stmts = prepareStatements(db);
    } catch (err) {
      throw toStoreError(err, 'cannot open queue store');
    }
    this.lastRecovery = await recover({
      layout: this.layout, stmts: this.stmts, logger: this.logger,
      quarantine: (id, reason) => this.quarantine(id, reason),
    });
    this.logger.info({ dataDir: this.opts.dataDir, ...this.lastRecovery }, 'queue store opened');
  }

  /** Waits for pending group commits, then closes the database. */
  async close(): Promise<void> {
    await Promise.allSettled([...this.inflight]);
    await this.committer.drain();
    this.db?.close();
    this.db = undefined;
    this.stmts = undefined;
  }

  /**
   * Starts the body file of message `id` in spool/tmp.
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
      return await FileBodyWriter.create(id, this.layout.tmpPath(id));
    } catch (err) {
      throw toStoreError(err, `cannot create body ${id}`);
    }
  }

  /**
   * Commits a message: fdatasync body -> rename into bucket -> (group) fsync bucket dir + one
   * transaction. Resolves with the stored metadata only when all of it is on disk.
   * @throws StoreError (full on ENOSPC/EDQUOT); the body file is removed, nothing is kept.
   */
  async commit(msg: NewMessage, body: BodyWriter): Promise<QueuedMessage> {
    this.q();
    const p = this.commitBody(msg, body);
    this.inflight.add(p);
    try {
      return await p;
    } finally {
      this.inflight.delete(p);
    }
  }

  private async commitBody(msg: NewMessage, body: BodyWriter): Promise<QueuedMessage> {
    if (!(body instanceof FileBodyWriter) || body.id !== msg.id || !body.isOpen()) {
      throw new StoreError(`commit of ${msg.id}: body writer does not belong to this message`);
    }
    try {
      if (!msg.recipients.length) throw new StoreError(`commit of ${msg.id}: no recipients`);
      await body.finish();
      const size = body.bytesOnFile();
      const finalPath = this.layout.bodyPath(msg.id);
      await rename(body.currentPath(), finalPath);
      body.placed(finalPath);
      const row: CommitRow = { message: newMessageRow(msg, size), recipients: newRecipientRows(msg) };
      await this.committer.submit(row, [this.layout.bucketDir(msg.id)]);
      body.committed();
      return toMessage(row.message, row.recipients);
    } catch (err) {
      await body.abort();
      const e = toStoreError(err, `cannot commit ${msg.id}`);
      this.logger.error({ queueId: msg.id, err: (err as Error)?.message, code: e.code }, 'queue commit failed');
      throw e;
    }
  }

  /**
   * Opens the stored body (bytes exactly as committed).
   * @throws StoreError when the message is unknown, quarantined or its body file is missing.
   */
  openBody(id: string): Readable {
    const stmts = this.q();
    if (!isQueueId(id) || !stmts.getMessage.get(id)) throw new StoreError(`no such message ${id}`);
    const path = this.layout.bodyPath(id);
    try {
      statSync(path);
    } catch (err) {
      throw toStoreError(err, `body of ${id} unreadable`);
    }
    return createReadStream(path);
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

  /** Summaries of every (non-quarantined) message, oldest first, for `postline queue list`. */
  async list(): Promise<QueueSummary[]> {
    const out: QueueSummary[] = [];
    for (const row of this.q().allMessages.all()) {
      const m = await this.convert(row);
      if (!m) continue;
      out.push({
        id: m.id, mailFrom: m.mailFrom, size: m.size, arrivedAt: m.arrivedAt, held: m.held,
        nextAttemptAt: m.nextAttemptAt, attempts: m.attempts,
        ...(m.lastError !== undefined ? { lastError: m.lastError } : {}),
        pending: m.recipients.filter((r) => r.status === 'pending').map((r) => r.address),
      });
    }
    return out;
  }

  /**
   * Records recipient outcomes and the next attempt in ONE transaction. Optional fields left
   * undefined keep their stored values. @throws StoreError for an unknown message or recipient idx.
   */
  async updateRecipients(
    id: string,
    updates: readonly RecipientUpdate[],
    next: { attempts: number; nextAttemptAt: number; lastError?: string },
  ): Promise<void> {
    const stmts = this.q();
    this.relaxed(() => this.db!.transaction(() => {
      const r = stmts.updateNext.run({ id, attempts: next.attempts, next: next.nextAttemptAt, last_error: next.lastError ?? null });
      if (r.changes !== 1) throw new StoreError(`no such message ${id}`);
      for (const u of updates) {
        const res = stmts.updateRecipient.run({
          message_id: id, idx: u.idx, status: u.status,
          last_reply: u.lastReply ?? null, dsn_status: u.dsnStatus ?? null, remote_mta: u.remoteMta ?? null,
          done_at: u.doneAt ?? null, delay_notified: u.delayNotified === undefined ? null : u.delayNotified ? 1 : 0,
          dsn_owed_set: u.dsnOwed === undefined ? 0 : 1, dsn_owed: u.dsnOwed ?? null,
        });
        if (res.changes !== 1) throw new StoreError(`message ${id} has no recipient ${u.idx}`);
      }
    })());
  }

  /**
   * Runs delivery-state writes with synchronous=NORMAL: in WAL mode they are then made durable by
   * the next full commit or checkpoint instead of an fsync of their own. Losing one in a crash
   * only repeats a delivery attempt (at-least-once), never loses mail; acceptance commits, removals
   * and DSN hand-offs stay at synchronous=FULL.
   */
  private relaxed<T>(fn: () => T): T {
    this.db!.pragma('synchronous = NORMAL');
    try {
      return fn();
    } finally {
      this.db!.pragma('synchronous = FULL');
    }
  }

  /** Moves the next attempt time (ms since epoch). @throws StoreError for an unknown message. */
  async setNextAttempt(id: string, nextAttemptAt: number): Promise<void> {
    if (this.relaxed(() => this.q().setNext.run(nextAttemptAt, id)).changes !== 1) throw new StoreError(`no such message ${id}`);
  }

  /** Holds or releases a message. @throws StoreError for an unknown message. */
  async setHold(id: string, held: boolean): Promise<void> {
    if (this.q().setHold.run(held ? 1 : 0, id).changes !== 1) throw new StoreError(`no such message ${id}`);
  }

  /**
   * Deletes the rows, then the body file. Idempotent for unknown IDs. Removals that arrive in the
   * same tick share one transaction (one WAL fsync), like acceptance commits. The row is gone for
   * good before the body is unlinked, so a crash never leaves a row without its body.
   * @throws the database error (then nothing of the batch was removed).
   */
  remove(id: string): Promise<void> {
    this.q();
    return new Promise((resolve, reject) => {
      this.removals.push({ id, resolve, reject });
      if (this.removals.length === 1) {
        const flushed = new Promise<void>((done) => setImmediate(() => void this.flushRemovals().finally(done)));
        this.inflight.add(flushed);
        void flushed.finally(() => this.inflight.delete(flushed));
      }
    });
  }

  private readonly removals: Array<{ id: string; resolve: () => void; reject: (err: unknown) => void }> = [];

  private async flushRemovals(): Promise<void> {
    const batch = this.removals.splice(0);
    if (batch.length === 0) return;
    const stmts = this.q();
    try {
      this.db!.transaction(() => {
        for (const r of batch) {
          stmts.deleteRecipients.run(r.id);
          stmts.deleteMessage.run(r.id);
        }
      })();
    } catch (err) {
      batch.forEach((r) => r.reject(err));
      return;
    }
    await Promise.all(batch.map((r) => (isQueueId(r.id) ? unlink(this.layout.bodyPath(r.id)).catch(() => undefined) : undefined)));
    batch.forEach((r) => r.resolve());
  }

  /**
   * Moves the body to quarantine/ and marks the row (kept for inspection, invisible to the queue).
   * Logs queueId and reason; emits 'message.quarantined'. Never throws.
   */
  async quarantine(id: string, reason: string): Promise<void> {
    const safe = isQueueId(id);
    if (safe) {
      await rename(this.layout.bodyPath(id), this.layout.quarantinePath(id)).catch((e: NodeJS.ErrnoException) => {
        if (e.code !== 'ENOENT') this.logger.error({ queueId: id, err: e.message }, 'cannot move body to quarantine');
      });
    }
    try {
      this.stmts?.markQuarantined.run(this.clock.now(), reason, id);
    } catch (err) {
      this.logger.error({ queueId: id, err: (err as Error).message }, 'cannot mark queue entry quarantined');
    }
    this.logger.warn({ queueId: id, reason }, 'queue entry quarantined');
    this.opts.events?.emit({ type: 'message.quarantined', at: this.clock.now(), queueId: id, reason });
  }

  /** Free bytes available to us on the dataDir filesystem (statfs bavail * bsize). */
  async freeBytes(): Promise<number> {
    const s = await statfs(this.opts.dataDir);
    const bytes = Number(s.bavail) * Number(s.bsize);
    this.freeCache = { at: this.clock.now(), bytes };
    return bytes;
  }

  private async cachedFreeBytes(): Promise<number> {
    const c = this.freeCache;
    const now = this.clock.now();
    if (c && now - c.at >= 0 && now - c.at < this.statfsCacheMs) return c.bytes;
    try {
      return await this.freeBytes();
    } catch (err) {
      throw toStoreError(err, 'cannot check free space');
    }
  }

  private insertRows(rows: readonly CommitRow[]): void {
    const stmts = this.q();
    this.db!.transaction(() => {
      for (const r of rows) {
        stmts.insertMessage.run(r.message);
        for (const rc of r.recipients) stmts.insertRecipient.run(rc);
      }
    })();
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

  /** The prepared statements; @throws StoreError when the store is not open. */
  private q(): Statements {
    if (!this.stmts) throw new StoreError('queue store is not open');
    return this.stmts;
  }
}
