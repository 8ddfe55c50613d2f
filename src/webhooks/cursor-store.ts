/**
 * Webhook cursors: per endpoint (by name), the id of the last event it acknowledged (a 2xx) and its
 * health (failing since, last error, last success, attempts). The `WebhookCursorStore` interface has
 * one conformance suite (test/conformance/webhook-cursor-store.ts) every backend must pass; the
 * SQLite one lives in queue.db (table webhook_cursors, migration 7) on a side connection
 * (spool/sqlite/side-db.ts), so `postline webhooks status` reads it while the server runs.
 *
 * The cursor only moves forward: an acknowledgement with a lower id than stored is ignored. After a
 * crash a cursor may be behind what was delivered (events are sent again: at least once), never ahead.
 */
import type Database from 'better-sqlite3';
import { openSideDatabase } from '../spool/sqlite/side-db.js';

/** One endpoint's stored state. Times are ms since epoch. */
export interface WebhookCursor {
  readonly endpoint: string;
  /** Id of the last event acknowledged (or skipped by the type filter); 0 = before the first. */
  readonly cursor: number;
  readonly createdAt: number;
  readonly lastSuccessAt?: number;
  readonly lastAttemptAt?: number;
  /** Set when the oldest unsent event got older than the endpoint's maxAgeMs; cleared by a 2xx. */
  readonly failingSince?: number;
  /** The last failure (HTTP status, timeout, refused target), one line; cleared by a 2xx. */
  readonly lastError?: string;
  /** Failed attempts since the last success. */
  readonly attempts: number;
  /** Events delivered (2xx) in all. */
  readonly delivered: number;
  /** Events that were pruned by retention before they could be delivered. */
  readonly skipped: number;
}

/** A failed attempt to record. */
export interface WebhookFailure {
  /** When it failed, ms. */
  readonly at: number;
  readonly error: string;
  /** True: the endpoint is failing (kept if already set: failingSince stays the first time). */
  readonly failing: boolean;
}

/** Storage of webhook cursors. Every method may throw the backend's error (e.g. SqliteError). */
export interface WebhookCursorStore {
  /** The endpoint's state, or undefined when it has none. */
  get(endpoint: string): Promise<WebhookCursor | undefined>;
  /** Every stored endpoint, by name. */
  list(): Promise<WebhookCursor[]>;
  /**
   * Creates the endpoint at `cursor` when it has no state yet; an existing one is returned
   * unchanged (a restart keeps its place).
   */
  ensure(endpoint: string, cursor: number, at: number): Promise<WebhookCursor>;
  /**
   * Moves the cursor forward to `cursor` (ignored when not greater) and, when `delivered` > 0,
   * records a success at `at`: attempts 0, failingSince and lastError cleared, delivered += n.
   * With delivered 0 (events skipped by the type filter) only the cursor moves.
   * @throws Error when the endpoint has no state (ensure first).
   */
  advance(endpoint: string, cursor: number, at: number, delivered: number): Promise<void>;
  /** Records a failed attempt: attempts + 1, lastError, lastAttemptAt, failingSince when `failing`. */
  recordFailure(endpoint: string, f: WebhookFailure): Promise<void>;
  /** Adds `n` to the skipped count (events pruned before delivery). */
  addSkipped(endpoint: string, n: number): Promise<void>;
  /** Forgets the endpoint. */
  remove(endpoint: string): Promise<void>;
  close(): Promise<void>;
}

/** Thrown by advance/recordFailure for an endpoint without state. */
export class UnknownEndpointError extends Error {
  readonly code = 'ERR_WEBHOOK_UNKNOWN_ENDPOINT';
  constructor(endpoint: string) {
    super(`webhook endpoint "${endpoint}" has no stored cursor`);
    this.name = 'UnknownEndpointError';
  }
}

interface Row {
  endpoint: string;
  cursor: number;
  created_at: number;
  last_success_at: number | null;
  last_attempt_at: number | null;
  failing_since: number | null;
  last_error: string | null;
  attempts: number;
  delivered: number;
  skipped: number;
}

function fromRow(r: Row): WebhookCursor {
  return {
    endpoint: r.endpoint,
    cursor: r.cursor,
    createdAt: r.created_at,
    ...(r.last_success_at !== null ? { lastSuccessAt: r.last_success_at } : {}),
    ...(r.last_attempt_at !== null ? { lastAttemptAt: r.last_attempt_at } : {}),
    ...(r.failing_since !== null ? { failingSince: r.failing_since } : {}),
    ...(r.last_error !== null ? { lastError: r.last_error } : {}),
    attempts: r.attempts,
    delivered: r.delivered,
    skipped: r.skipped,
  };
}

