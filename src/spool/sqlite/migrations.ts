/**
 * Numbered schema migrations of the SQLite queue database (queue.db).
 *
 * Owns: the table layout of the embedded queue store. The schema version is kept in SQLite's
 * `PRAGMA user_version`; each migration runs once, in order, inside its own transaction.
 * Append new migrations at the end; never edit one that has shipped.
 */
import { StoreError } from '../../core/errors.js';
import type Database from 'better-sqlite3';

/** One schema step: `version` is 1, 2, 3... in order. */
export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'messages and recipients',
    sql: `
      CREATE TABLE messages (
        id                TEXT PRIMARY KEY,
        mail_from         TEXT NOT NULL,
        body_type         TEXT NOT NULL,
        smtputf8          INTEGER NOT NULL DEFAULT 0,
        ret               TEXT,
        envid             TEXT,
        size              INTEGER NOT NULL,
        arrived_at        INTEGER NOT NULL,
        origin            TEXT NOT NULL,
        attempts          INTEGER NOT NULL DEFAULT 0,
        next_attempt_at   INTEGER NOT NULL,
        held              INTEGER NOT NULL DEFAULT 0,
        last_error        TEXT,
        quarantined_at    INTEGER,
        quarantine_reason TEXT
      ) WITHOUT ROWID;
      CREATE INDEX messages_arrival ON messages (arrived_at, id);
      CREATE TABLE recipients (
        message_id     TEXT NOT NULL,
        idx            INTEGER NOT NULL,
        address        TEXT NOT NULL,
        notify         TEXT,
        orcpt          TEXT,
        status         TEXT NOT NULL DEFAULT 'pending',
        last_reply     TEXT,
        dsn_status     TEXT,
        remote_mta     TEXT,
        done_at        INTEGER,
        delay_notified INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (message_id, idx)
      ) WITHOUT ROWID;
    `,
  },
  {
    version: 2,
    name: 'recipients.dsn_owed: a DSN decided but not yet queued',
    sql: `ALTER TABLE recipients ADD COLUMN dsn_owed TEXT;`,
  },
  {
    version: 3,
    name: 'bodies: small message bodies stored inline, committed with their envelope row',
    // A rowid table (not WITHOUT ROWID): rows up to the inline limit (128 KiB by default) are far
    // larger than a page, which WITHOUT ROWID tables handle badly. A message has its body either
    // here or as a file in spool/, never both.
    sql: `CREATE TABLE bodies (
        message_id TEXT PRIMARY KEY,
        data       BLOB NOT NULL
      );`,
  },
  {
    version: 4,
    name: 'messages.utf8_headers: whether the header section of SMTPUTF8 mail holds UTF-8',
    // 1 / 0 as cleanup found it; NULL (rows from before this version) means unknown, which delivery
    // treats as "holds UTF-8" for SMTPUTF8 mail: such a row keeps the old, stricter behaviour.
    sql: `ALTER TABLE messages ADD COLUMN utf8_headers INTEGER;`,
  },
  {
    version: 5,
    name: 'events (the outbox, written in the same commit as each state change); message metadata; store_meta',
    // id INTEGER PRIMARY KEY is the rowid: max + 1 on insert, so ids only grow as long as the newest
    // row is never deleted (pruning keeps it). No AUTOINCREMENT: it would write sqlite_sequence on
    // every insert. `data` is the rest of the record as JSON. The partial index serves the history
    // of one message (API); readers by cursor use the primary key. store_meta holds the counter the
    // writer's idle flush bumps (a real write, so its FULL commit fsyncs the WAL).
    sql: `
      CREATE TABLE events (
        id       INTEGER PRIMARY KEY,
        at       INTEGER NOT NULL,
        type     TEXT NOT NULL,
        queue_id TEXT,
        data     TEXT NOT NULL
      );
      CREATE INDEX events_queue ON events (queue_id) WHERE queue_id IS NOT NULL;
      ALTER TABLE messages ADD COLUMN message_id TEXT;
      ALTER TABLE messages ADD COLUMN tags TEXT;
      ALTER TABLE messages ADD COLUMN metadata TEXT;
      CREATE TABLE store_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
    `,
  },
  {
    version: 6,
    name: 'api_keys and api_idempotency: the HTTP API keys (hashed) and the answers kept for Idempotency-Key',
    // Written through a side connection (side-db.ts), by the CLI as well as the server.
    // api_keys.hash is SHA-256 of the whole key; scopes a comma list; domains a JSON array or NULL.
    sql: `
      CREATE TABLE IF NOT EXISTS api_keys (
        name            TEXT PRIMARY KEY,
        prefix          TEXT NOT NULL UNIQUE,
        hash            BLOB NOT NULL,
        scopes          TEXT NOT NULL,
        domains         TEXT,
        rate_per_minute INTEGER,
        created_at      INTEGER NOT NULL,
        revoked_at      INTEGER
      );
      CREATE TABLE IF NOT EXISTS api_idempotency (
        api_key      TEXT NOT NULL,
        idem_key     TEXT NOT NULL,
        request_hash TEXT NOT NULL,
        status       INTEGER NOT NULL,
        body         TEXT NOT NULL,
        created_at   INTEGER NOT NULL,
        PRIMARY KEY (api_key, idem_key)
      ) WITHOUT ROWID;
      CREATE INDEX IF NOT EXISTS api_idempotency_created ON api_idempotency (created_at);
    `,
  },
  {
    version: 7,
    name: 'webhook_cursors: per webhook endpoint, the last acknowledged event id and its health',
    // Written through the side connection (side-db.ts) by src/webhooks/cursor-store.ts, never by
    // the queue's writer thread. Times are ms since epoch; NULL = never / not failing. IF NOT EXISTS:
    // safe to run again on a database whose user_version was set back (tests) or renumbered.
    sql: `CREATE TABLE IF NOT EXISTS webhook_cursors (
        endpoint        TEXT PRIMARY KEY,
        cursor          INTEGER NOT NULL,
        created_at      INTEGER NOT NULL,
        last_success_at INTEGER,
        last_attempt_at INTEGER,
        failing_since   INTEGER,
        last_error      TEXT,
        attempts        INTEGER NOT NULL DEFAULT 0,
        delivered       INTEGER NOT NULL DEFAULT 0,
        skipped         INTEGER NOT NULL DEFAULT 0
      ) WITHOUT ROWID;`,
  },
  {
    version: 8,
    name: 'messages.prepend: header fields known only at the end of data, given out before the body',
    // Written by cleanup's modifier chain (DKIM-Signature, later Authentication-Results), CRLF
    // lines, UTF-8; NULL = none. messages.size counts these bytes too (what openBody gives out), so
    // the stored body is size - octet_length(prepend) bytes (recovery's size check).
    sql: `ALTER TABLE messages ADD COLUMN prepend TEXT;`,
  },
  {
    version: 9,
    name: 'messages_due: the due order the scheduler reads in batches (it no longer loads the whole queue); messages.send_at',
    // Partial: held and quarantined rows are never due. The scheduler's query (statements.ts
    // dueAfter) repeats the WHERE terms so SQLite can use it, and names it (INDEXED BY).
    // send_at: a sendAt kept apart from next_attempt_at, which the scheduler now also moves for
    // mail it postpones without an attempt; rows from before were scheduled when never tried
    // with a first attempt after their arrival.
    sql: `
      CREATE INDEX IF NOT EXISTS messages_due ON messages (next_attempt_at, id) WHERE held = 0 AND quarantined_at IS NULL;
      ALTER TABLE messages ADD COLUMN send_at INTEGER;
      UPDATE messages SET send_at = next_attempt_at WHERE attempts = 0 AND next_attempt_at > arrived_at;
    `,
  },
  {
    version: 10,
    name: 'destination_states: suspended and throttled destinations (traffic shaping), kept across restarts',
    // Written through a side connection (src/scheduler/destination-store.ts) by the scheduler and by
    // `postline queue suspend|resume` with the server stopped; read by the scheduler at start.
    // destination: a destination name (delivery-shaping.ts); kind: suspend | throttle; source:
    // operator | reply; until NULL: until resumed; factor: a throttle's share of the limits.
    sql: `CREATE TABLE IF NOT EXISTS destination_states (
        destination TEXT NOT NULL,
        kind        TEXT NOT NULL,
        source      TEXT NOT NULL,
        until       INTEGER,
        reason      TEXT NOT NULL,
        factor      REAL,
        since       INTEGER NOT NULL,
        PRIMARY KEY (destination, kind)
      ) WITHOUT ROWID;`,
  },
  {
    version: 11,
    name: 'suppressions: the suppression list; suppression_soft_bounces and suppression_cursors (its feeder)',
    // Written only by the queue's writer thread (op 'suppress', suppression-sql.ts), each change in
    // the same commit as its event and the feeder's cursor. scope: sending domain (A-label) or '*';
    // address: lower case, A-label domain, or '*@domain'; domain: the address's domain (listing by
    // domain). reason: hard-bounce | soft-bounce | complaint | unsubscribe | manual; source: event id
    // or operator | api | import. Times ms since epoch; expires_at NULL: until removed.
    sql: `
      CREATE TABLE IF NOT EXISTS suppressions (
        scope       TEXT NOT NULL,
        address     TEXT NOT NULL,
        domain      TEXT NOT NULL,
        reason      TEXT NOT NULL,
        source      TEXT NOT NULL,
        description TEXT,
        created_at  INTEGER NOT NULL,
        expires_at  INTEGER,
        PRIMARY KEY (scope, address)
      ) WITHOUT ROWID;
      CREATE INDEX IF NOT EXISTS suppressions_address ON suppressions (address, scope);
      CREATE INDEX IF NOT EXISTS suppressions_domain ON suppressions (domain, address, scope);
      CREATE TABLE IF NOT EXISTS suppression_soft_bounces (
        scope   TEXT NOT NULL,
        address TEXT NOT NULL,
        count   INTEGER NOT NULL,
        last_at INTEGER NOT NULL,
        PRIMARY KEY (scope, address)
      ) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS suppression_cursors (
        name       TEXT PRIMARY KEY,
        cursor     INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
      ) WITHOUT ROWID;
    `,
  },
];

/**
 * Brings `db` up to the newest schema version. Idempotent.
 * @throws Error when the database is newer than this code knows (downgrade) or a step fails.
 */
export function migrate(db: Database.Database, migrations: readonly Migration[] = MIGRATIONS): number {
  const current = db.pragma('user_version', { simple: true }) as number;
  const newest = migrations.length ? migrations[migrations.length - 1].version : 0;
  if (current > newest) {
    throw new StoreError(`queue database schema version ${current} is newer than this Postline (${newest})`);
  }
  for (const m of migrations) {
    if (m.version <= current) continue;
    db.transaction(() => {
      db.exec(m.sql);
      db.pragma(`user_version = ${m.version}`);
    })();
  }
  return newest;
}
