/**
 * SQLite backends of the API's small stores (ApiKeyStore, IdempotencyStore), on a side
 * connection to queue.db (spool/sqlite/side-db.ts; tables of migration 6). The CLI and the server
 * use them at the same time; SQLite's locks keep them consistent and every read sees the last
 * commit, so a key revoked by the CLI fails on the server's next request.
 *
 * Calls are synchronous underneath (better-sqlite3). Reads never wait (WAL); a write (a new
 * Idempotency-Key answer, the CLI's changes) may wait, on the calling thread, for the queue writer's
 * current transaction (milliseconds; busy_timeout bounds it at 5 s).
 */
import type Database from 'better-sqlite3';
import { openSideDatabase, type SideDatabaseOptions } from '../spool/sqlite/side-db.js';
import {
  ApiKeyError, apiKeyMatches, apiKeyPrefix, generateApiKey, normalizeApiKeySpec,
  type ApiKeyRecord, type ApiKeySpec, type ApiKeyStore, type ApiScope,
} from './api-keys.js';
import type { IdempotencyRecord, IdempotencyStore } from './idempotency.js';

interface KeyRow {
  name: string;
  prefix: string;
  hash: Buffer;
  scopes: string;
  domains: string | null;
  rate_per_minute: number | null;
  created_at: number;
  revoked_at: number | null;
}

function toRecord(r: KeyRow): ApiKeyRecord {
  return {
    name: r.name,
    prefix: r.prefix,
    scopes: r.scopes.split(',').filter(Boolean) as ApiScope[],
    ...(r.domains !== null ? { domains: JSON.parse(r.domains) as string[] } : {}),
    ...(r.rate_per_minute !== null ? { ratePerMinute: r.rate_per_minute } : {}),
    createdAt: r.created_at,
    ...(r.revoked_at !== null ? { revokedAt: r.revoked_at } : {}),
  };
}

/** ApiKeyStore on a better-sqlite3 connection (closes it on close() when `ownsDb`). */
export class SqliteApiKeyStore implements ApiKeyStore {
  private readonly byPrefix: Database.Statement<[string], KeyRow>;

  constructor(private readonly db: Database.Database, private readonly ownsDb = false) {
    this.byPrefix = db.prepare('SELECT * FROM api_keys WHERE prefix = ?');
  }

  /** Opens `dataDir/queue.db` on its own side connection (see openSideDatabase for the options and errors). */
  static open(dataDir: string, opts?: SideDatabaseOptions): SqliteApiKeyStore {
    return new SqliteApiKeyStore(openSideDatabase(dataDir, opts), true);
  }

  async create(spec: ApiKeySpec, nowMs = Date.now()): Promise<{ key: string; record: ApiKeyRecord }> {
    const s = normalizeApiKeySpec(spec);
    const made = generateApiKey();
    this.db.transaction(() => {
      const old = this.db.prepare('SELECT revoked_at FROM api_keys WHERE name = ?').get(s.name) as { revoked_at: number | null } | undefined;
      if (old && old.revoked_at === null) throw new ApiKeyError('ERR_API_KEY_EXISTS', `an API key named ${s.name} exists (revoke it first)`);
      if (old) this.db.prepare('DELETE FROM api_keys WHERE name = ?').run(s.name);
      this.db.prepare('INSERT INTO api_keys (name, prefix, hash, scopes, domains, rate_per_minute, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)')
        .run(s.name, made.prefix, made.hash, s.scopes.join(','), s.domains ? JSON.stringify(s.domains) : null, s.ratePerMinute ?? null, nowMs);
    })();
    return { key: made.key, record: { ...s, prefix: made.prefix, createdAt: nowMs } };
  }

  async list(): Promise<ApiKeyRecord[]> {
    return (this.db.prepare('SELECT * FROM api_keys ORDER BY name').all() as KeyRow[]).map(toRecord);
  }

  async revoke(name: string, nowMs = Date.now()): Promise<boolean> {
    return this.db.prepare('UPDATE api_keys SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL').run(nowMs, name).changes > 0;
  }

  async verify(key: string): Promise<ApiKeyRecord | undefined> {
    if (typeof key !== 'string') return undefined;
    const prefix = apiKeyPrefix(key);
    if (!prefix) return undefined;
    const row = this.byPrefix.get(prefix);
    if (!row || row.revoked_at !== null) return undefined;
    return apiKeyMatches(key, row.hash) ? toRecord(row) : undefined;
  }

  async close(): Promise<void> {
    if (this.ownsDb && this.db.open) this.db.close();
  }
}

/** IdempotencyStore on a better-sqlite3 connection (never closes it). */
export class SqliteIdempotencyStore implements IdempotencyStore {
  constructor(private readonly db: Database.Database) {}

  async get(apiKey: string, key: string, notBeforeMs: number): Promise<IdempotencyRecord | undefined> {
    const r = this.db.prepare('SELECT request_hash, status, body, created_at FROM api_idempotency WHERE api_key = ? AND idem_key = ? AND created_at >= ?')
      .get(apiKey, key, notBeforeMs) as { request_hash: string; status: number; body: string; created_at: number } | undefined;
    return r && { requestHash: r.request_hash, status: r.status, body: r.body, createdAt: r.created_at };
  }

  async put(apiKey: string, key: string, rec: IdempotencyRecord): Promise<void> {
    this.db.prepare('INSERT OR REPLACE INTO api_idempotency (api_key, idem_key, request_hash, status, body, created_at) VALUES (?, ?, ?, ?, ?, ?)')
      .run(apiKey, key, rec.requestHash, rec.status, rec.body, rec.createdAt);
  }

  async delete(apiKey: string, key: string): Promise<void> {
    this.db.prepare('DELETE FROM api_idempotency WHERE api_key = ? AND idem_key = ?').run(apiKey, key);
  }

  async prune(beforeMs: number, maxRows = 1000): Promise<number> {
    return this.db.prepare('DELETE FROM api_idempotency WHERE (api_key, idem_key) IN (SELECT api_key, idem_key FROM api_idempotency WHERE created_at < ? LIMIT ?)').run(beforeMs, maxRows).changes;
  }
}

/** Both API stores on one side connection to `dataDir/queue.db`; `close()` closes it. */
export function openApiStores(dataDir: string, opts?: SideDatabaseOptions): { keys: SqliteApiKeyStore; idempotency: SqliteIdempotencyStore; close(): Promise<void> } {
  const db = openSideDatabase(dataDir, opts);
  const keys = new SqliteApiKeyStore(db, false);
  const idempotency = new SqliteIdempotencyStore(db);
  return { keys, idempotency, close: async () => { if (db.open) db.close(); } };
}
