/**
 * The SQL of the suppression list in queue.db (migration 11): the writer thread's statements and
 * how it applies one `suppress` operation (writer-protocol.ts), and the read statements of the main
 * thread's connection (suppression-store.ts).
 *
 * One operation is one savepoint: its adds and removes (each with its event, inserted only when the
 * row changed), the soft-bounce counts and a reader's cursor, so a crash never keeps a change
 * without its event or a cursor past a change it did not write.
 */
import type Database from 'better-sqlite3';
import type { EventRow } from './rows.js';

/** A row of `suppressions`. */
export interface SuppressionRow {
  scope: string;
  address: string;
  /** The address's domain (listing by domain). */
  domain: string;
  reason: string;
  source: string;
  description: string | null;
  created_at: number;
  expires_at: number | null;
}

/** One change of a `suppress` operation. `reasons`: remove only a row with one of these (JSON array), null: any. */
export type SuppressionItem =
  | { kind: 'add'; row: SuppressionRow; mode: 'insert' | 'upgrade' | 'replace' }
  | { kind: 'remove'; scope: string; address: string; reasons: string | null };

/**
 * The writer operation: `items` in order, `events` one per item (same order; inserted only for
 * the items that changed a row, listed in the result's `kept`), then the counts and the cursor.
 * `durable`: commit with a WAL fsync (operator and API changes); else relaxed (the feeder, whose
 * cursor rides in the same commit: a lost commit is replayed).
 */
export interface SuppressOp {
  kind: 'suppress';
  items: SuppressionItem[];
  /** "now" for expiry, ms. */
  now: number;
  softBounces: { scope: string; address: string; count: number; at: number }[];
  cursor: { name: string; id: number; at: number } | null;
  durable: boolean;
  events?: EventRow[];
}

/** Rank of a reason for mode 'upgrade': soft-bounce < hard-bounce < the others. */
const rank = (col: string): string => `(CASE ${col} WHEN 'soft-bounce' THEN 1 WHEN 'hard-bounce' THEN 2 ELSE 3 END)`;

/** The writer thread's statements (merged into prepareWriteStatements). */
export function prepareSuppressionWriteStatements(db: Database.Database) {
  return {
    /** Insert, or update when mode says so or the stored row has expired; changes 0 when kept. */
    supAdd: db.prepare<[SuppressionRow & { mode: string; now: number }]>(`
      INSERT INTO suppressions (scope, address, domain, reason, source, description, created_at, expires_at)
      VALUES (@scope, @address, @domain, @reason, @source, @description, @created_at, @expires_at)
      ON CONFLICT (scope, address) DO UPDATE SET domain = excluded.domain, reason = excluded.reason,
        source = excluded.source, description = excluded.description, created_at = excluded.created_at,
        expires_at = excluded.expires_at
      WHERE @mode = 'replace'
        OR (suppressions.expires_at IS NOT NULL AND suppressions.expires_at <= @now)
        OR (@mode = 'upgrade' AND ${rank('excluded.reason')} > ${rank('suppressions.reason')})`),
    supRemove: db.prepare<[{ scope: string; address: string; reasons: string | null }]>(`
      DELETE FROM suppressions WHERE scope = @scope AND address = @address
        AND (@reasons IS NULL OR reason IN (SELECT value FROM json_each(@reasons)))`),
    supSoftSet: db.prepare<[{ scope: string; address: string; count: number; at: number }]>(`
      INSERT INTO suppression_soft_bounces (scope, address, count, last_at) VALUES (@scope, @address, @count, @at)
      ON CONFLICT (scope, address) DO UPDATE SET count = excluded.count, last_at = excluded.last_at`),
    supSoftDelete: db.prepare<[{ scope: string; address: string }]>(
      'DELETE FROM suppression_soft_bounces WHERE scope = @scope AND address = @address'),
    supCursor: db.prepare<[{ name: string; id: number; at: number }]>(`
      INSERT INTO suppression_cursors (name, cursor, updated_at) VALUES (@name, @id, @at)
      ON CONFLICT (name) DO UPDATE SET cursor = MAX(cursor, excluded.cursor), updated_at = excluded.updated_at`),
  };
}

type Statements = ReturnType<typeof prepareSuppressionWriteStatements> & { insertEvent: Database.Statement<[EventRow]> };

/**
 * Applies one `suppress` operation (inside the caller's savepoint). @returns how many items changed
 * a row, their indexes (`kept`), and the ids of their events (consecutive: one writer numbers them).
 * @throws SqliteError (the savepoint then rolls everything of it back).
 */
export function applySuppress(s: Statements, op: SuppressOp): { value: number; kept: number[]; firstEventId?: number; lastEventId?: number } {
  const kept: number[] = [];
  let first: number | undefined;
  let last: number | undefined;
  op.items.forEach((it, i) => {
    const changes = it.kind === 'add'
      ? s.supAdd.run({ ...it.row, mode: it.mode, now: op.now }).changes
      : s.supRemove.run({ scope: it.scope, address: it.address, reasons: it.reasons }).changes;
    if (changes < 1) return;
    kept.push(i);
    const ev = op.events?.[i];
    if (!ev) return;
    last = Number(s.insertEvent.run(ev).lastInsertRowid);
    first ??= last;
  });
  for (const c of op.softBounces) {
    if (c.count > 0) s.supSoftSet.run(c);
    else s.supSoftDelete.run({ scope: c.scope, address: c.address });
  }
  if (op.cursor) s.supCursor.run(op.cursor);
  return first === undefined ? { value: kept.length, kept } : { value: kept.length, kept, firstEventId: first, lastEventId: last };
}

