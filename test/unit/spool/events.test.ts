/**
 * The event log (outbox) of the SQLite store: events commit with their state change, ids only
 * grow (also across pruning and restarts), a failing operation leaves no event, the listener
 * hears each commit once; message metadata and sendAt round trip; paged listing and counts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newQueueId } from '../../../src/core/queue-id.js';
import { StoreError } from '../../../src/core/errors.js';
import type { StoredEvent } from '../../../src/events/record.js';
import { makeStore, newMessage, tempDir, writeBody } from './helpers.js';
import type { SqliteQueueStore } from '../../../src/spool/sqlite/store.js';
import type { NewMessage } from '../../../src/spool/types.js';

/** Waits (bounded) until the writer's idle flush made the relaxed commits durable. */
async function waitForIdleSync(store: SqliteQueueStore): Promise<void> {
  const t0 = Date.now();
  while (store.commitStats().idleSyncs === 0 && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 50));
  assert.ok(store.commitStats().idleSyncs > 0, 'idle flush within 5 s');
  await new Promise((r) => setTimeout(r, 10));
}

async function commitWith(store: SqliteQueueStore, over: Partial<NewMessage> = {}, at = 1_700_000_000_000) {
  const id = newQueueId(at);
  const body = await store.createBody(id);
  await writeBody(body, Buffer.from('Subject: e\r\n\r\nbody\r\n'));
  return store.commit(newMessage(id, { arrivedAt: at, ...over }), body, [{ type: 'message.received', at, queueId: id, mailFrom: 'sender@example.com', size: 20 }]);
}

