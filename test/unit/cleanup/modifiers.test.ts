/**
 * The modifier chain (src/cleanup/modifiers.ts) through cleanup into the SQLite store: stage order,
 * header-time and end-time fields, declared removals, refusal, the 7-bit request, prepended fields
 * stored with the row (migration 8) and given out by openBody, sizes (QueuedMessage.size, the
 * message.received event, the body cache, crash recovery's size check), API and DSN mail, and DSN
 * originals read with the prepended fields.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { silentLogger } from '../../../src/core/log.js';
import { ManualClock } from '../../../src/core/clock.js';
import { PostlineError } from '../../../src/core/errors.js';
import { reply } from '../../../src/core/reply.js';
import { Cleanup } from '../../../src/cleanup/cleanup.js';
import { ModifierChain, type ModifierContext, type ModifierFactory } from '../../../src/cleanup/modifiers.js';
import type { EventRecord } from '../../../src/events/record.js';
import { readHeaders, readWhole } from '../../../src/scheduler/body.js';
import { SqliteQueueStore } from '../../../src/spool/sqlite/store.js';
import { envelope, session } from './helpers.js';
import { readAll, tempDir } from '../spool/helpers.js';

interface Seen { name: string; what: string }

/** A factory that records what its modifier sees and adds `Name: header` and `Name: end` fields. */
function recorder(name: string, stage: ModifierFactory['stage'], log: Seen[], over: Partial<ModifierFactory> & { refuse?: boolean; sevenBit?: boolean } = {}): ModifierFactory {
  return {
    name, stage, ...(over.removes ? { removes: over.removes } : {}),
    create(ctx: ModifierContext) {
      log.push({ name, what: `create ${ctx.role} trusted=${ctx.trusted}` });
      let bytes = 0;
      return {
        header(v) {
          log.push({ name, what: `header ${v.fields.map((f) => f.name).join(',')}` });
          return { add: [`X-${name}: header\r\n`], ...(over.sevenBit ? { sevenBit: true } : {}) };
        },
        body(chunk) { bytes += chunk.length; },
        end(v) {
          log.push({ name, what: `end body=${bytes} prepended=${v.prepended.map((p) => p.split(':')[0]).join(',')} top=${v.header.toString('latin1').split(':')[0]}` });
          if (over.refuse) throw new PostlineError('ERR_MODIFIER', 'refused', { temporary: false, reply: reply(550, '5.7.1', 'no thanks') });
          return [`X-${name}-End: end\r\n`];
        },
        abort() { log.push({ name, what: 'abort' }); },
      };
    },
  };
}

async function withStore(fn: (store: SqliteQueueStore, dir: string, mk: (f: ModifierFactory[]) => { cleanup: Cleanup; events: EventRecord[] }) => Promise<void>): Promise<void> {
  const { dir, cleanup: rm } = await tempDir('postline-mod-');
  const store = new SqliteQueueStore({ dataDir: dir, minFreeBytes: 0, logger: silentLogger() });
  await store.open();
  const events: EventRecord[] = [];
  store.setEventListener((list) => events.push(...list));
  try {
    await fn(store, dir, (factories) => ({
      events,
      cleanup: new Cleanup({
        store, logger: silentLogger(), clock: new ManualClock(1_700_000_000_000), modifiers: () => factories,
        config: { hostname: 'mx.postline.test', limits: { maxMessageSize: 1024 * 1024, maxReceivedHeaders: 30 } },
      }),
    }));
  } finally {
    await store.close();
    await rm();
  }
}

const BODY = 'From: a@example.test\r\nAuthentication-Results: mx.postline.test; spf=pass\r\nAuthentication-Results: other.example; spf=fail\r\nSubject: s\r\n\r\nbody line\r\n';

