/**
 * Helpers of the SQLite queue store that need no store state: paged listing and counts by state
 * (API, metrics), `queue list` summaries, body streams with the prepended header fields, and the
 * numbering of committed events.
 */
import type Database from 'better-sqlite3';
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import type { EventRecord, StoredEvent } from '../../events/record.js';
import type { QueuedMessage, QueuePageQuery, QueueState, QueueSummary } from '../types.js';
import { toMessage, type MessageRow, type RecipientRow } from './rows.js';

/** A Readable of in-memory parts (not object mode: chunks are Buffers). */
export function bufferStream(parts: readonly Buffer[]): Readable {
  let sent = false;
  return new Readable({
    read() {
      if (!sent) for (const b of parts) if (b.length) this.push(b);
      sent = true;
      this.push(null);
    },
  });
}

/** The prepended header fields (migration 8) as bytes, or undefined. */
export function prependOf(text: string | null | undefined): Buffer | undefined {
  return text ? Buffer.from(text, 'utf8') : undefined;
}

/** The body file behind `head` (the prepended fields), as one byte stream; file errors pass through. */
export function fileStream(path: string, head: Buffer | undefined): Readable {
  if (!head) return createReadStream(path);
  return Readable.from((async function* () {
    yield head;
    for await (const chunk of createReadStream(path)) yield chunk as Buffer;
  })(), { objectMode: false });
}

/** The `queue list` summary of a message. */
export function summaryOf(m: QueuedMessage): QueueSummary {
  return {
    id: m.id, mailFrom: m.mailFrom, size: m.size, arrivedAt: m.arrivedAt, held: m.held,
    nextAttemptAt: m.nextAttemptAt, attempts: m.attempts,
    ...(m.lastError !== undefined ? { lastError: m.lastError } : {}),
    pending: m.recipients.filter((r) => r.status === 'pending').map((r) => r.address),
  };
}

/** `events` with ids from `first` on, in order. */
export function numbered(events: readonly EventRecord[], first: number): StoredEvent[] {
  return events.map((e, i) => ({ ...e, id: first + i }));
}

/** Paged summaries in queue ID order (IDs sort by arrival), filtered by state, sender and recipient domain. */
export function listPage(db: Database.Database, q: QueuePageQuery, recipientsOf: (id: string) => RecipientRow[]): { items: QueueSummary[]; next?: string } {
  const limit = Math.min(1000, Math.max(1, Math.floor(q.limit)));
  const where: string[] = [];
  const args: (string | number)[] = [];
  if (q.state === 'quarantined') where.push('m.quarantined_at IS NOT NULL');
  else {
    where.push('m.quarantined_at IS NULL');
    if (q.state === 'held') where.push('m.held = 1');
    else if (q.state === 'active' || q.state === 'deferred') {
      where.push('m.held = 0', q.state === 'active' ? 'm.attempts = 0' : 'm.attempts > 0');
    }
  }
  if (q.after !== undefined) { where.push('m.id > ?'); args.push(q.after); }
  if (q.sender !== undefined) { where.push('m.mail_from = ?'); args.push(q.sender); }
  if (q.recipientDomain !== undefined) {
    where.push("EXISTS (SELECT 1 FROM recipients r WHERE r.message_id = m.id AND r.status = 'pending' AND lower(substr(r.address, instr(r.address, '@') + 1)) = ?)");
    args.push(q.recipientDomain.toLowerCase());
  }
  const rows = db.prepare<unknown[], MessageRow>(`SELECT * FROM messages m WHERE ${where.join(' AND ')} ORDER BY m.id LIMIT ${limit + 1}`).all(...args);
  const items: QueueSummary[] = [];
  for (const row of rows.slice(0, limit)) {
    let m: QueuedMessage;
    try {
      m = toMessage(row, recipientsOf(row.id));
    } catch {
      continue; // a damaged row: listed by `queue list` after its quarantine, not here
    }
    items.push(summaryOf(m));
  }
  return rows.length > limit ? { items, next: rows[limit - 1]!.id } : { items };
}

/** Counts of messages by state: active (never tried), deferred (tried), held, quarantined. */
export function countByState(db: Database.Database): Record<QueueState, number> {
  const r = db.prepare<[], { active: number; deferred: number; held: number; quarantined: number }>(`
    SELECT COALESCE(SUM(quarantined_at IS NULL AND held = 0 AND attempts = 0), 0) AS active,
           COALESCE(SUM(quarantined_at IS NULL AND held = 0 AND attempts > 0), 0) AS deferred,
           COALESCE(SUM(quarantined_at IS NULL AND held = 1), 0) AS held,
           COALESCE(SUM(quarantined_at IS NOT NULL), 0) AS quarantined
    FROM messages`).get()!;
  return { active: r.active, deferred: r.deferred, held: r.held, quarantined: r.quarantined };
}
