import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdir, readFile, stat, truncate, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { StoreError } from '../../../src/core/errors.js';
import { newQueueId } from '../../../src/core/queue-id.js';
import { EventBus } from '../../../src/events/bus.js';
import type { PostlineEvent } from '../../../src/events/types.js';
import { captureLogger, commitOne, makeStore, newMessage, readAll, tempDir, writeBody } from './helpers.js';

test('round trip: 5 MB body survives a new store instance byte for byte', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const data = randomBytes(5 * 1024 * 1024);
    const store = makeStore(dir);
    await store.open();
    const id = newQueueId();
    const body = await store.createBody(id);
    await writeBody(body, data, 100_000);
    assert.equal(body.bytesWritten(), data.length);
    const q = await store.commit(newMessage(id), body);
    assert.equal(q.size, data.length);
    assert.equal(q.recipients.length, 2);
    await store.close();

    const again = makeStore(dir);
    await again.open();
    const all = await again.loadAll();
    assert.equal(all.length, 1);
    const m = all[0];
    assert.equal(m.id, id);
    assert.equal(m.mailFrom, 'sender@example.com');
    assert.equal(m.bodyType, '8BITMIME');
    assert.deepEqual(m.origin, { kind: 'smtp', clientAddress: '192.0.2.1', clientName: 'client.example' });
    assert.deepEqual(m.recipients[0].notify, ['FAILURE', 'DELAY']);
    assert.deepEqual(m.recipients[0].orcpt, { addrType: 'rfc822', address: 'A@example.net' });
    assert.equal(m.recipients[1].notify, undefined);
    assert.equal(m.recipients[0].status, 'pending');
    assert.equal(m.nextAttemptAt, m.arrivedAt);
    assert.ok(data.equals(await readAll(again.openBody(id))));
    assert.deepEqual(await readdir(join(dir, 'spool', 'tmp')), []);
    await again.close();
  } finally {
    await cleanup();
  }
});

test('group commit: 100 concurrent commits share fewer transactions and all are durable', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const store = makeStore(dir, { groupCommitWindowMs: 2 });
    await store.open();
    const bodies = Array.from({ length: 100 }, (_, i) => Buffer.from(`Subject: ${i}\r\n\r\nbody ${i}\r\n`));
    const ids = await Promise.all(bodies.map(async (b) => (await commitOne(store, b)).id));
    const stats = store.commitStats();
    assert.equal(stats.commits, 100);
    assert.ok(stats.transactions < 100, `transactions ${stats.transactions}`);
    assert.ok(stats.largestBatch > 1);
    await store.close();

    const again = makeStore(dir);
    await again.open();
    const all = await again.loadAll();
    assert.equal(all.length, 100);
    for (let i = 0; i < 100; i++) {
      assert.ok(bodies[i].equals(await readAll(again.openBody(ids[i]))));
    }
    await again.close();
  } finally {
    await cleanup();
  }
});

test('crash recovery: tmp leftovers removed, missing/truncated bodies quarantined, orphans removed', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const events: PostlineEvent[] = [];
    const bus = new EventBus();
    bus.subscribe((e) => events.push(e));
    const store = makeStore(dir, { inlineMaxBytes: 0 }); // body files (inline bodies: spool/inline.test.ts)
    await store.open();
    const a = await commitOne(store, Buffer.from('Subject: a\r\n\r\naaaa\r\n'));
    const b = await commitOne(store, Buffer.from('Subject: b\r\n\r\nbbbb\r\n'));
    const c = await commitOne(store, Buffer.from('Subject: c\r\n\r\ncccc\r\n'));
    await store.close();

    const bucket = (id: string) => join(dir, 'spool', id.slice(6, 8));
    await writeFile(join(dir, 'spool', 'tmp', newQueueId()), 'partial');
    await unlink(join(bucket(a.id), a.id));
    await truncate(join(bucket(b.id), b.id), 5);
    const orphan = newQueueId();
    await writeFile(join(bucket(orphan), orphan), 'never acknowledged');

    const { logger, lines } = captureLogger();
    const again = makeStore(dir, { logger, inlineMaxBytes: 0 });
    again.setEventListener((list) => { for (const e of list) bus.emit(e); });
    await again.open();
    assert.deepEqual((await again.loadAll()).map((m) => m.id), [c.id]);
    assert.deepEqual(await readdir(join(dir, 'spool', 'tmp')), []);
    assert.deepEqual(await readdir(join(dir, 'quarantine')), [b.id]);
    await assert.rejects(stat(join(bucket(orphan), orphan)));
    assert.deepEqual(again.lastRecovery, { tmpRemoved: 1, quarantined: 2, orphansRemoved: 1, ok: 1 });
    const q = lines.filter((l) => l.msg === 'queue entry quarantined');
    assert.deepEqual(q.map((l) => l.queueId).sort(), [a.id, b.id].sort());
    assert.match(String(q.find((l) => l.queueId === a.id)?.reason), /missing/);
    assert.match(String(q.find((l) => l.queueId === b.id)?.reason), /truncated/);
    assert.equal(events.filter((e) => e.type === 'message.quarantined').length, 2);
    assert.equal(await again.get(a.id), undefined);
    await again.close();
  } finally {
    await cleanup();
  }
});

