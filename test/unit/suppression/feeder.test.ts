/**
 * The suppression feeder against the real embedded store: events appended to queue.db's event log,
 * the feeder's pages applied with their cursor in one commit (src/suppression/feeder.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../../src/core/log.js';
import type { EventRecord, StoredEvent } from '../../../src/events/record.js';
import { SqliteQueueStore } from '../../../src/spool/sqlite/store.js';
import { bounceSeverity, FEEDER_CURSOR, SuppressionFeeder } from '../../../src/suppression/feeder.js';
import type { SuppressionConfig } from '../../../src/config/suppression-schema.js';
import { tempDir } from '../spool/helpers.js';

const at = 1_700_000_000_000;
const bounced = (recipient: string, o: Partial<EventRecord> = {}): EventRecord => ({
  type: 'recipient.bounced', at, queueId: 'Q1', mailFrom: 'news@shop.test', recipient, dsn: '5.1.1', reply: '550 5.1.1 no such user', remoteHost: 'mx.example.net[192.0.2.1]:25', ...o,
});
const ev = (type: EventRecord['type'], recipient: string, o: Partial<EventRecord> = {}): EventRecord => ({ type, at, queueId: 'Q1', mailFrom: 'news@shop.test', recipient, ...o });

async function rig(over: Partial<SuppressionConfig> = {}) {
  const t = await tempDir('postline-feeder-');
  const qs = new SqliteQueueStore({ dataDir: t.dir, minFreeBytes: 0, logger: silentLogger() });
  await qs.open();
  const store = qs.suppressionStore();
  const config = { suppression: { enabled: true, mode: 'reject' as const, softBounceLimit: 3, scope: 'sender-domain' as const, ...over } };
  const feeder = () => new SuppressionFeeder({ source: qs, store, config, logger: silentLogger(), clock: { now: () => at + 10 }, pageSize: 4, cursorFlushMs: 0 });
  const append = async (...evs: EventRecord[]): Promise<StoredEvent[]> => { const s = await qs.appendEvents(evs); await qs.sync(); return s; };
  const run = async (f: SuppressionFeeder): Promise<void> => { for (let i = 0; i < 100 && (await f.step()) > 0; i++); };
  const events = async (type: string): Promise<StoredEvent[]> => { await qs.sync(); return (await qs.readEvents({ limit: 10_000, types: [type] })); };
  return { qs, store, config, feeder, append, run, events, cleanup: async () => { await qs.close(); await t.cleanup(); } };
}

test('bounceSeverity: the bounce class\'s severity; without one a remote 5xx or our own 5.1.x is hard, other local refusals count for nothing', () => {
  const e = (o: Partial<StoredEvent>): StoredEvent => ({ id: 1, type: 'recipient.bounced', at, recipient: 'a@x.test', ...o } as StoredEvent);
  assert.equal(bounceSeverity(e({ dsn: '5.1.1', remoteHost: 'mx[1.2.3.4]:25' })), 'hard');
  assert.equal(bounceSeverity(e({ dsn: '5.2.2', remoteHost: 'mx', bounceClass: 'MailboxFull' })), 'soft');
  assert.equal(bounceSeverity(e({ dsn: '5.7.1', remoteHost: 'mx', bounceClass: 'BlockedByReputation' })), 'soft', 'about us, not the address');
  assert.equal(bounceSeverity(e({ dsn: '5.1.1', remoteHost: 'mx', bounceClass: 'InvalidRecipient' })), 'hard');
  assert.equal(bounceSeverity(e({ dsn: '5.1.2', bounceClass: 'BadDomain' })), 'hard', 'an asynchronous bounce (no remote host of ours)');
  assert.equal(bounceSeverity(e({ dsn: '5.1.2' })), 'hard', 'no such domain, found by us');
  assert.equal(bounceSeverity(e({ dsn: '5.0.0', reply: '554 5.0.0 message bounced by the administrator' })), undefined);
  assert.equal(bounceSeverity(e({ dsn: '5.3.4' })), undefined, 'too large for us: about the message');
  assert.equal(bounceSeverity(e({ reply: '550 5.7.1 go away', remoteHost: 'mx' })), 'hard', 'the code from the reply');
});

test('a hard bounce suppresses the recipient in the sender\'s scope, with its event and the cursor in one commit', async () => {
  const r = await rig();
  try {
    const [b] = await r.append(bounced('Bob@Example.NET'), ev('message.received', 'x@y.test'));
    const f = r.feeder();
    await r.run(f);
    const e = await r.store.get('shop.test', 'bob@example.net');
    assert.equal(e?.reason, 'hard-bounce');
    assert.equal(e?.source, String(b!.id));
    assert.equal(e?.description, '550 5.1.1 no such user');
    assert.ok(r.store.check('shop.test', 'bob@example.net', at + 20));
    assert.equal(r.store.check('other.test', 'bob@example.net', at + 20), undefined, 'per sender domain');
    const [s] = await r.events('recipient.suppressed');
    assert.equal(s?.recipient, 'bob@example.net');
    assert.equal(s?.scope, 'shop.test');
    assert.equal(s?.source, String(b!.id));
    assert.equal(s?.mailFrom, 'news@shop.test');
    assert.equal(await r.store.cursor(FEEDER_CURSOR), f.position());
    assert.ok(f.position() >= b!.id + 1, 'past the other types too');
    // A second feeder from the stored cursor changes nothing (replay-safe).
    await r.append(bounced('bob@example.net'));
    await r.run(r.feeder());
    assert.equal((await r.events('recipient.suppressed')).length, 1, 'an entry is not added twice');
  } finally {
    await r.cleanup();
  }
});

test('soft bounces in a row suppress at the limit; a delivery resets the count and clears a bounce entry, not a complaint', async () => {
  const r = await rig();
  try {
    const soft = (a: string) => bounced(a, { dsn: '5.2.2', reply: '552 5.2.2 mailbox full', bounceClass: 'MailboxFull' });
    await r.append(soft('s@x.test'), ev('recipient.expired', 's@x.test', { dsn: '4.4.7' }));
    await r.run(r.feeder());
    assert.equal(await r.store.softBounces('shop.test', 's@x.test'), 2);
    await r.append(ev('recipient.delivered', 's@x.test', { dsn: '2.0.0' }), soft('s@x.test'), soft('s@x.test'));
    await r.run(r.feeder());
    assert.equal(await r.store.softBounces('shop.test', 's@x.test'), 2, 'the delivery started the count again');
    assert.equal(await r.store.get('shop.test', 's@x.test'), undefined);
    await r.append(ev('recipient.expired', 's@x.test'));
    await r.run(r.feeder());
    assert.equal((await r.store.get('shop.test', 's@x.test'))?.reason, 'soft-bounce', 'three in a row');
    assert.equal(await r.store.softBounces('shop.test', 's@x.test'), 0);
    const [d] = await r.append(ev('recipient.delivered', 's@x.test'));
    await r.run(r.feeder());
    assert.equal(await r.store.get('shop.test', 's@x.test'), undefined, 'a successful delivery clears it');
    const [removed] = await r.events('suppression.removed');
    assert.equal(removed?.reason, 'soft-bounce');
    assert.equal(removed?.source, String(d!.id));
    // A complaint replaces a hard bounce, and a delivery leaves it.
    await r.append(bounced('c@x.test'), ev('recipient.complained', 'c@x.test'), ev('recipient.delivered', 'c@x.test'));
    await r.run(r.feeder());
    assert.equal((await r.store.get('shop.test', 'c@x.test'))?.reason, 'complaint');
    await r.append(ev('recipient.unsubscribed', 'u@x.test', { mailFrom: undefined }));
    await r.run(r.feeder());
    assert.equal((await r.store.get('*', 'u@x.test'))?.reason, 'unsubscribe', 'no sender: every sender');
    await r.append(ev('recipient.unsubscribed', 'v@x.test', { mailFrom: 'news@shop.test', scope: 'Letters.Shop.Test', source: 'one-click' }));
    await r.run(r.feeder());
    assert.equal((await r.store.get('letters.shop.test', 'v@x.test'))?.reason, 'unsubscribe', 'the scope the event names');
  } finally {
    await r.cleanup();
  }
});

test('bounces of the null sender and local refusals add nothing; softBounceLimit 0 never suppresses; scope global', async () => {
  const r = await rig({ softBounceLimit: 0, scope: 'global' });
  try {
    await r.append(
      bounced('dsn@x.test', { mailFrom: '' }),
      bounced('op@x.test', { dsn: '5.0.0', reply: '554 5.0.0 message bounced by the administrator', remoteHost: undefined }),
      ev('recipient.expired', 'e@x.test'), ev('recipient.expired', 'e@x.test'), ev('recipient.expired', 'e@x.test'),
      bounced('h@x.test'),
    );
    await r.run(r.feeder());
    const all = await r.store.list({ limit: 100 });
    assert.deepEqual(all.items.map((e) => [e.scope, e.address, e.reason]), [['*', 'h@x.test', 'hard-bounce']]);
    assert.equal(await r.store.softBounces('*', 'e@x.test'), 3, 'counted, never suppressed');
  } finally {
    await r.cleanup();
  }
});

test('the loop reads new events when woken and stores its cursor at stop', async () => {
  const r = await rig();
  try {
    const f = r.feeder();
    f.start();
    await r.append(bounced('w@x.test'));
    f.wake();
    const deadline = Date.now() + 10_000;
    while (!r.store.check('shop.test', 'w@x.test', at + 20) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 20));
    assert.ok(r.store.check('shop.test', 'w@x.test', at + 20));
    await f.stop();
    assert.ok(f.position() > 0);
    assert.equal(await r.store.cursor(FEEDER_CURSOR), f.position(), 'stored at stop');
  } finally {
    await r.cleanup();
  }
});
