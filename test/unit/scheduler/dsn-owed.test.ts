/**
 * Owed DSNs survive a crash (issue 3): the final outcome and the "DSN owed" mark are written in one
 * commit and the mark is cleared only after the DSN is queued, so a crash or a failed DSN commit
 * in between repeats the DSN later instead of losing it. Unit level: memory store and the SQLite store.
 * Also: an outcome that cannot be written (disk full) is kept and written again before any new
 * attempt, so a full disk does not turn retries into duplicate deliveries.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../../src/core/log.js';
import { newQueueId } from '../../../src/core/queue-id.js';
import { SqliteQueueStore } from '../../../src/spool/sqlite/store.js';
import { newMessage, tempDir, writeBody } from '../spool/helpers.js';
import { all, BODY, harness, ofType, ok, permfail } from './harness.js';

const FROM = 'sender@example.com';

test('a DSN that cannot be queued keeps the message and is sent on a later try', async () => {
  const h = harness({ script: all(permfail) });
  const m = await h.put({ mailFrom: FROM, recipients: [{ address: 'a@example.org' }] }, BODY);
  const s = h.scheduler as unknown as { notifier: { o: { dsn: { inject: (...a: unknown[]) => Promise<string> } } } };
  const port = s.notifier.o.dsn;
  const realInject = port.inject;
  port.inject = async () => { throw new Error('disk full'); };
  await h.scheduler.start();
  await h.scheduler.runDueOnce();
  assert.equal(h.dsns.length, 0);
  const kept = await h.store.get(m.id);
  assert.ok(kept, 'the message stays while its DSN is owed');
  assert.equal(kept.recipients[0]!.status, 'bounced');
  assert.equal(kept.recipients[0]!.dsnOwed, 'failure');
  assert.equal((await h.store.loadAll()).length, 1, 'loadAll returns messages with an owed DSN');
  port.inject = realInject;
  h.clock.advance(h.config.delivery.retry.initialMs + 1);
  await h.scheduler.runDueOnce();
  assert.equal(h.dsns.length, 1);
  assert.equal(h.dsns[0]!.input.recipients[0]!.status, '5.1.1');
  assert.equal(h.agent.calls.length, 1, 'the bounced recipient is not tried again');
  assert.equal(await h.store.get(m.id), undefined, 'removed once the DSN is queued');
  await h.scheduler.stop(0);
});

test('restart after a crash between the bounce record and the DSN: the DSN is sent from the stored facts', async () => {
  const h = harness({ script: all(permfail) });
  const m = await h.put({ mailFrom: FROM, recipients: [{ address: 'a@example.org' }, { address: 'b@example.org' }] }, BODY);
  // What the round wrote before the crash: outcome and mark in one commit, no DSN yet.
  await h.store.record(m.id, { updates: [
    { idx: 0, status: 'bounced', lastReply: '550 5.1.1 no such user', dsnStatus: '5.1.1', remoteMta: 'mx.example.org[192.0.2.1]:25', doneAt: h.clock.now(), dsnOwed: 'failure' },
    { idx: 1, status: 'delivered', lastReply: '250 ok', dsnStatus: '2.0.0', doneAt: h.clock.now() },
  ], next: { attempts: 1, nextAttemptAt: h.clock.now() } });
  const s2 = h.restart();
  await s2.start();
  await s2.runDueOnce();
  assert.equal(h.agent.calls.length, 0, 'nothing is delivered again');
  assert.equal(h.dsns.length, 1);
  const r = h.dsns[0]!.input.recipients;
  assert.deepEqual(r.map((x) => [x.finalRecipient, x.action, x.status, x.remoteMta]), [['a@example.org', 'failed', '5.1.1', 'mx.example.org']]);
  assert.equal(ofType(h.events, 'dsn.queued').length, 1);
  assert.equal(await h.store.get(m.id), undefined);
  await s2.stop(0);
});

test('SQLite store: dsnOwed is stored with the outcome, kept by loadAll, and cleared with null', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const store = new SqliteQueueStore({ dataDir: dir, minFreeBytes: 0, logger: silentLogger() });
    await store.open();
    const id = newQueueId();
    const body = await store.createBody(id);
    await writeBody(body, Buffer.from(BODY));
    const q = await store.commit(newMessage(id), body);
    const updates = q.recipients.map((r) => ({ idx: r.idx, status: 'bounced' as const, dsnStatus: '5.1.1', dsnOwed: 'failure' as const }));
    await store.record(id, { updates: updates, next: { attempts: 1, nextAttemptAt: 0 } });
    await store.close();
    const again = new SqliteQueueStore({ dataDir: dir, minFreeBytes: 0, logger: silentLogger() });
    await again.open();
    const loaded = await again.loadAll();
    assert.equal(loaded.length, 1);
    assert.ok(loaded[0]!.recipients.every((r) => r.dsnOwed === 'failure' && r.status === 'bounced'));
    await again.record(id, { updates: q.recipients.map((r) => ({ idx: r.idx, status: 'bounced' as const, dsnOwed: null })), next: { attempts: 1, nextAttemptAt: 0 } });
    assert.equal((await again.loadAll()).length, 0);
    const got = await again.get(id);
    assert.ok(got && got.recipients.every((r) => r.dsnOwed === undefined && r.dsnStatus === '5.1.1'));
    await again.close();
  } finally {
    await cleanup();
  }
});

test('an outcome that cannot be written is written again before any new attempt (no duplicate delivery)', async () => {
  const h = harness({ script: all(ok) });
  const m = await h.put({ mailFrom: FROM, recipients: [{ address: 'a@example.org' }] }, BODY);
  const real = h.store.record.bind(h.store);
  let failing = true;
  h.store.record = async (...a) => { if (failing) throw new Error('SQLITE_FULL'); return real(...a); };
  await h.scheduler.start();
  await h.scheduler.runDueOnce();
  assert.equal(h.agent.calls.length, 1);
  assert.ok(await h.store.get(m.id), 'kept while its outcome is not written');
  h.clock.advance(h.config.delivery.retry.initialMs + 1);
  await h.scheduler.runDueOnce();
  assert.equal(h.agent.calls.length, 1, 'not delivered again while the write fails');
  failing = false;
  h.clock.advance(h.config.delivery.retry.initialMs + 1);
  await h.scheduler.runDueOnce();
  assert.equal(h.agent.calls.length, 1, 'still delivered only once');
  assert.equal(await h.store.get(m.id), undefined, 'removed once the outcome is written');
  await h.scheduler.stop(0);
});
