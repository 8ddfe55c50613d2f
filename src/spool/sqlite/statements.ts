/**
 * The SQL of the SQLite queue store, one prepared statement per operation.
 *
 * Owns: every SQL string the store runs. Quarantined rows (quarantined_at set) are invisible to
 * everything except the recovery scan of known IDs. Reads run on the main thread's connection
 * (`prepareReadStatements`); writes only in the writer thread (`prepareWriteStatements`,
 * writer-worker.ts), which owns the one write connection.
 */
import type Database from 'better-sqlite3';
import type { EventRow, MessageRow, RecipientRow } from './rows.js';
import { prepareSuppressionWriteStatements } from './suppression-sql.js';

/** Named parameters of a recipient update; null keeps the stored value (except status). */
export interface RecipientUpdateParams {
  message_id: string;
  idx: number;
  status: string;
  last_reply: string | null;
  dsn_status: string | null;
  remote_mta: string | null;
  done_at: number | null;
  delay_notified: number | null;
  /** 1: set dsn_owed to @dsn_owed (null clears it); 0: keep it. */
  dsn_owed_set: number;
  dsn_owed: string | null;
}

/** A message's body, looked up for openBody: `data` null means the body is a file in spool/. */
export interface BodyRow {
  data: Buffer | null;
  /** Header fields given out before the body (migration 8), or null. */
  prepend: string | null;
}

/** Prepares the read statements of the main thread against `db`. */
export function prepareReadStatements(db: Database.Database) {
  return {
    getMessage: db.prepare<[string], MessageRow>(
      'SELECT * FROM messages WHERE id = ? AND quarantined_at IS NULL'),
    getRecipients: db.prepare<[string], RecipientRow>(
      'SELECT * FROM recipients WHERE message_id = ? ORDER BY idx'),
    activeMessages: db.prepare<[], MessageRow>(`
      SELECT * FROM messages m WHERE m.quarantined_at IS NULL
        AND EXISTS (SELECT 1 FROM recipients r WHERE r.message_id = m.id AND (r.status = 'pending' OR r.dsn_owed IS NOT NULL))
      ORDER BY m.arrived_at, m.id`),
    allMessages: db.prepare<[], MessageRow>(
      'SELECT * FROM messages WHERE quarantined_at IS NULL ORDER BY arrived_at, id'),
    /** Recovery: a row (quarantined ones too) with this ID exists. */
    hasRow: db.prepare<[string], { x: number }>('SELECT 1 AS x FROM messages WHERE id = ?'),
    /** Recovery: visible rows with an inline body in ID order after a key, with the body's length and the one recorded (less the prepended fields). */
    inlineLengths: db.prepare<[string, number], { id: string; want: number; len: number }>(`
      SELECT m.id AS id, m.size - COALESCE(length(CAST(m.prepend AS BLOB)), 0) AS want, length(b.data) AS len
      FROM messages m JOIN bodies b ON b.message_id = m.id
      WHERE m.id > ? AND m.quarantined_at IS NULL ORDER BY m.id LIMIT ?`),
    /** Recovery: visible rows without an inline body (a body file), in ID order after a key. */
    fileBodyRows: db.prepare<[string, number], { id: string; want: number }>(`
      SELECT m.id AS id, m.size - COALESCE(length(CAST(m.prepend AS BLOB)), 0) AS want FROM messages m
      WHERE m.id > ? AND m.quarantined_at IS NULL AND NOT EXISTS (SELECT 1 FROM bodies b WHERE b.message_id = m.id)
      ORDER BY m.id LIMIT ?`),
    /** The inline body of a visible message (no row: unknown or quarantined). */
    getBody: db.prepare<[string], BodyRow>(`
      SELECT b.data AS data, m.prepend AS prepend FROM messages m LEFT JOIN bodies b ON b.message_id = m.id
      WHERE m.id = ? AND m.quarantined_at IS NULL`),
    /** Length of the inline body, bytes (null: the body is a file), without reading the BLOB. */
    inlineLength: db.prepare<[string], { len: number | null }>(
      'SELECT length(data) AS len FROM bodies WHERE message_id = ?'),
    /** The inline body of any message, quarantined ones included (to copy it to quarantine/). */
    rawBody: db.prepare<[string], { data: Buffer }>('SELECT data FROM bodies WHERE message_id = ?'),
    lastEventId: db.prepare<[], { id: number | null }>('SELECT MAX(id) AS id FROM events'),
    /** Due order after a key (the partial index messages_due, migration 9). */
    dueAfter: db.prepare<[number, string, number], { id: string; at: number }>(`
      SELECT id, next_attempt_at AS at FROM messages INDEXED BY messages_due
      WHERE held = 0 AND quarantined_at IS NULL AND (next_attempt_at, id) > (?, ?)
      ORDER BY next_attempt_at, id LIMIT ?`),
    /** Flush candidates after a queue ID (not held, not waiting for a later sendAt). */
    flushAfter: db.prepare<[string, number, number], { id: string; mail_from: string; message_id: string | null }>(`
      SELECT id, mail_from, message_id FROM messages
      WHERE id > ? AND held = 0 AND quarantined_at IS NULL AND NOT COALESCE(send_at > ?, 0)
      ORDER BY id LIMIT ?`),
    /** The same, only messages with a pending recipient in one domain (lower case, without '@'). */
    flushDomainAfter: db.prepare<[string, number, string, number], { id: string; mail_from: string; message_id: string | null }>(`
      SELECT id, mail_from, message_id FROM messages m
      WHERE id > ? AND held = 0 AND quarantined_at IS NULL AND NOT COALESCE(send_at > ?, 0)
        AND EXISTS (SELECT 1 FROM recipients r WHERE r.message_id = m.id AND r.status = 'pending'
                    AND lower(substr(r.address, instr(r.address, '@') + 1)) = ?)
      ORDER BY id LIMIT ?`),
    countMessages: db.prepare<[], { n: number }>('SELECT count(*) AS n FROM messages WHERE quarantined_at IS NULL'),
  };
}

