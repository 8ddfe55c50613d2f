/**
 * The messages between the SQLite queue store (main thread) and its writer thread
 * (writer-worker.ts), and how the writer applies one batch of them.
 *
 * Owns: the write operations of the store and their batch semantics. Every write the store makes
 * goes through `applyBatch`: all operations that arrived while the previous batch was being written
 * share ONE transaction (group commit: one WAL fsync for the batch), each in its own savepoint so a
 * failing operation (unknown message, a too large row) fails alone. When the commit itself fails,
 * the operations are retried one by one, so one bad operation cannot sink its neighbours.
 */
import type Database from 'better-sqlite3';
import type { EventRow, MessageRow, RecipientRow } from './rows.js';
import type { RecipientUpdateParams, WriteStatements } from './statements.js';
import { newHistogram, observe, type FixedHistogram } from '../../core/fixed-histogram.js';
import { applySuppress, type SuppressOp } from './suppression-sql.js';

/**
 * One write. `insert` with `body` stores the body inline; with `dir` the body is a file there.
 * Every write may carry `events`: rows of the event log (outbox) inserted in the same savepoint,
 * so they commit, or fail, with the state change they record.
 */
export type WriteOp =
  | { kind: 'insert'; message: MessageRow; recipients: RecipientRow[]; body: Uint8Array | null; dir: string | null; events?: EventRow[] }
  | {
    kind: 'record'; id: string; updates: RecipientUpdateParams[];
    next: { attempts: number; nextAttemptAt: number; lastError: string | null } | null;
    /** Delete the message in the same savepoint; `durable` makes the batch fsync (a body file is unlinked after it). */
    remove: boolean; durable: boolean; events?: EventRow[];
  }
  | { kind: 'setNext'; id: string; at: number; events?: EventRow[] }
  | { kind: 'setHold'; id: string; held: boolean; events?: EventRow[] }
  /** Bulk flush: next attempt `at` for each of `ids` still there and not held; `events` (one per id, same order) only for those. */
  | { kind: 'flushMany'; ids: string[]; at: number; events?: EventRow[] }
  | { kind: 'remove'; id: string; events?: EventRow[] }
  | { kind: 'quarantine'; id: string; at: number; reason: string; events?: EventRow[] }
  | { kind: 'events'; events: EventRow[] }
  | { kind: 'prune'; before: number; max: number }
  /** Suppression list changes with their events, soft-bounce counts and a cursor (suppression-sql.ts); `kept`: the items that changed a row. */
  | SuppressOp
  /** Makes every relaxed commit so far durable (a FULL commit of a tiny write). */
  | { kind: 'sync' };

/** main -> writer: one operation, or the request to flush and close (posted alone or several in an array). */
export type WriterRequest = { seq: number; op: WriteOp } | { seq: number; op: { kind: 'close' } };

/** An error crossing the thread boundary. `notFound`: the operation named an unknown message/recipient. */
export interface WireError {
  message: string;
  code?: string;
  notFound?: boolean;
}

/**
 * Outcome of one operation: `value` is 1 when a removal deleted an inline body (else 0), or the
 * rows a `prune` deleted; `firstEventId` is the id given to the op's first event (the others follow
 * one by one: a single writer numbers them in order).
 */
export type WriteResult = { seq: number; value: number; firstEventId?: number; lastEventId?: number; kept?: number[] } | { seq: number; error: WireError };

/** writer -> main. */
export type WriterMessage =
  | { type: 'ready' }
  | { type: 'failed'; error: WireError }
  /** `synced`: this batch committed with a WAL fsync, so it and everything before it is durable. */
  | { type: 'done'; results: WriteResult[]; stats: WriterStats; synced: boolean }
  /** Relaxed commits of earlier batches were made durable (the idle flush, or before closing). */
  | { type: 'synced'; stats: WriterStats }
  | { type: 'closed' };

/** Counters of the writer, for tests and metrics. */
export interface WriterStats {
  /** New messages committed. */
  commits: number;
  /** New messages that failed (directory fsync or database error). */
  failures: number;
  /** Database transactions run (batches, plus retries one by one). */
  transactions: number;
  /** Directory fsyncs done (bodies kept as files). */
  dirSyncs: number;
  /** Largest number of new messages in one transaction. */
  largestBatch: number;
  /** Operations of any kind written. */
  writes: number;
  /** Transactions committed with a WAL fsync (synchronous=FULL), and without one (relaxed). */
  syncedTransactions: number;
  relaxedTransactions: number;
  /** Idle flushes: relaxed commits made durable because nothing else came within the flush delay. */
  idleSyncs: number;
  /** Durable (synchronous=FULL) transactions by how long they took, seconds: statements, COMMIT and its WAL fsync (idle flushes included). */
  commitSeconds: FixedHistogram;
  /** Transactions that held new messages, by how many (group commit size). */
  batchSize: FixedHistogram;
}