test('events are written with their state change, numbered in order, heard once per commit', async () => {
  const { dir, cleanup } = await tempDir();
  const store = makeStore(dir);
  const heard: StoredEvent[][] = [];
  store.setEventListener((l) => heard.push([...l]));
  try {
    await store.open();
    assert.equal(await store.lastEventId(), 0);
    const a = await commitWith(store);
    const b = await commitWith(store);
    await store.record(a.id, {
      updates: [{ idx: 0, status: 'delivered', dsnStatus: '2.0.0' }], next: { attempts: 1, nextAttemptAt: 0 },
      events: [{ type: 'recipient.delivered', at: 1, queueId: a.id, recipient: 'a@example.net', dsn: '2.0.0', reply: '250 ok', tls: { version: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384' } }],
    });
    // A failing operation (unknown recipient) leaves neither its change nor its events.
    await assert.rejects(store.record(b.id, { updates: [{ idx: 9, status: 'bounced' }], events: [{ type: 'recipient.bounced', at: 2, queueId: b.id }] }), StoreError);
    await store.setHold(b.id, true, [{ type: 'message.held', at: 3, queueId: b.id }]);
    const all = await store.readEvents({ limit: 100 });
    // The delivery outcome was relaxed; the hold was a full commit that covers it too.
    assert.deepEqual(all.map((e) => e.type), ['message.received', 'message.received', 'recipient.delivered', 'message.held']);
    assert.deepEqual(all.map((e) => e.id), [1, 2, 3, 4]);
    assert.deepEqual(all[2]!.tls, { version: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384' });
    assert.equal(all[2]!.queueId, a.id);
    assert.deepEqual(heard.map((l) => l.map((e) => e.id)), [[1], [2], [3], [4]]);
    assert.deepEqual((await store.readEvents({ limit: 10, queueId: b.id })).map((e) => e.type), ['message.received', 'message.held']);
    assert.deepEqual((await store.readEvents({ limit: 10, after: 2, types: ['message.held'] })).map((e) => e.id), [4]);
    assert.deepEqual((await store.readEvents({ limit: 10, since: 2 })).map((e) => e.id), [1, 2, 4]);
    const appended = await store.appendEvents([{ type: 'message.rejected', at: 5, reply: '550 5.7.1 Relay access denied', recipient: 'x@elsewhere.example' }]);
    assert.equal(appended[0]!.id, 5);
    assert.equal(await store.lastEventId(), 4, 'a relaxed write is not yet durable: readers do not see it');
    assert.equal((await store.readEvents({ limit: 10, after: 4 })).length, 0);
    assert.equal(heard.length, 4, 'nor does the listener');
    await store.sync();
    assert.equal(await store.lastEventId(), 5);
    assert.deepEqual(heard.map((l) => l.map((e) => e.id)), [[1], [2], [3], [4], [5]]);
  } finally {
    await store.close();
    await cleanup();
  }
});

test('a finished message is removed in the same commit as its last outcome and its event', async () => {
  const { dir, cleanup } = await tempDir();
  const store = makeStore(dir);
  try {
    await store.open();
    const a = await commitWith(store);
    const before = store.commitStats().transactions;
    await store.record(a.id, {
      updates: a.recipients.map((r) => ({ idx: r.idx, status: 'delivered' as const })), next: { attempts: 1, nextAttemptAt: 0 },
      events: a.recipients.map((r) => ({ type: 'recipient.delivered' as const, at: 9, queueId: a.id, recipient: r.address })), remove: true,
    });
    assert.equal(store.commitStats().transactions - before, 1, 'one transaction');
    assert.equal(store.commitStats().relaxedTransactions, 1, 'a delivery with an inline body needs no fsync of its own');
    assert.equal(await store.get(a.id), undefined);
    assert.equal((await store.readEvents({ limit: 10, queueId: a.id })).length, 1, 'until an fsync covers them, only the received event is seen');
    await waitForIdleSync(store);
    assert.throws(() => store.openBody(a.id), StoreError);
    assert.equal((await store.readEvents({ limit: 10, queueId: a.id })).length, 3, 'its history stays after it left the queue');
  } finally {
    await store.close();
    await cleanup();
  }
});

test('pruning deletes old events in slices and never the newest, so ids are never reused', async () => {
  const { dir, cleanup } = await tempDir();
  let store = makeStore(dir);
  try {
    await store.open();
    await store.appendEvents(Array.from({ length: 30 }, (_, i) => ({ type: 'message.rejected' as const, at: 1000 + i, reply: `550 ${i}` })));
    await store.sync();
    assert.equal(await store.pruneEvents(2000, 10), 10);
    assert.equal(await store.pruneEvents(2000, 100), 19, 'the newest is kept');
    assert.equal(await store.pruneEvents(2000, 100), 0);
    await store.sync();
    const left = await store.readEvents({ limit: 100 });
    assert.deepEqual(left.map((e) => e.id), [30]);
    await store.close();
    store = makeStore(dir);
    await store.open();
    assert.equal(await store.lastEventId(), 30, 'what is in the database at open is made durable and counts as such');
    const [next] = await store.appendEvents([{ type: 'message.rejected', at: 3000, reply: '550 again' }]);
    assert.equal(next!.id, 31, 'after a restart the next id follows the newest');
  } finally {
    await store.close();
    await cleanup();
  }
});

test('message metadata and sendAt are stored with the message', async () => {
  const { dir, cleanup } = await tempDir();
  const store = makeStore(dir);
  try {
    await store.open();
    const at = 1_700_000_000_000;
    const q = await commitWith(store, { messageId: '<m1@example.com>', meta: { tags: ['welcome', 'q4'], metadata: { user: '42', plan: 'pro' }, sendAt: at + 3_600_000 } }, at);
    assert.equal(q.nextAttemptAt, at + 3_600_000);
    const got = await store.get(q.id);
    assert.equal(got?.messageId, '<m1@example.com>');
    assert.deepEqual(got?.tags, ['welcome', 'q4']);
    assert.deepEqual(got?.metadata, { user: '42', plan: 'pro' });
    assert.equal(got?.nextAttemptAt, at + 3_600_000, 'the scheduler sees the future attempt');
    const plain = await commitWith(store, {}, at + 1);
    assert.equal((await store.get(plain.id))?.tags, undefined);
  } finally {
    await store.close();
    await cleanup();
  }
});

test('listPage pages and filters by state, sender and recipient domain; countByState counts', async () => {
  const { dir, cleanup } = await tempDir();
  const store = makeStore(dir);
  try {
    await store.open();
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await commitWith(store, i === 4 ? { mailFrom: 'other@example.com' } : {}, 1_700_000_000_000 + i * 1000)).id);
    await store.setHold(ids[1]!, true);
    await store.record(ids[2]!, { updates: [], next: { attempts: 1, nextAttemptAt: 0, lastError: '451 later' } });
    assert.deepEqual(await store.countByState(), { active: 3, deferred: 1, held: 1, quarantined: 0 });
    const p1 = await store.listPage({ limit: 2 });
    assert.deepEqual(p1.items.map((m) => m.id), ids.slice(0, 2));
    assert.equal(p1.next, ids[1]);
    const p2 = await store.listPage({ limit: 2, after: p1.next! });
    assert.deepEqual(p2.items.map((m) => m.id), ids.slice(2, 4));
    const p3 = await store.listPage({ limit: 2, after: p2.next! });
    assert.deepEqual(p3.items.map((m) => m.id), [ids[4]]);
    assert.equal(p3.next, undefined);
    assert.deepEqual((await store.listPage({ limit: 10, state: 'held' })).items.map((m) => m.id), [ids[1]]);
    assert.deepEqual((await store.listPage({ limit: 10, state: 'deferred' })).items.map((m) => m.id), [ids[2]]);
    assert.deepEqual((await store.listPage({ limit: 10, sender: 'other@example.com' })).items.map((m) => m.id), [ids[4]]);
    assert.equal((await store.listPage({ limit: 10, recipientDomain: 'EXAMPLE.ORG' })).items.length, 5);
    assert.equal((await store.listPage({ limit: 10, recipientDomain: 'nowhere.example' })).items.length, 0);
  } finally {
    await store.close();
    await cleanup();
  }
});
