/** Inline bodies of the SQLite queue store: small bodies live in queue.db, committed with their row. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { StoreError } from '../../../src/core/errors.js';
import { newQueueId } from '../../../src/core/queue-id.js';
import { SqliteQueueStore, type SqliteQueueStoreOptions } from '../../../src/spool/sqlite/store.js';
import { captureLogger, commitOne as commitTestBody, makeStore as makeTestStore, newMessage, readAll, tempDir } from './helpers.js';

const LIMIT = 4096;

const makeStore = (dir: string, over: Partial<SqliteQueueStoreOptions> = {}): SqliteQueueStore => makeTestStore(dir, { inlineMaxBytes: LIMIT, ...over });
const commitOne = (store: SqliteQueueStore, data: Buffer, id = newQueueId(), chunk = 1000) => commitTestBody(store, data, id, chunk);

const bodyFile = (dir: string, id: string): string => join(dir, 'spool', id.slice(6, 8), id);
const exists = (p: string): Promise<boolean> => stat(p).then(() => true, () => false);

test('inline: threshold edge (exactly the limit inline, one byte over a file), round trip across a reopen', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const store = makeStore(dir, { bodyCacheBytes: 0 });
    await store.open();
    const atLimit = randomBytes(LIMIT);
    const over = randomBytes(LIMIT + 1);
    const empty = Buffer.alloc(0);
    const a = await commitOne(store, atLimit);
    const b = await commitOne(store, over);
    const c = await commitOne(store, empty);
    assert.equal(a.size, LIMIT);
    assert.equal(b.size, LIMIT + 1);
    assert.equal(await exists(bodyFile(dir, a.id)), false, 'a body of exactly the limit is inline');
    assert.equal(await exists(bodyFile(dir, b.id)), true, 'one byte over: a body file');
    assert.equal(await exists(bodyFile(dir, c.id)), false);
    assert.ok(atLimit.equals(await readAll(store.openBody(a.id))));
    assert.deepEqual(await readdir(join(dir, 'spool', 'tmp')), []);
    await store.close();

    const again = makeStore(dir);
    await again.open();
    assert.deepEqual(again.lastRecovery, { tmpRemoved: 0, quarantined: 0, orphansRemoved: 0, ok: 3 });
    assert.equal((await again.loadAll()).length, 3);
    assert.ok(atLimit.equals(await readAll(again.openBody(a.id))));
    assert.ok(over.equals(await readAll(again.openBody(b.id))));
    assert.equal((await readAll(again.openBody(c.id))).length, 0);
    const list = await again.list();
    assert.deepEqual(list.map((m) => m.size).sort((x, y) => x - y), [0, LIMIT, LIMIT + 1]);

    await again.remove(a.id);
    await again.remove(b.id);
    assert.throws(() => again.openBody(a.id), StoreError);
    assert.equal(await exists(bodyFile(dir, b.id)), false, 'the file of a removed large body is unlinked');
    await again.close();
    const raw = new Database(join(dir, 'queue.db'), { readonly: true });
    assert.equal((raw.prepare('SELECT count(*) AS n FROM bodies').get() as { n: number }).n, 1, 'only c left inline');
    raw.close();
  } finally {
    await cleanup();
  }
});

test('inline: 50 concurrent small commits share transactions and need no directory fsync', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const store = makeStore(dir);
    await store.open();
    const bodies = Array.from({ length: 50 }, (_, i) => Buffer.from(`Subject: ${i}\r\n\r\n${'x'.repeat(i * 40)}\r\n`));
    const msgs = await Promise.all(bodies.map((b) => commitOne(store, b)));
    const stats = store.commitStats();
    assert.equal(stats.commits, 50);
    assert.equal(stats.dirSyncs, 0);
    assert.ok(stats.transactions < 50, `transactions ${stats.transactions}`);
    for (let i = 0; i < 50; i++) assert.ok(bodies[i].equals(await readAll(store.openBody(msgs[i].id))));
    await store.close();
  } finally {
    await cleanup();
  }
});

test('inline: a full database (SQLITE_FULL) fails the commit with StoreError full (452 4.3.1), nothing kept', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const first = makeStore(dir, { inlineMaxBytes: 256 * 1024 });
    await first.open(); // creates the schema
    await first.close();
    const store = makeStore(dir, { inlineMaxBytes: 256 * 1024, maxDatabasePages: 40 });
    await store.open();
    const id = newQueueId();
    await assert.rejects(commitOne(store, randomBytes(200 * 1024), id, 64 * 1024), (err: unknown) => {
      assert.ok(err instanceof StoreError);
      assert.equal(err.code, 'ERR_STORE_FULL');
      assert.equal(err.reply.code, 452);
      assert.equal(err.reply.enhanced, '4.3.1');
      return true;
    });
    assert.equal(await store.get(id), undefined);
    assert.throws(() => store.openBody(id), StoreError);
    const small = await commitOne(store, Buffer.from('Subject: small\r\n\r\nfits\r\n'));
    assert.equal((await readAll(store.openBody(small.id))).toString(), 'Subject: small\r\n\r\nfits\r\n');
    assert.deepEqual(await readdir(join(dir, 'spool', 'tmp')), []);
    await store.close();
  } finally {
    await cleanup();
  }
});

test('inline: ENOSPC while receiving fails the commit with StoreError full and leaves nothing', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const store = makeStore(dir);
    await store.open();
    const id = newQueueId();
    const body = await store.createBody(id);
    body.stream.write(Buffer.from('Subject: x\r\n'));
    body.stream.destroy(Object.assign(new Error('no space left on device'), { code: 'ENOSPC' }));
    await assert.rejects(store.commit(newMessage(id), body), (err: unknown) => err instanceof StoreError && err.code === 'ERR_STORE_FULL');
    assert.equal(await store.get(id), undefined);
    assert.deepEqual(await readdir(join(dir, 'spool', 'tmp')), []);
    await store.close();
  } finally {
    await cleanup();
  }
});

test('inline: damaged BLOBs are quarantined at open (copied to quarantine/), the rest kept', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const store = makeStore(dir);
    await store.open();
    const good = await commitOne(store, Buffer.from('Subject: good\r\n\r\nok\r\n'));
    const cut = await commitOne(store, Buffer.from('Subject: cut\r\n\r\nthis will be truncated\r\n'));
    const gone = await commitOne(store, Buffer.from('Subject: gone\r\n\r\nthis will be deleted\r\n'));
    await store.close();
    const raw = new Database(join(dir, 'queue.db'));
    raw.prepare('UPDATE bodies SET data = substr(data, 1, 5) WHERE message_id = ?').run(cut.id);
    raw.prepare('DELETE FROM bodies WHERE message_id = ?').run(gone.id);
    raw.close();

    const { logger, lines } = captureLogger();
    const again = makeStore(dir, { logger });
    await again.open();
    assert.deepEqual((await again.loadAll()).map((m) => m.id), [good.id]);
    const q = lines.filter((l) => l.msg === 'queue entry quarantined');
    assert.match(String(q.find((l) => l.queueId === cut.id)?.reason), /inline body truncated/);
    assert.match(String(q.find((l) => l.queueId === gone.id)?.reason), /missing/);
    assert.equal((await readFile(join(dir, 'quarantine', cut.id))).length, 5);
    await again.close();
  } finally {
    await cleanup();
  }
});
