/**
 * The SQL of the SQLite queue store, one prepared statement per operation.
 *
 * Owns: every SQL string the store runs. Quarantined rows (quarantined_at set) are invisible to
 * everything except the recovery scan of known IDs.
 */
import type Database from 'better-sqlite3';
import type { MessageRow, RecipientRow } from './rows.js';

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

/** Prepares every statement the store uses against `db`. */
export function prepareStatements(db: Database.Database) {
  return {
    insertMessage: db.prepare<[MessageRow]>(`
      INSERT INTO messages (id, mail_from, body_type, smtputf8, ret, envid, size, arrived_at, origin,
                            attempts, next_attempt_at, held, last_error)
      VALUES (@id, @mail_from, @body_type, @smtputf8, @ret, @envid, @size, @arrived_at, @origin,
              @attempts, @next_attempt_at, @held, @last_error)`),
    insertRecipient: db.prepare<[RecipientRow]>(`
      INSERT INTO recipients (message_id, idx, address, notify, orcpt, status, last_reply, dsn_status,
                              remote_mta, done_at, delay_notified, dsn_owed)
      VALUES (@message_id, @idx, @address, @notify, @orcpt, @status, @last_reply, @dsn_status,
              @remote_mta, @done_at, @delay_notified, @dsn_owed)`),
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
    allIds: db.prepare<[], { id: string }>('SELECT id FROM messages'),
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
    setHold: db.prepare<[number, string]>(
      'UPDATE messages SET held = ? WHERE id = ? AND quarantined_at IS NULL'),
    deleteRecipients: db.prepare<[string]>('DELETE FROM recipients WHERE message_id = ?'),
    deleteMessage: db.prepare<[string]>('DELETE FROM messages WHERE id = ?'),
    markQuarantined: db.prepare<[number, string, string]>(
      'UPDATE messages SET quarantined_at = ?, quarantine_reason = ? WHERE id = ?'),
  };
}

export type Statements = ReturnType<typeof prepareStatements>;
