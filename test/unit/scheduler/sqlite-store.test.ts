/** The scheduler over the real SQLite store (src/spool/sqlite/store.ts), in a temp data directory. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../../src/core/log.js';
import { newQueueId } from '../../../src/core/queue-id.js';
import { SqliteQueueStore } from '../../../src/spool/sqlite/store.js';
import { SpoolLayout } from '../../../src/spool/sqlite/layout.js';
import { StoreQueueAdmin } from '../../../src/control/offline.js';
import { BODY, HEADERS, harness, ofType, ok, permfail, tempfail } from './harness.js';
import type { MemoryQueueStore } from '../../helpers/memory-store.js';

async function putSqlite(store: SqliteQueueStore, arrivedAt: number, rcpts: string[], mailFrom = 's@example.com'): Promise<string> {
  const id = newQueueId(arrivedAt);
  const w = await store.createBody(id);
  await new Promise<void>((resolve, reject) => w.stream.write(Buffer.from(BODY), (e) => (e ? reject(e) : resolve())));
  await store.commit({
    id, mailFrom, bodyType: '8BITMIME', smtputf8: false, origin: { kind: 'smtp', clientAddress: '192.0.2.9', clientName: 'client.example' },
    recipients: rcpts.map((address) => ({ address })), arrivedAt,
  }, w);
  return id;
}

test('scheduler over SqliteQueueStore: retry, restart, bounce with DSN, quarantine', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pl-sched-sqlite-'));
  // inlineMaxBytes 0: bodies are files, so the test can remove one (inline bodies: spool/inline.test.ts)
  const store = new SqliteQueueStore({ dataDir: dir, minFreeBytes: 0, logger: silentLogger(), inlineMaxBytes: 0 });
  await store.open();
  try {
    const h = harness({
      store: store as unknown as MemoryQueueStore,
      script: (req, n) => req.recipients.map((r) => (n === 1 ? tempfail(r.idx) : r.address.startsWith('bad') ? permfail(r.idx) : ok(r.idx))),
    });
    const a = await putSqlite(store, h.clock.now(), ['a@example.org', 'bad@example.org']);
    const broken = await putSqlite(store, h.clock.now(), ['c@example.net']);
    unlinkSync(new SpoolLayout(dir).bodyPath(broken));
    await h.scheduler.start();
    await h.scheduler.runDueOnce();
    assert.deepEqual(ofType(h.events, 'message.quarantined').map((e) => e.queueId), [broken]);
    const after1 = (await store.get(a))!;
    assert.equal(after1.attempts, 1);
    assert.equal(after1.lastError, '451 4.3.0 try again later');
    await h.scheduler.stop(0);

    const s2 = h.restart();
    await s2.start();
    h.clock.advance(300_000);
    await s2.runDueOnce();
    assert.equal(await store.get(a), undefined);
    assert.equal(ofType(h.events, 'recipient.delivered').length, 1);
    assert.equal(ofType(h.events, 'recipient.bounced').length, 1);
    assert.equal(h.dsns.length, 1);
    assert.equal(h.dsns[0]!.input.original.toString(), BODY);
    await s2.stop(0);

    const c = await putSqlite(store, h.clock.now(), ['d@example.org']);
    const admin = new StoreQueueAdmin(store, h.clock);
    await admin.hold(c);
    assert.equal((await store.get(c))!.held, true);
    assert.equal((await admin.show(c)).headers, HEADERS);
    await admin.delete(c);
    await assert.rejects(admin.show(c), /no such message/);
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