/** The main thread's read statements (suppression-store.ts). */
export function prepareSuppressionReadStatements(db: Database.Database) {
  return {
    /** The four keys of a check, in order of preference; expired rows never match. */
    check: db.prepare<[{ s: string; a: string; d: string; now: number }], SuppressionRow>(`
      SELECT * FROM suppressions WHERE scope = @s AND address = @a AND (expires_at IS NULL OR expires_at > @now)
      UNION ALL SELECT * FROM suppressions WHERE scope = '*' AND address = @a AND (expires_at IS NULL OR expires_at > @now)
      UNION ALL SELECT * FROM suppressions WHERE scope = @s AND address = @d AND (expires_at IS NULL OR expires_at > @now)
      UNION ALL SELECT * FROM suppressions WHERE scope = '*' AND address = @d AND (expires_at IS NULL OR expires_at > @now)
      LIMIT 1`),
    /** The same for a sender without a scope of its own (null sender, '*'). */
    checkAll: db.prepare<[{ a: string; d: string; now: number }], SuppressionRow>(`
      SELECT * FROM suppressions WHERE scope = '*' AND address = @a AND (expires_at IS NULL OR expires_at > @now)
      UNION ALL SELECT * FROM suppressions WHERE scope = '*' AND address = @d AND (expires_at IS NULL OR expires_at > @now)
      LIMIT 1`),
    get: db.prepare<[string, string], SuppressionRow>('SELECT * FROM suppressions WHERE scope = ? AND address = ?'),
    any: db.prepare<[], { x: number }>('SELECT 1 AS x FROM suppressions LIMIT 1'),
    count: db.prepare<[], { n: number }>('SELECT count(*) AS n FROM suppressions'),
    /** Every key in primary key order, a page at a time (the check's filter). */
    keysFirst: db.prepare<[number], { scope: string; address: string }>('SELECT scope, address FROM suppressions ORDER BY scope, address LIMIT ?'),
    keysAfter: db.prepare<[string, string, number], { scope: string; address: string }>(
      'SELECT scope, address FROM suppressions WHERE (scope, address) > (?, ?) ORDER BY scope, address LIMIT ?'),
    softBounces: db.prepare<[string, string], { count: number }>('SELECT count FROM suppression_soft_bounces WHERE scope = ? AND address = ?'),
    cursor: db.prepare<[string], { cursor: number }>('SELECT cursor FROM suppression_cursors WHERE name = ?'),
  };
}

export type SuppressionReadStatements = ReturnType<typeof prepareSuppressionReadStatements>;

/**
 * One page of the list in (address, scope) order after the cursor key, with the query's filters;
 * the WHERE terms are built from fixed text, the values bound. `limit` rows at most.
 */
export function listSuppressionRows(db: Database.Database, q: {
  scope?: string; reason?: string; addressPrefix?: string; domain?: string; after?: { address: string; scope: string };
  expired: boolean; now: number; limit: number;
}): SuppressionRow[] {
  const where: string[] = [];
  const args: Record<string, unknown> = { limit: q.limit };
  if (q.scope !== undefined) { where.push('scope = @scope'); args.scope = q.scope; }
  if (q.reason !== undefined) { where.push('reason = @reason'); args.reason = q.reason; }
  if (q.domain !== undefined) { where.push('domain = @domain'); args.domain = q.domain; }
  if (q.addressPrefix !== undefined && q.addressPrefix !== '') {
    // A range on the index instead of LIKE (whose '%' and '_' would need escaping).
    where.push('address >= @prefix AND address < @prefixEnd');
    args.prefix = q.addressPrefix;
    args.prefixEnd = q.addressPrefix + '\u{10ffff}';
  }
  if (q.after) { where.push('(address, scope) > (@afterAddress, @afterScope)'); args.afterAddress = q.after.address; args.afterScope = q.after.scope; }
  if (!q.expired) { where.push('(expires_at IS NULL OR expires_at > @now)'); args.now = q.now; }
  const sql = `SELECT * FROM suppressions${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY address, scope LIMIT @limit`;
  let stmt = listStatements.get(db)?.get(sql);
  if (!stmt) {
    stmt = db.prepare<[Record<string, unknown>], SuppressionRow>(sql);
    const byDb = listStatements.get(db) ?? new Map();
    byDb.set(sql, stmt);
    listStatements.set(db, byDb);
  }
  return stmt.all(args);
}

/** The listing statements prepared so far, per connection (at most 2^6 shapes of WHERE). */
const listStatements = new WeakMap<Database.Database, Map<string, Database.Statement<[Record<string, unknown>], SuppressionRow>>>();