test('a corrupt row is quarantined at open and during loadAll, never thrown', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const store = makeStore(dir);
    await store.open();
    const a = await commitOne(store, Buffer.from('A\r\n'));
    const b = await commitOne(store, Buffer.from('B\r\n'));
    const c = await commitOne(store, Buffer.from('C\r\n'));
    await store.close();
    const raw = new Database(join(dir, 'queue.db'));
    raw.prepare('UPDATE messages SET origin = ? WHERE id = ?').run('{bad json', a.id);
    raw.close();

    const { logger, lines } = captureLogger();
    const again = makeStore(dir, { logger });
    await again.open();
    assert.deepEqual((await again.loadAll()).map((m) => m.id).sort(), [b.id, c.id].sort());
    assert.ok(lines.some((l) => l.queueId === a.id && /invalid JSON/.test(String(l.reason))));

    const raw2 = new Database(join(dir, 'queue.db'));
    raw2.prepare("UPDATE recipients SET status = 'weird' WHERE message_id = ? AND idx = 0").run(b.id);
    raw2.close();
    const loaded = await again.loadAll();
    assert.deepEqual(loaded.map((m) => m.id), [c.id]);
    assert.deepEqual((await readdir(join(dir, 'quarantine'))).sort(), [a.id, b.id].sort());
    await again.close();
  } finally {
    await cleanup();
  }
});

test('free-space reserve: createBody refuses with StoreError full (452 4.3.1)', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const store = makeStore(dir, { minFreeBytes: Number.MAX_SAFE_INTEGER });
    await store.open();
    assert.ok((await store.freeBytes()) > 0);
    await assert.rejects(store.createBody(newQueueId()), (err: unknown) => {
      assert.ok(err instanceof StoreError);
      assert.equal(err.code, 'ERR_STORE_FULL');
      assert.equal(err.reply.code, 452);
      assert.equal(err.reply.enhanced, '4.3.1');
      return true;
    });
    assert.deepEqual(await readdir(join(dir, 'spool', 'tmp')), []);
    await store.close();
  } finally {
    await cleanup();
  }
});

test('ENOSPC while writing: commit fails with StoreError full and leaves nothing behind', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const store = makeStore(dir);
    await store.open();
    const id = newQueueId();
    const body = await store.createBody(id);
    body.stream.write(Buffer.from('Subject: x\r\n'));
    body.stream.destroy(Object.assign(new Error('no space left on device'), { code: 'ENOSPC' }));
    await assert.rejects(store.commit(newMessage(id), body), (err: unknown) => {
      assert.ok(err instanceof StoreError);
      assert.equal(err.code, 'ERR_STORE_FULL');
      return true;
    });
    assert.deepEqual(await readdir(join(dir, 'spool', 'tmp')), []);
    await assert.rejects(stat(join(dir, 'spool', id.slice(6, 8), id)));
    assert.equal(await store.get(id), undefined);
    await store.close();
  } finally {
    await cleanup();
  }
});

test('abort removes the partial body', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const store = makeStore(dir);
    await store.open();
    const body = await store.createBody(newQueueId());
    await writeBody(body, Buffer.alloc(300_000, 0x61));
    await body.abort();
    await body.abort();
    assert.deepEqual(await readdir(join(dir, 'spool', 'tmp')), []);
    await store.close();
  } finally {
    await cleanup();
  }
});

