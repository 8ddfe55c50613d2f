/**
 * The conformance suite of SuppressionStore (src/suppression/types.ts): every backend must pass it.
 * Call `suppressionStoreConformance(name, factory)` from a test file; `open` gives a fresh, empty
 * store, a reader of the events it wrote, and a cleanup function; `reopen` (optional) opens the
 * same data again, for the persistence case.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { StoredEvent } from '../../src/events/record.js';
import type { Suppression, SuppressionStore } from '../../src/suppression/types.js';

export interface SuppressionStoreFactory {
  open(): Promise<{
    store: SuppressionStore;
    /** Every event written so far, in id order. */
    events(): Promise<StoredEvent[]>;
    reopen?: () => Promise<SuppressionStore>;
    cleanup: () => Promise<void>;
  }>;
}

const T0 = 1_700_000_000_000;
const entry = (address: string, o: Partial<Suppression> = {}): Suppression => ({ scope: '*', address, reason: 'manual', source: 'operator', createdAt: T0, ...o });

/** Registers the suite's tests under `name`. */
export function suppressionStoreConformance(name: string, factory: SuppressionStoreFactory): void {
  type Ctx = Awaited<ReturnType<SuppressionStoreFactory['open']>>;
  const withStore = async (fn: (s: SuppressionStore, c: Ctx) => Promise<void>): Promise<void> => {
    const c = await factory.open();
    try {
      await fn(c.store, c);
    } finally {
      await c.cleanup();
    }
  };
  const ofType = async (c: Ctx, type: string): Promise<StoredEvent[]> => (await c.events()).filter((e) => e.type === type);

  test(`${name}: an empty list suppresses nothing`, () => withStore(async (s) => {
    assert.equal(s.check('example.com', 'bob@example.net', T0), undefined);
    assert.equal(s.check(undefined, 'bob@example.net', T0), undefined);
    assert.equal(await s.get('*', 'bob@example.net'), undefined);
    assert.deepEqual(await s.list({ limit: 10 }), { items: [] });
    assert.equal(await s.cursor('feeder'), 0);
    assert.equal(await s.softBounces('*', 'bob@example.net'), 0);
    const r = await s.write({ at: T0 });
    assert.deepEqual(r, { added: [], removed: [], events: [] });
  }));

  test(`${name}: the check finds the address or its domain, in the sender's scope or for every sender`, () => withStore(async (s, c) => {
    const r = await s.write({ at: T0, add: [
      { entry: entry('a@one.test', { scope: 'shop.test', reason: 'hard-bounce', source: '17', description: '550 5.1.1 no such user' }), mode: 'insert' },
      { entry: entry('b@one.test'), mode: 'insert' },
      { entry: entry('*@two.test', { scope: 'shop.test', reason: 'complaint' }), mode: 'insert' },
      { entry: entry('*@three.test', { reason: 'unsubscribe' }), mode: 'insert' },
    ] });
    assert.equal(r.added.length, 4);
    assert.equal(r.events.length, 4);
    assert.equal(s.check('shop.test', 'a@one.test', T0)?.reason, 'hard-bounce');
    assert.equal(s.check('other.test', 'a@one.test', T0), undefined, 'a scoped entry is for its sender only');
    assert.equal(s.check(undefined, 'a@one.test', T0), undefined, 'no sender: only entries for every sender');
    assert.equal(s.check('other.test', 'b@one.test', T0)?.scope, '*');
    assert.equal(s.check(undefined, 'b@one.test', T0)?.address, 'b@one.test');
    assert.equal(s.check('shop.test', 'x@two.test', T0)?.address, '*@two.test');
    assert.equal(s.check('other.test', 'x@two.test', T0), undefined);
    assert.equal(s.check('anyone.test', 'y@three.test', T0)?.reason, 'unsubscribe');
    assert.equal(s.check('shop.test', 'c@one.test', T0), undefined, 'another address of the domain');
    const got = await s.get('shop.test', 'a@one.test');
    assert.deepEqual(got, { scope: 'shop.test', address: 'a@one.test', reason: 'hard-bounce', source: '17', description: '550 5.1.1 no such user', createdAt: T0 });
    const evs = await ofType(c, 'recipient.suppressed');
    assert.equal(evs.length, 4);
    const first = evs.find((e) => e.recipient === 'a@one.test')!;
    assert.equal(first.scope, 'shop.test');
    assert.equal(first.reason, 'hard-bounce');
    assert.equal(first.source, '17');
    assert.equal(first.detail, '550 5.1.1 no such user');
    assert.equal(first.queueId, undefined, 'list events are not about a message');
    assert.deepEqual(r.events.map((e) => e.id), evs.map((e) => e.id), 'the write returns its events numbered');
  }));

  test(`${name}: the exact address wins over the domain, the sender's scope over every sender`, () => withStore(async (s) => {
    await s.write({ at: T0, add: [
      { entry: entry('*@d.test', { reason: 'manual' }), mode: 'insert' },
      { entry: entry('*@d.test', { scope: 'shop.test', reason: 'complaint' }), mode: 'insert' },
      { entry: entry('u@d.test', { reason: 'unsubscribe' }), mode: 'insert' },
      { entry: entry('u@d.test', { scope: 'shop.test', reason: 'hard-bounce' }), mode: 'insert' },
    ] });
    assert.equal(s.check('shop.test', 'u@d.test', T0)?.reason, 'hard-bounce');
    assert.equal(s.check('other.test', 'u@d.test', T0)?.reason, 'unsubscribe');
    assert.equal(s.check('shop.test', 'v@d.test', T0)?.reason, 'complaint');
    assert.equal(s.check('other.test', 'v@d.test', T0)?.reason, 'manual');
  }));

  test(`${name}: insert keeps an entry, replace replaces it, upgrade only with a stronger reason`, () => withStore(async (s, c) => {
    const k = 'bob@example.net';
    await s.write({ at: T0, add: [{ entry: entry(k, { reason: 'soft-bounce', source: '1' }), mode: 'insert' }] });
    let r = await s.write({ at: T0 + 1, add: [{ entry: entry(k, { reason: 'manual', source: 'operator', createdAt: T0 + 1 }), mode: 'insert' }] });
    assert.deepEqual(r, { added: [], removed: [], events: [] }, 'insert over an entry changes nothing and writes no event');
    r = await s.write({ at: T0 + 2, add: [{ entry: entry(k, { reason: 'hard-bounce', source: '2', createdAt: T0 + 2 }), mode: 'upgrade' }] });
    assert.equal(r.added.length, 1, 'soft-bounce -> hard-bounce is an upgrade');
    r = await s.write({ at: T0 + 3, add: [{ entry: entry(k, { reason: 'soft-bounce', source: '3', createdAt: T0 + 3 }), mode: 'upgrade' }] });
    assert.equal(r.added.length, 0, 'hard-bounce -> soft-bounce is not');
    r = await s.write({ at: T0 + 4, add: [{ entry: entry(k, { reason: 'complaint', source: '4', createdAt: T0 + 4 }), mode: 'upgrade' }] });
    assert.equal(r.added.length, 1, 'hard-bounce -> complaint is');
    r = await s.write({ at: T0 + 5, add: [{ entry: entry(k, { reason: 'hard-bounce', source: '5', createdAt: T0 + 5 }), mode: 'upgrade' }] });
    assert.equal(r.added.length, 0, 'complaint -> hard-bounce is not');
    assert.equal((await s.get('*', k))?.reason, 'complaint');
    r = await s.write({ at: T0 + 6, add: [{ entry: entry(k, { reason: 'manual', source: 'api', description: 'asked by the customer', createdAt: T0 + 6 }), mode: 'replace' }] });
    assert.equal(r.added.length, 1);
    assert.deepEqual(await s.get('*', k), entry(k, { reason: 'manual', source: 'api', description: 'asked by the customer', createdAt: T0 + 6 }));
    assert.deepEqual((await ofType(c, 'recipient.suppressed')).map((e) => e.reason), ['soft-bounce', 'hard-bounce', 'complaint', 'manual']);
  }));

  test(`${name}: an expired entry never matches, is listed only on request, and an add replaces it`, () => withStore(async (s) => {
    await s.write({ at: T0, add: [{ entry: entry('t@x.test', { expiresAt: T0 + 1000 }), mode: 'insert' }, { entry: entry('u@x.test'), mode: 'insert' }] });
    assert.equal(s.check(undefined, 't@x.test', T0 + 999)?.expiresAt, T0 + 1000);
    assert.equal(s.check(undefined, 't@x.test', T0 + 1000), undefined, 'expired at its time');
    assert.deepEqual((await s.list({ limit: 10, now: T0 + 2000 })).items.map((e) => e.address), ['u@x.test']);
    assert.deepEqual((await s.list({ limit: 10, now: T0 + 2000, expired: true })).items.map((e) => e.address), ['t@x.test', 'u@x.test']);
    const r = await s.write({ at: T0 + 2000, add: [{ entry: entry('t@x.test', { reason: 'hard-bounce', createdAt: T0 + 2000 }), mode: 'insert' }] });
    assert.equal(r.added.length, 1, 'insert over an expired entry');
    assert.equal(s.check(undefined, 't@x.test', T0 + 3000)?.reason, 'hard-bounce');
  }));

  test(`${name}: remove writes suppression.removed with the entry's fields; onlyReasons keeps other reasons`, () => withStore(async (s, c) => {
    await s.write({ at: T0, add: [
      { entry: entry('a@x.test', { reason: 'hard-bounce', source: '9' }), mode: 'insert' },
      { entry: entry('b@x.test', { reason: 'complaint', source: '10' }), mode: 'insert' },
    ] });
    assert.ok(s.check(undefined, 'a@x.test', T0));
    let r = await s.write({ at: T0 + 1, remove: [
      { scope: '*', address: 'a@x.test', onlyReasons: ['hard-bounce', 'soft-bounce'], source: '11' },
      { scope: '*', address: 'b@x.test', onlyReasons: ['hard-bounce', 'soft-bounce'], source: '12' },
      { scope: '*', address: 'nobody@x.test', source: 'operator' },
    ] });
    assert.deepEqual(r.removed.map((e) => e.address), ['a@x.test']);
    assert.equal(s.check(undefined, 'a@x.test', T0 + 2), undefined, 'the check sees the removal at once');
    assert.ok(s.check(undefined, 'b@x.test', T0 + 2), 'a complaint is not a bounce');
    r = await s.write({ at: T0 + 3, remove: [{ scope: '*', address: 'b@x.test', source: 'operator' }] });
    assert.equal(r.removed.length, 1);
    const removed = await ofType(c, 'suppression.removed');
    assert.deepEqual(removed.map((e) => [e.recipient, e.reason, e.source, e.scope]), [['a@x.test', 'hard-bounce', '11', '*'], ['b@x.test', 'complaint', 'operator', '*']]);
    assert.equal(s.check(undefined, 'b@x.test', T0 + 4), undefined);
    assert.deepEqual(await s.list({ limit: 10 }), { items: [] });
  }));

  test(`${name}: listing pages by cursor in address order and filters by scope, reason, domain and prefix`, () => withStore(async (s) => {
    const add = [];
    for (let i = 0; i < 25; i++) {
      const dom = i % 2 ? 'odd.test' : 'even.test';
      add.push({ entry: entry(`u${String(i).padStart(2, '0')}@${dom}`, { scope: i % 3 ? '*' : 'shop.test', reason: i % 5 ? 'manual' as const : 'complaint' as const }), mode: 'insert' as const });
    }
    add.push({ entry: entry('*@odd.test'), mode: 'insert' as const });
    await s.write({ at: T0, add });
    const seen: string[] = [];
    let after: string | undefined;
    for (let page = 0; page < 10; page++) {
      const p = await s.list({ limit: 10, ...(after ? { after } : {}) });
      seen.push(...p.items.map((e) => `${e.address} ${e.scope}`));
      if (!p.next) break;
      after = p.next;
    }
    assert.equal(seen.length, 26);
    assert.deepEqual(seen, [...seen].sort(), 'address order');
    assert.equal(new Set(seen).size, 26, 'no item twice');
    const shop = await s.list({ limit: 100, scope: 'shop.test' });
    assert.equal(shop.items.length, 9);
    assert.ok(shop.items.every((e) => e.scope === 'shop.test'));
    const complaints = await s.list({ limit: 100, reason: 'complaint' });
    assert.equal(complaints.items.length, 5);
    const odd = await s.list({ limit: 100, domain: 'odd.test' });
    assert.equal(odd.items.length, 13, 'the domain and its wildcard entry');
    assert.equal(odd.items[0]!.address, '*@odd.test');
    const prefix = await s.list({ limit: 100, addressPrefix: 'u1' });
    assert.deepEqual(prefix.items.map((e) => e.address), ['u10@even.test', 'u11@odd.test', 'u12@even.test', 'u13@odd.test', 'u14@even.test', 'u15@odd.test', 'u16@even.test', 'u17@odd.test', 'u18@even.test', 'u19@odd.test']);
    const both = await s.list({ limit: 2, domain: 'even.test', scope: '*' });
    assert.equal(both.items.length, 2);
    assert.ok(both.next);
    const rest = await s.list({ limit: 100, domain: 'even.test', scope: '*', after: both.next });
    assert.ok(rest.items.every((e) => e.address > both.items[1]!.address));
  }));

  test(`${name}: soft-bounce counts and a cursor commit with the changes of the same write; the cursor only moves forward`, () => withStore(async (s, c) => {
    await s.write({ at: T0, softBounces: [{ scope: 'shop.test', address: 'a@x.test', count: 2 }], cursor: { name: 'feeder', id: 40 } });
    assert.equal(await s.softBounces('shop.test', 'a@x.test'), 2);
    assert.equal(await s.softBounces('*', 'a@x.test'), 0);
    assert.equal(await s.cursor('feeder'), 40);
    const r = await s.write({
      at: T0 + 1, cursor: { name: 'feeder', id: 45 }, softBounces: [{ scope: 'shop.test', address: 'a@x.test', count: 0 }],
      add: [{ entry: entry('a@x.test', { scope: 'shop.test', reason: 'soft-bounce', source: '44' }), mode: 'insert', context: { mailFrom: 'news@shop.test', messageId: '<m@shop.test>' } }],
    });
    assert.equal(r.added.length, 1);
    assert.equal(await s.softBounces('shop.test', 'a@x.test'), 0);
    assert.equal(await s.cursor('feeder'), 45);
    await s.write({ at: T0 + 2, cursor: { name: 'feeder', id: 30 } });
    assert.equal(await s.cursor('feeder'), 45, 'never back');
    assert.equal(await s.cursor('other'), 0);
    const ev = (await ofType(c, 'recipient.suppressed'))[0]!;
    assert.equal(ev.mailFrom, 'news@shop.test', 'context fields are copied into the event');
    assert.equal(ev.messageId, '<m@shop.test>');
    if (c.reopen) {
      const again = await c.reopen();
      assert.equal(await again.cursor('feeder'), 45);
      assert.equal(again.check('shop.test', 'a@x.test', T0 + 3)?.reason, 'soft-bounce', 'kept across a reopen');
    }
  }));
}
