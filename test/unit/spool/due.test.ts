/**
 * The SQLite store's side of the scheduler at scale (issue 14): due order read in batches through
 * the messages_due index, bulk flush in chunks with its events, and space given back (vacuum.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { silentLogger } from '../../../src/core/log.js';
import { newQueueId } from '../../../src/core/queue-id.js';
import type { StoredEvent } from '../../../src/events/record.js';
import { SqliteQueueStore } from '../../../src/spool/sqlite/store.js';
import { incrementalStep } from '../../../src/spool/sqlite/vacuum.js';
import { harness, ofType, BODY } from '../scheduler/harness.js';
import type { MemoryQueueStore } from '../../helpers/memory-store.js';

async function withStore(fn: (store: SqliteQueueStore, dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'pl-due-'));
  const store = new SqliteQueueStore({ dataDir: dir, minFreeBytes: 0, logger: silentLogger() });
  await store.open();
  try {
    await fn(store, dir);
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function put(store: SqliteQueueStore, at: number, rcpt: string, body: string | Buffer = BODY, sendAt?: number): Promise<string> {
  const id = newQueueId(at);
  const w = await store.createBody(id);
  await new Promise<void>((resolve, reject) => w.stream.write(Buffer.from(body), (e) => (e ? reject(e) : resolve())));
  await store.commit({
    id, mailFrom: 's@example.com', bodyType: '8BITMIME', smtputf8: false, origin: { kind: 'smtp', clientAddress: '192.0.2.9', clientName: 'c.example' },
    recipients: [{ address: rcpt }], arrivedAt: at, ...(sendAt !== undefined ? { meta: { sendAt } } : {}),
  }, w);
  return id;
}

test('dueBatch: due order (time, then ID) after a key, held and quarantined left out, through the messages_due index', async () => {
  await withStore(async (store, dir) => {
    const t = 1_700_000_000_000;
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) ids.push(await put(store, t + i, `r${i}@example.org`));
    await store.setNextAttempt(ids[0]!, t + 100);
    await store.setHold(ids[1]!, true);
    await store.quarantine(ids[2]!, 'test');
    const all = await store.dueBatch(undefined, 100);
    assert.deepEqual(all.map((e) => e.id), [ids[3], ids[4], ids[5], ids[0]]);
    assert.deepEqual(all.map((e) => e.at), [t + 3, t + 4, t + 5, t + 100]);
    const page = await store.dueBatch(all[1], 2);
    assert.deepEqual(page.map((e) => e.id), [ids[5], ids[0]]);
    const db = new Database(join(dir, 'queue.db'), { readonly: true });
    try {
      const plan = db.prepare("EXPLAIN QUERY PLAN SELECT id FROM messages INDEXED BY messages_due WHERE held = 0 AND quarantined_at IS NULL AND (next_attempt_at, id) > (0, '') ORDER BY next_attempt_at, id LIMIT 5").all() as { detail: string }[];
      assert.ok(plan.some((p) => /USING (COVERING )?INDEX messages_due/.test(p.detail)), JSON.stringify(plan));
      assert.ok(!plan.some((p) => /TEMP B-TREE/.test(p.detail)), 'no sort step');
    } finally {
      db.close();
    }
    assert.equal(await store.countMessages(), 5);
  });
});

test('flushMatching: chunks, by domain, held and sendAt mail left out, one published message.flushed per flushed message', async () => {
  await withStore(async (store) => {
    const published: StoredEvent[] = [];
    store.setEventListener((list) => published.push(...list));
    const t = Date.now() - 10_000;
    const a: string[] = [];
    for (let i = 0; i < 5; i++) a.push(await put(store, t + i, `x${i}@A.example`));
    const b = await put(store, t + 10, 'y@b.example');
    const later = await put(store, t + 11, 'z@a.example', BODY, Date.now() + 86_400_000);
    for (const id of [...a, b]) await store.setNextAttempt(id, Date.now() + 3_600_000);
    await store.setHold(a[4]!, true);
    const progress: number[] = [];
    const now = Date.now();
    assert.equal(await store.flushMatching({ now, domain: 'a.EXAMPLE', chunk: 2 }, (n) => progress.push(n)), 4);
    assert.deepEqual(progress, [2, 4]);
    for (const id of a.slice(0, 4)) assert.equal((await store.get(id))!.nextAttemptAt, now);
    assert.ok((await store.get(b))!.nextAttemptAt > now);
    assert.ok((await store.get(a[4]!))!.nextAttemptAt > now, 'held: not flushed');
    assert.ok((await store.get(later))!.nextAttemptAt > now, 'sendAt: not flushed');
    await store.sync();
    const flushed = published.filter((e) => e.type === 'message.flushed');
    assert.deepEqual(flushed.map((e) => e.queueId).sort(), a.slice(0, 4).sort());
    const read = (await store.readEvents({ types: ['message.flushed'], limit: 100 })).map((e) => [e.id, e.queueId]);
    assert.deepEqual(read, flushed.map((e) => [e.id, e.queueId]), 'published ids are the stored ids');
    assert.equal(await store.flushMatching({ now: now + 1 }), 5, 'all: the a.example four again and b');
  });
});

test('vacuum: a new queue.db gives freed pages back after a drain; an old one is converted at open', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pl-vac-'));
  try {
    const store = new SqliteQueueStore({ dataDir: dir, minFreeBytes: 0, logger: silentLogger() });
    await store.open();
    const big = Buffer.alloc(60_000, 'a');
    const ids: string[] = [];
    for (let i = 0; i < 300; i++) ids.push(await put(store, Date.now(), `r${i}@example.org`, Buffer.concat([Buffer.from('Subject: x\r\n\r\n'), big])));
    for (const id of ids) await store.remove(id);
    await store.close();
    const db = new Database(join(dir, 'queue.db'));
    try {
      assert.equal(db.pragma('auto_vacuum', { simple: true }), 2, 'incremental');
      const before = db.pragma('page_count', { simple: true }) as number;
      let freed = 0;
      for (let i = 0; i < 50; i++) {
        const n = incrementalStep(db, 1024);
        if (n === 0) break;
        freed += n;
      }
      db.pragma('wal_checkpoint(TRUNCATE)');
      const after = db.pragma('page_count', { simple: true }) as number;
      assert.ok(freed > 2000 && after < before / 4, `pages ${before} -> ${after} (freed ${freed})`);
      assert.ok(statSync(join(dir, 'queue.db')).size < 4 * 1024 * 1024, `file ${statSync(join(dir, 'queue.db')).size} bytes`);
      // An old database without auto_vacuum: converted at the next open.
      db.pragma('auto_vacuum = NONE');
      db.exec('VACUUM');
      assert.equal(db.pragma('auto_vacuum', { simple: true }), 0);
    } finally {
      db.close();
    }
    const again = new SqliteQueueStore({ dataDir: dir, minFreeBytes: 0, logger: silentLogger() });
    await again.open();
    await again.close();
    const db2 = new Database(join(dir, 'queue.db'), { readonly: true });
    try {
      assert.equal(db2.pragma('auto_vacuum', { simple: true }), 2);
    } finally {
      db2.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('scheduler over SQLite with a window of 100: 1,000 queued, each delivered exactly once, at most ~110 IDs in memory', async () => {
  await withStore(async (store) => {
    const { testConfig } = await import('../scheduler/harness.js');
    const h = harness({ store: store as unknown as MemoryQueueStore, config: testConfig({ dueWindow: 100, maxActiveMessages: 40 }) });
    for (let i = 0; i < 1000; i++) await put(store, h.clock.now() - 1000 + (i % 50), `r${i}@d${i % 13}.example`);
    await h.scheduler.start();
    let maxWindow = 0;
    for (let i = 0; i < 500 && (await store.countMessages()) > 0; i++) {
      await h.scheduler.runDueOnce();
      await new Promise<void>((r) => setImmediate(r));
      maxWindow = Math.max(maxWindow, h.scheduler.stats().scheduled);
    }
    assert.equal(await store.countMessages(), 0);
    assert.equal(h.agent.calls.length, 1000);
    assert.equal(new Set(h.agent.calls.map((c) => c.queueId)).size, 1000);
    assert.ok(maxWindow <= 110, `largest window ${maxWindow}`);
    await store.sync();
    assert.equal(ofType(h.events, 'recipient.delivered').length, 1000);
    await h.scheduler.stop(0);
  });
});
