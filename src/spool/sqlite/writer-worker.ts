/**
 * The writer thread of the SQLite queue store (node:worker_threads). It owns the only write
 * connection to queue.db, so the commit and its fsync never stall the main thread's event loop.
 *
 * Group commit: requests that arrive while a batch is being written (directory fsyncs, transaction,
 * WAL fsync) wait in the port; the next batch takes all of them at once, so under load batches
 * grow by themselves and N messages cost one WAL fsync. workerData: { dbPath, maxPageCount? }.
 * Replies: one 'done' message per batch with a result per request (writer-protocol.ts).
 */
import Database from 'better-sqlite3';
import { closeSync, fsyncSync, openSync } from 'node:fs';
import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import { applyBatch, newStats, syncNow, toWire, type WriteOp, type WriterMessage, type WriterRequest } from './writer-protocol.js';
import { prepareWriteStatements } from './statements.js';
import { incrementalStep, JOURNAL_SIZE_LIMIT_BYTES } from './vacuum.js';

/** What the store passes to the thread. */
export interface WriterData {
  readonly dbPath: string;
  /** PRAGMA max_page_count of the write connection (SQLITE_FULL beyond it); absent: SQLite's default. */
  readonly maxPageCount?: number;
  /** ms after a relaxed-only batch with nothing new before the idle flush makes it durable (default 500). */
  readonly idleSyncMs?: number;
}

const port = parentPort!;
const send = (m: WriterMessage): void => port.postMessage(m);

function openDb(data: WriterData): Database.Database {
  const db = new Database(data.dbPath);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('busy_timeout = 5000');
  if (data.maxPageCount !== undefined) db.pragma(`max_page_count = ${Math.floor(data.maxPageCount)}`);
  db.pragma(`journal_size_limit = ${JOURNAL_SIZE_LIMIT_BYTES}`);
  return db;
}

/** fsyncs one directory (blocking: this thread exists to wait on the disk). */
function syncDirSync(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

let db: Database.Database;
try {
  db = openDb(workerData as WriterData);
} catch (err) {
  send({ type: 'failed', error: toWire(err) });
  process.exit(0);
}
const stmts = prepareWriteStatements(db);
const stats = newStats();
let pending: WriterRequest[] = [];
let scheduled = false;
let closing: number | undefined;
/** Relaxed commits not yet covered by a WAL fsync. */
let unsynced = false;
let idleTimer: NodeJS.Timeout | undefined;
const idleSyncMs = Math.max(1, (workerData as WriterData).idleSyncMs ?? 500);

/** The idle flush: nothing came since the last relaxed batch; make it durable and say so. */
function idleSync(): void {
  idleTimer = undefined;
  if (!unsynced || scheduled) return;
  try {
    syncNow(db, stmts, stats);
    unsynced = false;
    send({ type: 'synced', stats: { ...stats } });
  } catch {
    idleTimer = setTimeout(idleSync, idleSyncMs); // disk trouble: try again later
  }
}

/** When the last batch was written (ms): freed pages are given back only after a second without writes. */
let lastBatchAt = 0;
/** Gives freed pages back (vacuum.ts), 32 MiB a second at most, only while no write came for a second. */
const vacuumTimer = setInterval(() => {
  if (scheduled || pending.length > 0 || closing !== undefined || Date.now() - lastBatchAt < 1000) return;
  try {
    incrementalStep(db, 8192);
  } catch { /* disk trouble: the next step tries again */ }
}, 1000);
vacuumTimer.unref();

/** Writes everything pending as one batch and replies. */
function flush(): void {
  scheduled = false;
  for (let m = receiveMessageOnPort(port); m; m = receiveMessageOnPort(port)) take(m.message as WriterRequest | WriterRequest[]);
  const batch = pending as { seq: number; op: WriteOp }[];
  pending = [];
  if (batch.length) {
    lastBatchAt = Date.now();
    const failed = new Map<number, unknown>();
    const dirs = new Map<string, unknown>();
    batch.forEach(({ op }) => { if (op.kind === 'insert' && op.dir !== null) dirs.set(op.dir, undefined); });
    for (const dir of dirs.keys()) {
      try {
        syncDirSync(dir);
        stats.dirSyncs++;
      } catch (err) {
        dirs.set(dir, err ?? new Error('fsync failed'));
      }
    }
    batch.forEach(({ op }, i) => {
      const err = op.kind === 'insert' && op.dir !== null ? dirs.get(op.dir) : undefined;
      if (err !== undefined) failed.set(i, err);
    });
    const { results, synced } = applyBatch(db, stmts, batch, failed, stats);
    if (synced) unsynced = false;
    else if (results.some((r) => !('error' in r))) unsynced = true;
    send({ type: 'done', results, stats: { ...stats }, synced });
    if (unsynced && !idleTimer) idleTimer = setTimeout(idleSync, idleSyncMs);
  }
  if (closing !== undefined && pending.length === 0) {
    if (idleTimer) clearTimeout(idleTimer);
    clearInterval(vacuumTimer);
    if (unsynced) {
      try {
        syncNow(db, stmts, stats);
        send({ type: 'synced', stats: { ...stats } });
      } catch { /* closing anyway: the next open finds what the disk kept */ }
    }
    db.close();
    send({ type: 'closed' });
    port.close();
  }
}

function take(msg: WriterRequest | WriterRequest[]): void {
  for (const req of Array.isArray(msg) ? msg : [msg]) {
    if (req.op.kind === 'close') closing = req.seq;
    else pending.push(req);
  }
}

port.on('message', (req: WriterRequest | WriterRequest[]) => {
  take(req);
  if (!scheduled) {
    scheduled = true;
    setImmediate(flush);
  }
});
send({ type: 'ready' });