export type ReadStatements = ReturnType<typeof prepareReadStatements>;

/** Prepares the write statements (writer thread only) against `db`. */
export function prepareWriteStatements(db: Database.Database) {
  return {
    insertMessage: db.prepare<[MessageRow]>(`
      INSERT INTO messages (id, mail_from, body_type, smtputf8, ret, envid, size, arrived_at, origin,
                            attempts, next_attempt_at, held, last_error, utf8_headers, message_id, tags, metadata, prepend, send_at)
      VALUES (@id, @mail_from, @body_type, @smtputf8, @ret, @envid, @size, @arrived_at, @origin,
              @attempts, @next_attempt_at, @held, @last_error, @utf8_headers, @message_id, @tags, @metadata, @prepend, @send_at)`),
    /** The idle flush's write (writer-protocol.ts syncNow). */
    touchSync: db.prepare<[]>("INSERT INTO store_meta (key, value) VALUES ('sync', 1) ON CONFLICT(key) DO UPDATE SET value = value + 1"),
    insertEvent: db.prepare<[EventRow]>(
      'INSERT INTO events (at, type, queue_id, data) VALUES (@at, @type, @queue_id, @data)'),
    /** Oldest first, at most @max, never the newest row (so ids are never reused after pruning). */
    pruneEvents: db.prepare<[{ before: number; max: number }]>(`
      DELETE FROM events WHERE id IN (
        SELECT id FROM events WHERE at < @before AND id < (SELECT MAX(id) FROM events) ORDER BY id LIMIT @max)`),
    insertRecipient: db.prepare<[RecipientRow]>(`
      INSERT INTO recipients (message_id, idx, address, notify, orcpt, status, last_reply, dsn_status,
                              remote_mta, done_at, delay_notified, dsn_owed)
      VALUES (@message_id, @idx, @address, @notify, @orcpt, @status, @last_reply, @dsn_status,
              @remote_mta, @done_at, @delay_notified, @dsn_owed)`),
    insertBody: db.prepare<[string, Uint8Array]>('INSERT INTO bodies (message_id, data) VALUES (?, ?)'),
    updateRecipient: db.prepare<[RecipientUpdateParams]>(`
      UPDATE recipients SET status = @status,
        last_reply = COALESCE(@last_reply, last_reply),
        dsn_status = COALESCE(@dsn_status, dsn_status),
        remote_mta = COALESCE(@remote_mta, remote_mta),
        done_at = COALESCE(@done_at, done_at),
        delay_notified = COALESCE(@delay_notified, delay_notified),
        dsn_owed = CASE WHEN @dsn_owed_set = 1 THEN @dsn_owed ELSE dsn_owed END
      WHERE message_id = @message_id AND idx = @idx`),
    updateNext: db.prepare<[{ id: string; attempts: number; next: number; last_error: string | null }]>(`
      UPDATE messages SET attempts = @attempts, next_attempt_at = @next,
        last_error = COALESCE(@last_error, last_error)
      WHERE id = @id AND quarantined_at IS NULL`),
    setNext: db.prepare<[number, string]>(
      'UPDATE messages SET next_attempt_at = ? WHERE id = ? AND quarantined_at IS NULL'),
    /** Bulk flush: only rows still visible and not held (a hold may have come in between). */
    flushOne: db.prepare<[number, string]>(
      'UPDATE messages SET next_attempt_at = ? WHERE id = ? AND held = 0 AND quarantined_at IS NULL'),
    setHold: db.prepare<[number, string]>(
      'UPDATE messages SET held = ? WHERE id = ? AND quarantined_at IS NULL'),
    deleteRecipients: db.prepare<[string]>('DELETE FROM recipients WHERE message_id = ?'),
    deleteMessage: db.prepare<[string]>('DELETE FROM messages WHERE id = ?'),
    deleteBody: db.prepare<[string]>('DELETE FROM bodies WHERE message_id = ?'),
    markQuarantined: db.prepare<[number, string, string]>(
      'UPDATE messages SET quarantined_at = ?, quarantine_reason = ? WHERE id = ?'),
    ...prepareSuppressionWriteStatements(db),
  };
}

export type WriteStatements = ReturnType<typeof prepareWriteStatements>;
