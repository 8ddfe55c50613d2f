/**
 * Bulk flush of the SQLite store (`postline queue flush [--domain D]`, QueueStore.flushMatching):
 * candidates are read in queue ID order, `chunk` at a time (not held, not quarantined, not waiting
 * for a later sendAt; with a domain, a pending recipient there), and each chunk is ONE relaxed
 * write (`flushMany`) with a `message.flushed` event per message. A message held, removed or
 * quarantined between the read and the write is skipped with its event (the writer reports which
 * it kept), so no event describes a flush that did not happen.
 */
import type { EventRecord } from '../../events/record.js';
import type { ReadStatements } from './statements.js';
import type { WriteOp } from './writer-protocol.js';
import type { WriteOutcome } from './writer-client.js';

/** What to flush: `now` (ms) becomes the next attempt; `chunk` messages per write (1..10000, default 2000). */
export interface FlushQuery {
  readonly now: number;
  readonly domain?: string;
  readonly chunk?: number;
}

/**
 * Runs the flush through `write` (the store's write with events). @returns how many were flushed.
 * @throws what `write` throws (StoreError); the chunks before stay flushed.
 */
export async function flushInChunks(
  stmts: ReadStatements, write: (op: WriteOp, events: readonly EventRecord[]) => Promise<WriteOutcome>,
  q: FlushQuery, onProgress?: (done: number) => void,
): Promise<number> {
  const chunk = Math.min(10_000, Math.max(1, Math.floor(q.chunk ?? 2000)));
  const domain = q.domain?.replace(/^@/, '').toLowerCase();
  let after = '';
  let done = 0;
  for (let round = 0; round < 100_000; round++) {
    const rows = domain === undefined ? stmts.flushAfter.all(after, q.now, chunk) : stmts.flushDomainAfter.all(after, q.now, domain, chunk);
    if (rows.length === 0) break;
    after = rows[rows.length - 1]!.id;
    const events: EventRecord[] = rows.map((r) => ({
      type: 'message.flushed', at: q.now, queueId: r.id, mailFrom: r.mail_from, ...(r.message_id !== null ? { messageId: r.message_id } : {}),
    }));
    done += (await write({ kind: 'flushMany', ids: rows.map((r) => r.id), at: q.now }, events)).value;
    onProgress?.(done);
    if (rows.length < chunk) break;
  }
  return done;
}
