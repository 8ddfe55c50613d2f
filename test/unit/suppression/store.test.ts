/** The SuppressionStore conformance suite against the embedded backend (queue.db, through the queue store's writer thread). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../../src/core/log.js';
import { SqliteQueueStore } from '../../../src/spool/sqlite/store.js';
import { suppressionStoreConformance } from '../../conformance/suppression-store.js';
import { tempDir } from '../spool/helpers.js';

async function openQueue(dir: string): Promise<SqliteQueueStore> {
  const qs = new SqliteQueueStore({ dataDir: dir, minFreeBytes: 0, logger: silentLogger() });
  await qs.open();
  return qs;
}

suppressionStoreConformance('sqlite', {
  async open() {
    const t = await tempDir('postline-suppr-');
    let qs = await openQueue(t.dir);
    return {
      store: qs.suppressionStore(),
      // Relaxed commits are read once durable: sync first.
      events: async () => { await qs.sync(); return qs.readEvents({ limit: 10_000 }); },
      reopen: async () => { await qs.close(); qs = await openQueue(t.dir); return qs.suppressionStore(); },
      cleanup: async () => { await qs.close(); await t.cleanup(); },
    };
  },
});

test('sqlite: a durable write is covered by a WAL fsync when it resolves; a relaxed one after the idle flush', async () => {
  const t = await tempDir('postline-suppr-');
  const qs = await openQueue(t.dir);
  try {
    const s = qs.suppressionStore();
    const before = qs.commitStats().syncedTransactions;
    await s.write({ at: 1, durable: true, add: [{ entry: { scope: '*', address: 'a@x.test', reason: 'manual', source: 'operator', createdAt: 1 }, mode: 'replace' }] });
    assert.ok(qs.commitStats().syncedTransactions > before, 'an operator change is fsynced');
    const relaxed = qs.commitStats().relaxedTransactions;
    await s.write({ at: 2, cursor: { name: 'feeder', id: 3 } });
    assert.ok(qs.commitStats().relaxedTransactions > relaxed, 'a feeder step is relaxed');
  } finally {
    await qs.close();
    await t.cleanup();
  }
});

test('sqlite: the check\'s Bloom filter is built at the first check, follows adds and removes, and is rebuilt bigger when the list outgrows it', async () => {
  const t = await tempDir('postline-suppr-');
  const qs = await openQueue(t.dir);
  try {
    const s = qs.suppressionStore();
    const e = (address: string, scope = '*') => ({ entry: { scope, address, reason: 'manual' as const, source: 'operator', createdAt: 1 }, mode: 'insert' as const });
    await s.write({ at: 1, add: [e('a@x.test'), e('*@y.test', 'shop.test')] });
    assert.equal(s.filterStats(), undefined, 'not before a check');
    assert.equal(s.check('shop.test', 'a@x.test', 2)?.address, 'a@x.test', 'read while the filter is built');
    const settle = async () => { for (let i = 0; i < 200 && (!s.filterStats() || (s as unknown as { building?: unknown }).building); i++) await new Promise((r) => setImmediate(r)); };
    await settle();
    assert.deepEqual(s.filterStats(), { bytes: 81920, keys: 2, capacity: 65536 });
    assert.equal(s.check('shop.test', 'b@y.test', 2)?.address, '*@y.test');
    assert.equal(s.check('other.test', 'b@y.test', 2), undefined);
    assert.equal(s.check('shop.test', 'nobody@x.test', 2), undefined);
    await s.write({ at: 2, add: [e('new@z.test')] });
    assert.equal(s.check(undefined, 'new@z.test', 3)?.address, 'new@z.test', 'an add reaches the filter');
    await s.write({ at: 3, remove: [{ scope: '*', address: 'new@z.test', source: 'operator' }] });
    assert.equal(s.check(undefined, 'new@z.test', 4), undefined, 'a removal: the read answers the filter\'s "maybe"');
    const many = Array.from({ length: 70_000 }, (_, i) => e(`m${i}@many.test`));
    for (let i = 0; i < many.length; i += 10_000) await s.write({ at: 4, add: many.slice(i, i + 10_000) });
    await settle();
    const st = s.filterStats()!;
    assert.ok(st.capacity >= 140_000, `rebuilt for twice the rows: ${JSON.stringify(st)}`);
    for (const i of [0, 12_345, 69_999]) assert.equal(s.check(undefined, `m${i}@many.test`, 5)?.address, `m${i}@many.test`);
    assert.equal(s.check(undefined, 'a@x.test', 5)?.address, 'a@x.test');
  } finally {
    await qs.close();
    await t.cleanup();
  }
});

test('sqlite: one write is one savepoint: when a part of it fails, neither the entries, their events nor the cursor are kept', async () => {
  const t = await tempDir('postline-suppr-');
  const qs = await openQueue(t.dir);
  try {
    const s = qs.suppressionStore();
    const before = await qs.lastEventId();
    await assert.rejects(s.write({
      at: 1, cursor: { name: 'feeder', id: 99 },
      add: [{ entry: { scope: '*', address: 'a@x.test', reason: 'hard-bounce', source: '5', createdAt: 1 }, mode: 'insert' }],
      // A NOT NULL column left empty: the statement fails inside the savepoint.
      softBounces: [{ scope: null as unknown as string, address: 'b@x.test', count: 1 }],
    }));
    await qs.sync();
    assert.equal(await s.get('*', 'a@x.test'), undefined);
    assert.equal(s.check(undefined, 'a@x.test', 2), undefined);
    assert.equal(await s.cursor('feeder'), 0);
    assert.equal(await qs.lastEventId(), before, 'no event of it');
    const ok = await s.write({ at: 2, cursor: { name: 'feeder', id: 99 }, add: [{ entry: { scope: '*', address: 'a@x.test', reason: 'hard-bounce', source: '5', createdAt: 1 }, mode: 'insert' }] });
    assert.equal(ok.added.length, 1, 'the same write without the bad part');
  } finally {
    await qs.close();
    await t.cleanup();
  }
});