/** Bucket bounds of WriterStats.commitSeconds, seconds (0.25 ms .. 2.5 s). */
export const COMMIT_SECONDS_BOUNDS: readonly number[] = [0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
/** Bucket bounds of WriterStats.batchSize, messages per transaction. */
export const BATCH_SIZE_BOUNDS: readonly number[] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512];

export const newStats = (): WriterStats => ({
  commits: 0, failures: 0, transactions: 0, dirSyncs: 0, largestBatch: 0, writes: 0,
  syncedTransactions: 0, relaxedTransactions: 0, idleSyncs: 0,
  commitSeconds: newHistogram(COMMIT_SECONDS_BOUNDS), batchSize: newHistogram(BATCH_SIZE_BOUNDS),
});

/** An operation named a message or recipient that does not exist (maps to StoreError). */
export class NotFoundError extends Error {}

/** Serializes any thrown value for postMessage. */
export function toWire(err: unknown): WireError {
  const e = err as { message?: unknown; code?: unknown } | undefined;
  return {
    message: typeof e?.message === 'string' ? e.message : String(err),
    ...(typeof e?.code === 'string' ? { code: e.code } : {}),
    ...(err instanceof NotFoundError ? { notFound: true } : {}),
  };
}

/**
 * Relaxed writes commit without a WAL fsync of their own; the next full commit, the writer's idle
 * flush (about 0.5 s later) or a checkpoint makes them durable. Losing one to a power loss only
 * repeats a delivery attempt (with its events: readers see events only once they are durable):
 * deferrals, successful outcomes (with the removal of a message whose body is inline), the next
 * attempt time, events of no state change, pruning. Durable (`record.durable`): a removal whose
 * body file is unlinked afterwards, and bounce or DSN decisions (as Postfix fsyncs its bounce logs).
 */
const isRelaxed = (op: WriteOp): boolean =>
  (op.kind === 'record' && !op.durable) || (op.kind === 'suppress' && !op.durable) || op.kind === 'setNext' || op.kind === 'flushMany' || op.kind === 'events' || op.kind === 'prune';

/** Inserts the events of an op. @returns the first and last id, or undefined when there were none. */
function insertEvents(s: WriteStatements, events: readonly EventRow[] | undefined): [number, number] | undefined {
  if (!events || events.length === 0) return undefined;
  const first = Number(s.insertEvent.run(events[0]!).lastInsertRowid);
  let last = first;
  for (let i = 1; i < events.length; i++) last = Number(s.insertEvent.run(events[i]!).lastInsertRowid);
  return [first, last];
}

/** Applies one operation and its events with the write statements. @returns see WriteResult. @throws NotFoundError, SqliteError. */
export function applyOp(s: WriteStatements, op: WriteOp): { value: number; firstEventId?: number; lastEventId?: number; kept?: number[] } {
  if (op.kind === 'flushMany') return applyFlushMany(s, op);
  if (op.kind === 'suppress') return applySuppress(s, op);
  const value = applyState(s, op);
  const ids = op.kind === 'prune' || op.kind === 'sync' ? undefined : insertEvents(s, op.events);
  return ids === undefined ? { value } : { value, firstEventId: ids[0], lastEventId: ids[1] };
}

/**
 * Bulk flush: ids that vanished or were held meanwhile are skipped with their events (no event
 * for a change that was not made). `kept` lists the indexes flushed; their events got consecutive
 * ids from `firstEventId` (one writer numbers them in order).
 */
function applyFlushMany(s: WriteStatements, op: Extract<WriteOp, { kind: 'flushMany' }>): { value: number; firstEventId?: number; lastEventId?: number; kept: number[] } {
  let value = 0;
  let first: number | undefined;
  let last: number | undefined;
  const kept: number[] = [];
  op.ids.forEach((id, i) => {
    if (s.flushOne.run(op.at, id).changes !== 1) return;
    value++;
    kept.push(i);
    const ev = op.events?.[i];
    if (!ev) return;
    last = Number(s.insertEvent.run(ev).lastInsertRowid);
    first ??= last;
  });
  return first === undefined ? { value, kept } : { value, firstEventId: first, lastEventId: last, kept };
}

