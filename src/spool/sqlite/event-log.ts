/**
 * Reading the event log table (migration 5) of queue.db: the one query the store, the CLI
 * (`postline events`) and other readers on a side connection share. Writes happen only in the
 * writer thread, with the state change they record (writer-protocol.ts).
 */
import type Database from 'better-sqlite3';
import type { EventQuery, StoredEvent } from '../../events/record.js';
import { toStoredEvent, type EventRow } from './rows.js';

/** Prepared statements by SQL text, per connection. */
const caches = new WeakMap<Database.Database, Map<string, Database.Statement<unknown[], EventRow & { id: number }>>>();

/**
 * Events matching `q` (limit clamped to 1..10000; types, queueId and since filters), oldest
 * first; `desc`: the newest `limit` ones, newest first. `upTo`: only ids up to it (the durable ones).
 * @throws SqliteError (e.g. the table does not exist in a database older than schema 5).
 */
export function queryEvents(db: Database.Database, q: EventQuery, order: 'asc' | 'desc' = 'asc', upTo?: number): StoredEvent[] {
  const where: string[] = ['id > ?'];
  const args: (string | number)[] = [Math.max(0, Math.floor(q.after ?? 0))];
  if (upTo !== undefined) { where.push('id <= ?'); args.push(upTo); }
  if (q.queueId !== undefined) { where.push('queue_id = ?'); args.push(q.queueId); }
  if (q.since !== undefined) { where.push('at >= ?'); args.push(q.since); }
  if (q.types?.length) { where.push(`type IN (${q.types.map(() => '?').join(',')})`); args.push(...q.types); }
  const limit = Math.min(10_000, Math.max(1, Math.floor(q.limit)));
  const sql = `SELECT id, at, type, queue_id, data FROM events WHERE ${where.join(' AND ')} ORDER BY id ${order === 'desc' ? 'DESC' : ''} LIMIT ${limit}`;
  let cache = caches.get(db);
  if (!cache) caches.set(db, (cache = new Map()));
  let stmt = cache.get(sql);
  if (!stmt) {
    stmt = db.prepare<unknown[], EventRow & { id: number }>(sql);
    if (cache.size < 256) cache.set(sql, stmt);
  }
  return stmt.all(...args).map(toStoredEvent);
}

/** The newest event id (0 when none was ever written). */
export function lastEventIdOf(db: Database.Database): number {
  return (db.prepare('SELECT MAX(id) AS id FROM events').get() as { id: number | null } | undefined)?.id ?? 0;
}
