/**
 * A side connection to queue.db for the small stores that live beside the queue (API keys,
 * idempotency records, webhook cursors): their own better-sqlite3 connection, WAL, a busy timeout
 * so they wait for the queue's writer thread instead of failing, and synchronous=NORMAL (their
 * writes are rare or may repeat after a crash: a cursor that moves back re-sends, which at least
 * once allows). The queue's own writes never go through here.
 *
 * Works with or without a running server (SQLite locks across processes), so the CLI can manage
 * API keys while Postline runs.
 */
import Database from 'better-sqlite3';
import { existsSync, mkdirSync } from 'node:fs';
import { NoDataDirError } from '../../core/errors.js';
import { SpoolLayout } from './layout.js';
import { migrate } from './migrations.js';

/** Options of openSideDatabase. */
export interface SideDatabaseOptions {
  /** false: fail with NoDataDirError when queue.db does not exist (default true: create it, schema included). */
  readonly create?: boolean;
  /** ms to wait for a lock held by another connection (default 5000). */
  readonly busyTimeoutMs?: number;
  readonly readonly?: boolean;
}

/**
 * Opens `dataDir/queue.db` on a new connection, brought to the current schema (migrations.ts).
 * @throws NoDataDirError when `create` is false and there is no queue.db; SqliteError otherwise.
 */
export function openSideDatabase(dataDir: string, opts: SideDatabaseOptions = {}): Database.Database {
  const layout = new SpoolLayout(dataDir);
  if (!existsSync(layout.dbPath)) {
    if (opts.create === false || opts.readonly) throw new NoDataDirError(`no queue at ${dataDir} (no queue.db there)`, dataDir);
    mkdirSync(dataDir, { recursive: true });
  }
  const db = new Database(layout.dbPath, { readonly: opts.readonly === true });
  try {
    db.pragma(`busy_timeout = ${Math.max(0, Math.floor(opts.busyTimeoutMs ?? 5000))}`);
    if (!opts.readonly) {
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      migrate(db);
    }
  } catch (err) {
    db.close();
    throw err;
  }
  return db;
}