function applyState(s: WriteStatements, op: Exclude<WriteOp, { kind: 'flushMany' | 'suppress' }>): number {
  switch (op.kind) {
    case 'insert': {
      s.insertMessage.run(op.message);
      for (const r of op.recipients) s.insertRecipient.run(r);
      if (op.body) s.insertBody.run(op.message.id, Buffer.from(op.body.buffer, op.body.byteOffset, op.body.byteLength));
      return 0;
    }
    case 'record': {
      if (op.next) {
        const r = s.updateNext.run({ id: op.id, attempts: op.next.attempts, next: op.next.nextAttemptAt, last_error: op.next.lastError });
        if (r.changes !== 1) throw new NotFoundError(`no such message ${op.id}`);
      }
      for (const u of op.updates) {
        if (s.updateRecipient.run(u).changes !== 1) throw new NotFoundError(`message ${op.id} has no recipient ${u.idx}`);
      }
      if (!op.remove) return 0;
      s.deleteRecipients.run(op.id);
      if (s.deleteMessage.run(op.id).changes !== 1) throw new NotFoundError(`no such message ${op.id}`);
      return s.deleteBody.run(op.id).changes;
    }
    case 'events':
      return 0;
    case 'sync':
      s.touchSync.run();
      return 0;
    case 'prune':
      return s.pruneEvents.run({ before: op.before, max: op.max }).changes;
    case 'setNext':
      if (s.setNext.run(op.at, op.id).changes !== 1) throw new NotFoundError(`no such message ${op.id}`);
      return 0;
    case 'setHold':
      if (s.setHold.run(op.held ? 1 : 0, op.id).changes !== 1) throw new NotFoundError(`no such message ${op.id}`);
      return 0;
    case 'remove': {
      s.deleteRecipients.run(op.id);
      s.deleteMessage.run(op.id);
      return s.deleteBody.run(op.id).changes;
    }
    case 'quarantine':
      s.markQuarantined.run(op.at, op.reason, op.id);
      return 0;
  }
}

/**
 * Writes `ops` in one transaction (synchronous=NORMAL when all are relaxed, else FULL), each in a
 * savepoint. `failed` holds errors decided before (a directory fsync that failed), by index.
 * @returns one result per op, in order, and whether the batch's last transaction fsynced the WAL
 *          (then everything committed so far is durable).
 */
export function applyBatch(
  db: Database.Database, s: WriteStatements, ops: readonly { seq: number; op: WriteOp }[],
  failed: ReadonlyMap<number, unknown>, stats: WriterStats,
): { results: WriteResult[]; synced: boolean } {
  const results: WriteResult[] = new Array(ops.length);
  let batchSynced = false;
  const todo: number[] = [];
  ops.forEach((o, i) => {
    const f = failed.get(i);
    if (f !== undefined) results[i] = { seq: o.seq, error: toWire(f) };
    else todo.push(i);
  });
  const run = (idx: readonly number[]): void => {
    const relaxed = idx.every((i) => isRelaxed(ops[i].op));
    if (relaxed) db.pragma('synchronous = NORMAL');
    const t0 = relaxed ? 0 : performance.now();
    try {
      const out = db.transaction(() => idx.map((i): WriteResult => {
        try {
          return { seq: ops[i].seq, ...db.transaction(() => applyOp(s, ops[i].op))() };
        } catch (err) {
          // SQLITE_FULL, IOERR... may roll back the whole transaction, not just the savepoint:
          // then the batch fails (and is retried one by one) with this error, not a later one.
          if (!db.inTransaction) throw err;
          return { seq: ops[i].seq, error: toWire(err) };
        }
      }))();
      if (!relaxed) observe(stats.commitSeconds, (performance.now() - t0) / 1000);
      stats.transactions++;
      if (relaxed) stats.relaxedTransactions++;
      else stats.syncedTransactions++;
      // Durable only if the last commit fsynced: when a failed batch is retried one by one, a
      // relaxed retry after a full one is not covered by that fsync.
      batchSynced = !relaxed;
      idx.forEach((i, k) => { results[i] = out[k]; });
    } finally {
      if (relaxed) db.pragma('synchronous = FULL');
    }
  };
  if (todo.length) {
    try {
      run(todo);
    } catch (err) {
      if (todo.length === 1) results[todo[0]] = { seq: ops[todo[0]].seq, error: toWire(err) };
      else {
        for (const i of todo) {
          try {
            run([i]);
          } catch (e) {
            results[i] = { seq: ops[i].seq, error: toWire(e) };
          }
        }
      }
    }
  }
  let inserted = 0;
  ops.forEach((o, i) => {
    stats.writes++;
    if (o.op.kind !== 'insert') return;
    if ('error' in results[i]) stats.failures++;
    else {
      stats.commits++;
      inserted++;
    }
  });
  stats.largestBatch = Math.max(stats.largestBatch, inserted);
  if (inserted > 0) observe(stats.batchSize, inserted);
  return { results, synced: batchSynced };
}

/**
 * Makes every relaxed commit so far durable: one tiny write committed with synchronous=FULL (an
 * empty transaction would not touch the WAL, so it would not fsync it). @throws SqliteError.
 */
export function syncNow(db: Database.Database, s: WriteStatements, stats: WriterStats): void {
  const t0 = performance.now();
  db.transaction(() => s.touchSync.run())();
  observe(stats.commitSeconds, (performance.now() - t0) / 1000);
  stats.idleSyncs++;
}
