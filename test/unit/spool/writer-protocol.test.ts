/**
 * The writer's batch semantics (writer-protocol.ts applyBatch) where durability depends on them:
 * a batch reports `synced` only when its last transaction fsynced the WAL, also when a failed
 * batch is retried one by one; and the store's open makes what the database holds durable
 * (one full commit) before its events count as durable.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { newQueueId } from '../../../src/core/queue-id.js';
import { migrate } from '../../../src/spool/sqlite/migrations.js';
import { eventRow, newMessageRow, newRecipientRows } from '../../../src/spool/sqlite/rows.js';
import { prepareWriteStatements } from '../../../src/spool/sqlite/statements.js';
import { applyBatch, newStats, type WriteOp } from '../../../src/spool/sqlite/writer-protocol.js';
import { makeStore, newMessage, tempDir } from './helpers.js';

function insertOp(size: number): WriteOp {
  const m = newMessage(newQueueId());
  return { kind: 'insert', message: newMessageRow(m, size), recipients: newRecipientRows(m), body: new Uint8Array(size), dir: null };
}

test('applyBatch: a failed batch retried one by one is not synced when its last commit was relaxed', async () => {
  const { dir, cleanup } = await tempDir();
  const db = new Database(join(dir, 'queue.db'));
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    migrate(db);
    // Room for a small message, not for a 200 KB one: SQLITE_FULL rolls the whole batch back.
    db.pragma(`max_page_count = ${(db.pragma('page_count', { simple: true }) as number) + 8}`);
    const s = prepareWriteStatements(db);
    const stats = newStats();
    const ops: WriteOp[] = [insertOp(200_000), insertOp(10), { kind: 'events', events: [eventRow({ type: 'message.rejected', at: 1 })] }];
    const r = applyBatch(db, s, ops.map((op, seq) => ({ seq, op })), new Map(), stats);
    assert.equal((r.results[0] as { error?: { code?: string } }).error?.code, 'SQLITE_FULL');
    assert.ok(!('error' in r.results[1]!) && !('error' in r.results[2]!), 'the others commit one by one');
    assert.deepEqual([stats.syncedTransactions, stats.relaxedTransactions], [1, 1], 'the insert fsynced, the events after it did not');
    assert.equal(r.synced, false, 'the relaxed commit after the last fsync is not durable');
    const again = applyBatch(db, s, [{ seq: 9, op: insertOp(10) }], new Map(), stats);
    assert.equal(again.synced, true, 'a full commit covers everything before it');
  } finally {
    db.close();
    await cleanup();
  }
});

test('open: what the database holds is made durable (one full commit) before its events count as durable', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const first = makeStore(dir);
    await first.open();
    await first.close();
    // A dead process's last commits, never fsynced (synchronous=OFF: only in the page cache).
    const db = new Database(join(dir, 'queue.db'));
    db.pragma('synchronous = OFF');
    db.prepare("INSERT INTO events (at, type, queue_id, data) VALUES (1, 'message.rejected', NULL, '{}')").run();
    db.close();
    const store = makeStore(dir);
    await store.open();
    try {
      assert.equal(store.commitStats().syncedTransactions, 1, 'open fsynced the WAL');
      assert.equal(await store.lastEventId(), 1);
    } finally {
      await store.close();
    }
  } finally {
    await cleanup();
  }
});