test('stages run verify, add, sign whatever the given order; later fields go on top; end sees earlier end fields', async () => {
  await withStore(async (store, _dir, mk) => {
    const log: Seen[] = [];
    const { cleanup, events } = mk([recorder('Sign', 'sign', log), recorder('Add', 'add', log), recorder('Verify', 'verify', log)]);
    const m = await cleanup.begin(session({ role: 'submission', authUser: 'u' }), envelope());
    m.write(Buffer.from(BODY));
    const id = await m.finish();
    assert.deepEqual(log.map((l) => `${l.name} ${l.what}`), [
      'Verify create submission trusted=true', 'Add create submission trusted=true', 'Sign create submission trusted=true',
      'Verify header Received,From,Authentication-Results,Authentication-Results,Subject,Date,Message-ID',
      'Add header X-Verify,Received,From,Authentication-Results,Authentication-Results,Subject,Date,Message-ID',
      'Sign header X-Add,X-Verify,Received,From,Authentication-Results,Authentication-Results,Subject,Date,Message-ID',
      'Verify end body=11 prepended= top=X-Sign',
      'Add end body=11 prepended=X-Verify-End top=X-Sign',
      'Sign end body=11 prepended=X-Add-End,X-Verify-End top=X-Sign',
    ]);
    const stored = (await readAll(store.openBody(id))).toString('latin1');
    assert.ok(stored.startsWith('X-Sign-End: end\r\nX-Add-End: end\r\nX-Verify-End: end\r\nX-Sign: header\r\nX-Add: header\r\nX-Verify: header\r\nReceived: '), stored);
    assert.ok(stored.endsWith('\r\n\r\nbody line\r\n'));
    const q = (await store.get(id))!;
    assert.equal(q.size, Buffer.byteLength(stored), 'QueuedMessage.size is what openBody gives out');
    const received = events.find((e) => e.type === 'message.received') as { size: number } | undefined;
    assert.equal(received?.size, q.size, 'the event carries the same size');
    // The row keeps the end fields; the body (the BLOB) does not hold them.
    const db = new Database(join(_dir, 'queue.db'), { readonly: true });
    const row = db.prepare('SELECT m.prepend AS p, length(b.data) AS n, m.size AS size FROM messages m JOIN bodies b ON b.message_id = m.id WHERE m.id = ?').get(id) as { p: string; n: number; size: number };
    db.close();
    assert.equal(row.p, 'X-Sign-End: end\r\nX-Add-End: end\r\nX-Verify-End: end\r\n');
    assert.equal(row.n + Buffer.byteLength(row.p), row.size);
  });
});

test('declared removals apply to the client fields only, and only those that match', async () => {
  await withStore(async (store, _dir, mk) => {
    const log: Seen[] = [];
    const { cleanup } = mk([recorder('V', 'verify', log, {
      removes: [{ name: 'Authentication-Results', when: (v) => v.trim().toLowerCase().startsWith('mx.postline.test;') }],
    })]);
    const m = await cleanup.begin(session({ role: 'mx' }), envelope());
    m.write(Buffer.from(BODY));
    const stored = (await readAll(store.openBody(await m.finish()))).toString('latin1');
    assert.doesNotMatch(stored, /Authentication-Results: mx\.postline\.test/);
    assert.match(stored, /Authentication-Results: other\.example; spf=fail/);
    assert.ok(log.some((l) => l.what === 'create mx trusted=false'));
  });
});

test('a refusal at the end fails the message with its reply; nothing is stored; every modifier hears abort', async () => {
  await withStore(async (store, _dir, mk) => {
    const log: Seen[] = [];
    const { cleanup } = mk([recorder('A', 'verify', log, { refuse: true }), recorder('B', 'sign', log)]);
    const m = await cleanup.begin(session({ role: 'submission', authUser: 'u' }), envelope());
    m.write(Buffer.from(BODY));
    await assert.rejects(m.finish(), (err: PostlineError) => err.reply?.code === 550 && err.reply.enhanced === '5.7.1');
    assert.ok(log.some((l) => l.name === 'B' && l.what === 'abort'));
    assert.ok(!log.some((l) => l.name === 'B' && l.what.startsWith('end')), 'later modifiers do not run');
    assert.equal((await store.list()).length, 0);
  });
});

test('a malformed added field is a local error (451), never stored', async () => {
  await withStore(async (store, _dir, mk) => {
    const bad: ModifierFactory = { name: 'bad', stage: 'add', create: () => ({ end: () => ['no colon here\r\n'] }) };
    const { cleanup } = mk([bad]);
    const m = await cleanup.begin(session({ role: 'submission', authUser: 'u' }), envelope());
    m.write(Buffer.from(BODY));
    await assert.rejects(m.finish(), (err: PostlineError) => err.code === 'ERR_MODIFIER' && err.temporary);
    assert.equal((await store.list()).length, 0);
  });
});

