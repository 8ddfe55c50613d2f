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