/** Longest lastError kept, characters. */
const MAX_ERROR = 500;

/** WebhookCursorStore in queue.db (table webhook_cursors) on its own connection. */
export class SqliteWebhookCursorStore implements WebhookCursorStore {
  private readonly stmts;

  /**
   * @param db a side connection (openSideDatabase) brought to schema 7 or later; closed by close()
   *           when `ownsDb` (the default).
   */
  constructor(private readonly db: Database.Database, private readonly ownsDb = true) {
    this.stmts = {
      get: db.prepare<[string], Row>('SELECT * FROM webhook_cursors WHERE endpoint = ?'),
      list: db.prepare<[], Row>('SELECT * FROM webhook_cursors ORDER BY endpoint'),
      insert: db.prepare('INSERT INTO webhook_cursors (endpoint, cursor, created_at) VALUES (?, ?, ?) ON CONFLICT (endpoint) DO NOTHING'),
      advance: db.prepare(`UPDATE webhook_cursors SET cursor = MAX(cursor, @cursor),
          last_success_at = CASE WHEN @n > 0 THEN @at ELSE last_success_at END,
          last_attempt_at = CASE WHEN @n > 0 THEN @at ELSE last_attempt_at END,
          failing_since = CASE WHEN @n > 0 THEN NULL ELSE failing_since END,
          last_error = CASE WHEN @n > 0 THEN NULL ELSE last_error END,
          attempts = CASE WHEN @n > 0 THEN 0 ELSE attempts END,
          delivered = delivered + @n
        WHERE endpoint = @endpoint`),
      fail: db.prepare(`UPDATE webhook_cursors SET attempts = attempts + 1, last_error = @error, last_attempt_at = @at,
          failing_since = CASE WHEN @failing = 1 THEN COALESCE(failing_since, @at) ELSE failing_since END
        WHERE endpoint = @endpoint`),
      skip: db.prepare('UPDATE webhook_cursors SET skipped = skipped + ? WHERE endpoint = ?'),
      remove: db.prepare('DELETE FROM webhook_cursors WHERE endpoint = ?'),
    };
  }

  /** Opens the store on `dataDir/queue.db` (created with its schema when absent). */
  static open(dataDir: string): SqliteWebhookCursorStore {
    return new SqliteWebhookCursorStore(openSideDatabase(dataDir));
  }

  async get(endpoint: string): Promise<WebhookCursor | undefined> {
    const r = this.stmts.get.get(endpoint);
    return r ? fromRow(r) : undefined;
  }

  async list(): Promise<WebhookCursor[]> {
    return this.stmts.list.all().map(fromRow);
  }

  async ensure(endpoint: string, cursor: number, at: number): Promise<WebhookCursor> {
    this.stmts.insert.run(endpoint, Math.max(0, Math.floor(cursor)), at);
    return fromRow(this.stmts.get.get(endpoint)!);
  }

  async advance(endpoint: string, cursor: number, at: number, delivered: number): Promise<void> {
    const r = this.stmts.advance.run({ endpoint, cursor: Math.floor(cursor), at, n: Math.max(0, Math.floor(delivered)) });
    if (r.changes === 0) throw new UnknownEndpointError(endpoint);
  }

  async recordFailure(endpoint: string, f: WebhookFailure): Promise<void> {
    const r = this.stmts.fail.run({ endpoint, at: f.at, error: f.error.replace(/[\r\n]+/g, ' ').slice(0, MAX_ERROR), failing: f.failing ? 1 : 0 });
    if (r.changes === 0) throw new UnknownEndpointError(endpoint);
  }

  async addSkipped(endpoint: string, n: number): Promise<void> {
    this.stmts.skip.run(Math.max(0, Math.floor(n)), endpoint);
  }

  async remove(endpoint: string): Promise<void> {
    this.stmts.remove.run(endpoint);
  }

  async close(): Promise<void> {
    if (this.ownsDb && this.db.open) this.db.close();
  }
}

/**
 * The newest event id in queue.db read over a side connection (the CLI, while the server may
 * run): MAX(id) of the store's `events` table, 0 when there is none (or no table yet).
 */
export function lastEventIdIn(db: Database.Database): number {
  const t = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'events'").get();
  if (!t) return 0;
  const r = db.prepare('SELECT MAX(id) AS id FROM events').get() as { id: number | null };
  return r.id ?? 0;
}