test('API submissions and DSNs run the chain (role api / dsn, trusted)', async () => {
  await withStore(async (store, _dir, mk) => {
    const log: Seen[] = [];
    const { cleanup } = mk([recorder('S', 'sign', log)]);
    const sub = await cleanup.submit({ envelope: envelope(), body: Buffer.from(BODY), origin: { kind: 'api', apiKey: 'k' } });
    assert.equal(sub.size, Buffer.byteLength(BODY), 'submit reports the client bytes');
    const dsn = await cleanup.inject(envelope(['a@example.test'], { mailFrom: '' }), Buffer.from(BODY), { kind: 'dsn' });
    assert.ok(log.some((l) => l.what === 'create api trusted=true'));
    assert.ok(log.some((l) => l.what === 'create dsn trusted=true'));
    for (const id of [sub.queueId, dsn]) {
      assert.ok((await readAll(store.openBody(id))).toString('latin1').startsWith('X-S-End: end\r\nX-S: header\r\nReceived: '));
    }
  });
});

test('DSN originals (readHeaders, readWhole) include the prepended fields; cache, re-read and recovery agree on sizes', async () => {
  const { dir, cleanup: rm } = await tempDir('postline-mod-');
  try {
    let id = '';
    let size = 0;
    {
      const store = new SqliteQueueStore({ dataDir: dir, minFreeBytes: 0, logger: silentLogger() });
      await store.open();
      const cleanup = new Cleanup({
        store, logger: silentLogger(), modifiers: () => [recorder('S', 'sign', [])],
        config: { hostname: 'mx.postline.test', limits: { maxMessageSize: 1024 * 1024, maxReceivedHeaders: 30 } },
      });
      const m = await cleanup.begin(session({ role: 'submission', authUser: 'u' }), envelope());
      m.write(Buffer.from(BODY));
      id = await m.finish();
      size = (await store.get(id))!.size;
      const cached = await readAll(store.openBody(id)); // from the body cache
      assert.equal(cached.length, size);
      assert.ok((await readHeaders(store, id)).toString('latin1').startsWith('X-S-End: end\r\n'));
      assert.equal((await readWhole(store, id)).length, size);
      await store.close();
    }
    // A new instance: recovery checks body + prepend against size, and reads from queue.db.
    const again = new SqliteQueueStore({ dataDir: dir, minFreeBytes: 0, logger: silentLogger() });
    await again.open();
    assert.equal(again.lastRecovery?.quarantined, 0);
    const read = await readAll(again.openBody(id));
    assert.equal(read.length, size);
    assert.ok(read.toString('latin1').startsWith('X-S-End: end\r\n'));
    await again.close();
    // A body that lost bytes is still caught: recovery compares the BLOB with size less the prepend.
    const db = new Database(join(dir, 'queue.db'));
    db.prepare('UPDATE bodies SET data = substr(data, 1, length(data) - 3) WHERE message_id = ?').run(id);
    db.close();
    const third = new SqliteQueueStore({ dataDir: dir, minFreeBytes: 0, logger: silentLogger() });
    await third.open();
    assert.equal(third.lastRecovery?.quarantined, 1);
    await third.close();
  } finally {
    await rm();
  }
});

test('large bodies (a file in spool/) get their prepended fields too', async () => {
  const { dir, cleanup: rm } = await tempDir('postline-mod-');
  const store = new SqliteQueueStore({ dataDir: dir, minFreeBytes: 0, logger: silentLogger(), inlineMaxBytes: 0 });
  await store.open();
  try {
    const cleanup = new Cleanup({
      store, logger: silentLogger(), modifiers: () => [recorder('S', 'sign', [])],
      config: { hostname: 'mx.postline.test', limits: { maxMessageSize: 1024 * 1024, maxReceivedHeaders: 30 } },
    });
    const m = await cleanup.begin(session({ role: 'submission', authUser: 'u' }), envelope());
    m.write(Buffer.from(BODY + 'x'.repeat(200_000) + '\r\n'));
    const id = await m.finish();
    const read = await readAll(store.openBody(id));
    assert.equal(read.length, (await store.get(id))!.size);
    assert.ok(read.toString('latin1').startsWith('X-S-End: end\r\nX-S: header\r\n'));
    await store.close();
    const again = new SqliteQueueStore({ dataDir: dir, minFreeBytes: 0, logger: silentLogger() });
    await again.open();
    assert.equal(again.lastRecovery?.quarantined, 0);
    await again.close();
  } finally {
    await rm();
  }
});

test('an empty chain is the EMPTY chain; create sorts by stage', () => {
  assert.equal(ModifierChain.create([], { queueId: 'x', envelope: envelope(), origin: { kind: 'dsn' }, role: 'dsn', trusted: true }), ModifierChain.EMPTY);
  const none: ModifierFactory = { name: 'n', stage: 'add', create: () => undefined };
  assert.ok(ModifierChain.create([none], { queueId: 'x', envelope: envelope(), origin: { kind: 'dsn' }, role: 'dsn', trusted: true }).empty);
});