test('record, setNextAttempt, setHold, list and remove', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const store = makeStore(dir);
    await store.open();
    const m = await commitOne(store, Buffer.from('Subject: s\r\n\r\nx\r\n'));
    await store.record(m.id, { updates: [
      { idx: 0, status: 'delivered', lastReply: '250 2.0.0 ok', dsnStatus: '2.0.0', remoteMta: 'mx.example.net[192.0.2.9]:25', doneAt: 5 },
      { idx: 1, status: 'pending', lastReply: '451 4.3.0 later', dsnStatus: '4.3.0', delayNotified: true },
    ], next: { attempts: 1, nextAttemptAt: 1_700_000_300_000, lastError: '451 4.3.0 later' } });
    let got = await store.get(m.id);
    assert.ok(got);
    assert.equal(got.attempts, 1);
    assert.equal(got.nextAttemptAt, 1_700_000_300_000);
    assert.equal(got.lastError, '451 4.3.0 later');
    assert.equal(got.recipients[0].status, 'delivered');
    assert.equal(got.recipients[0].remoteMta, 'mx.example.net[192.0.2.9]:25');
    assert.equal(got.recipients[0].doneAt, 5);
    assert.equal(got.recipients[1].delayNotified, true);
    await assert.rejects(store.record(m.id, { updates: [{ idx: 7, status: 'bounced' }], next: { attempts: 2, nextAttemptAt: 0 } }), StoreError);
    got = await store.get(m.id);
    assert.equal(got?.attempts, 1, 'a failed update changes nothing');

    await store.setNextAttempt(m.id, 42);
    await store.setHold(m.id, true);
    const list = await store.list();
    assert.equal(list.length, 1);
    assert.equal(list[0].held, true);
    assert.equal(list[0].nextAttemptAt, 42);
    assert.deepEqual(list[0].pending, ['b@example.org']);
    assert.equal((await store.loadAll()).length, 1, 'held messages are still loaded');
    await store.setHold(m.id, false);
    assert.equal((await store.get(m.id))?.held, false);
    await assert.rejects(store.setHold(newQueueId(), true), StoreError);

    await store.record(m.id, { updates: [{ idx: 1, status: 'bounced', dsnStatus: '5.1.1' }], next: { attempts: 2, nextAttemptAt: 0 } });
    assert.equal((await store.loadAll()).length, 0, 'no pending recipient left');
    assert.equal((await store.list()).length, 1, 'still listed until removed');

    await store.remove(m.id);
    await store.remove(m.id);
    assert.equal(await store.get(m.id), undefined);
    assert.throws(() => store.openBody(m.id), StoreError);
    await assert.rejects(stat(join(dir, 'spool', m.id.slice(6, 8), m.id)));
    await store.close();
  } finally {
    await cleanup();
  }
});

test('group commit: a failing write does not fail the others in its batch', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const store = makeStore(dir);
    await store.open();
    const dup = newQueueId();
    const first = await store.createBody(dup);
    const second = await store.createBody(dup);
    first.stream.write(Buffer.from('one\r\n'));
    second.stream.write(Buffer.from('two\r\n'));
    const other = newQueueId();
    const results = await Promise.allSettled([
      store.commit(newMessage(dup), first),
      store.commit(newMessage(dup), second),
      commitOne(store, Buffer.from('three\r\n'), other),
      store.setHold(newQueueId(), true),
    ]);
    assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled', 'rejected']);
    assert.ok((results[3] as PromiseRejectedResult).reason instanceof StoreError);
    assert.equal((await readAll(store.openBody(dup))).toString(), 'one\r\n');
    assert.ok(await store.get(other));
    const stats = store.commitStats();
    assert.equal(stats.commits, 2);
    assert.equal(stats.failures, 1);
    await store.close();
  } finally {
    await cleanup();
  }
});

test('issue 15 item 2: utf8Headers round-trips (true, false, unknown) through a new store instance', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const store = makeStore(dir);
    await store.open();
    const ids: string[] = [];
    for (const utf8Headers of [true, false, undefined]) {
      const id = newQueueId();
      ids.push(id);
      const body = await store.createBody(id);
      await writeBody(body, Buffer.from('Subject: x\r\n\r\nbody\r\n'));
      const q = await store.commit(newMessage(id, { smtputf8: true, ...(utf8Headers !== undefined ? { utf8Headers } : {}) }), body);
      assert.equal(q.utf8Headers, utf8Headers);
    }
    await store.close();
    const again = makeStore(dir);
    await again.open();
    const got = await Promise.all(ids.map((id) => again.get(id)));
    assert.deepEqual(got.map((m) => m?.utf8Headers), [true, false, undefined]);
    await again.close();
  } finally {
    await cleanup();
  }
});

test('issue 15 item 2: migration 4 keeps rows of schema 3, their utf8Headers unknown', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const store = makeStore(dir);
    await store.open();
    const q = await commitOne(store, Buffer.from('Subject: old\r\n\r\nbody\r\n'));
    await store.close();
    // Make the database look like schema 3: drop the new column, set the version back.
    const db = new Database(join(dir, 'queue.db'));
    db.exec('ALTER TABLE messages DROP COLUMN utf8_headers');
    // ...and undo migration 5 (events, message metadata) too.
    db.exec('DROP TABLE events; DROP TABLE store_meta; ALTER TABLE messages DROP COLUMN message_id; ALTER TABLE messages DROP COLUMN tags; ALTER TABLE messages DROP COLUMN metadata');
    // ...and migration 6 (HTTP API keys and idempotency records).
    db.exec('DROP TABLE api_idempotency; DROP TABLE api_keys');
    // ...and migration 8 (prepended header fields).
    db.exec('ALTER TABLE messages DROP COLUMN prepend');
    // ...and migration 9 (the due index, send_at).
    db.exec('DROP INDEX messages_due; ALTER TABLE messages DROP COLUMN send_at');
    db.pragma('user_version = 3');
    db.close();
    const again = makeStore(dir);
    await again.open();
    const m = await again.get(q.id);
    assert.ok(m);
    assert.equal(m.utf8Headers, undefined);
    const check = new Database(join(dir, 'queue.db'), { readonly: true });
    assert.ok((check.pragma('user_version', { simple: true }) as number) >= 4);
    check.close();
    await again.close();
  } finally {
    await cleanup();
  }
});
