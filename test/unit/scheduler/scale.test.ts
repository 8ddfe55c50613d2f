/**
 * The scheduler at scale (issue 14): a bounded in-memory window read from the store by due time,
 * the dead-destination cache, the head-of-line guard, bulk flush, and many next-hop groups.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { DeliveryRequest, RecipientResult } from '../../../src/delivery/types.js';
import { nextHopKey } from '../../../src/routing/types.js';
import { BODY, harness, ofType, ok, tempfail, testConfig, type Script } from './harness.js';

const FROM = 'sender@example.com';
const domainOf = (req: DeliveryRequest): string => nextHopKey(req.nextHop);

/** Runs due rounds until `done()` or `max` passes (each pass lets a refill run). */
async function drain(h: ReturnType<typeof harness>, done: () => boolean, max = 400): Promise<void> {
  for (let i = 0; i < max && !done(); i++) {
    await h.scheduler.runDueOnce();
    await new Promise<void>((r) => setImmediate(r));
  }
}

test('2,000 queued with a window of 100: memory holds at most ~100 IDs, every message delivered exactly once', async () => {
  const h = harness({ config: testConfig({ dueWindow: 100, maxActiveMessages: 50 }) });
  for (let i = 0; i < 2000; i++) await h.put({ mailFrom: FROM, recipients: [{ address: `r${i}@d${i % 7}.example` }] }, BODY);
  await h.scheduler.start();
  let maxWindow = h.scheduler.stats().scheduled;
  assert.ok(maxWindow <= 110, `window after start: ${maxWindow}`);
  for (let i = 0; i < 400 && h.store.size > 0; i++) {
    await h.scheduler.runDueOnce();
    await new Promise<void>((r) => setImmediate(r));
    maxWindow = Math.max(maxWindow, h.scheduler.stats().scheduled);
  }
  assert.equal(h.store.size, 0);
  assert.ok(maxWindow <= 110, `largest window: ${maxWindow}`);
  const ids = h.agent.calls.map((c) => c.queueId);
  assert.equal(ids.length, 2000);
  assert.equal(new Set(ids).size, 2000, 'no message delivered twice');
  assert.ok(h.scheduler.stats().loaded >= 2000);
  await h.scheduler.stop(0);
});

test('deferred mail beyond the window is dropped from memory and read back when due', async () => {
  const h = harness({ config: testConfig({ dueWindow: 100 }), script: (req, n) => req.recipients.map((r) => (n <= 300 ? tempfail(r.idx) : ok(r.idx))) });
  for (let i = 0; i < 300; i++) await h.put({ mailFrom: FROM, recipients: [{ address: `r${i}@example.org` }] }, BODY);
  await h.scheduler.start();
  await drain(h, () => h.agent.calls.length >= 300);
  assert.equal(h.agent.calls.length, 300);
  assert.ok(h.scheduler.stats().scheduled <= 110);
  h.clock.advance(400_000);
  await drain(h, () => h.store.size === 0);
  assert.equal(h.store.size, 0);
  assert.equal(h.agent.calls.length, 600);
  assert.equal(ofType(h.events, 'recipient.delivered').length, 300);
  await h.scheduler.stop(0);
});

const unreachable = (idx: number): RecipientResult => ({
  idx, outcome: 'deferred', code: 451, dsnStatus: '4.4.1', diagnostic: 'connect to mx.dead.example[192.0.2.1]:25: Connection refused', remote: false, destination: 'unreachable',
});

test('dead destination: a handful of connections per backoff step, the rest deferred in place; others unaffected', async () => {
  const script: Script = (req) => req.recipients.map((r) => (domainOf(req).includes('dead.example') ? unreachable(r.idx) : ok(r.idx)));
  const h = harness({ script });
  for (let i = 0; i < 200; i++) await h.put({ mailFrom: FROM, recipients: [{ address: `r${i}@dead.example` }] }, BODY);
  for (let i = 0; i < 20; i++) await h.put({ mailFrom: FROM, recipients: [{ address: `r${i}@live.example` }] }, BODY);
  const t0 = h.clock.now();
  await h.scheduler.start();
  await drain(h, () => ofType(h.events, 'recipient.deferred').length + ofType(h.events, 'recipient.delivered').length >= 220);
  const deadCalls = () => h.agent.calls.filter((c) => domainOf(c).includes('dead.example')).length;
  const first = deadCalls();
  assert.ok(first <= h.config.delivery.connectionsPerDestination, `connections in the first wave: ${first}`);
  assert.equal(ofType(h.events, 'recipient.delivered').length, 20, 'live destination delivered');
  const suspended = ofType(h.events, 'recipient.deferred').filter((e) => e.reply?.startsWith('delivery temporarily suspended: connect to'));
  assert.ok(suspended.length >= 200 - first, `deferred without connecting: ${suspended.length}`);
  assert.equal(h.scheduler.stats().deadDestinations, 1);
  // The next backoff step: one probe, the rest deferred again.
  h.clock.advance(400_000);
  await drain(h, () => ofType(h.events, 'recipient.deferred').length >= 400);
  assert.ok(deadCalls() - first <= 2, `connections in the second step: ${deadCalls() - first}`);
  // The destination comes back: the next probe succeeds and everything goes.
  h.agent.script = (req) => req.recipients.map((r) => ok(r.idx));
  h.clock.advance(700_000);
  for (let i = 0; i < 200 && h.store.size > 0; i++) {
    await h.scheduler.runDueOnce();
    h.clock.advance(5000); // those that waited for the probe come back seconds later, not a backoff step
  }
  const waitedForProbe = ofType(h.events, 'recipient.delivered').length;
  assert.equal(h.store.size, 0);
  assert.equal(waitedForProbe, 220);
  assert.ok(h.clock.now() - t0 < 400_000 + 700_000 + 60_000, 'delivered within a minute of the successful probe');
  await h.scheduler.stop(0);
});

test('head-of-line: a stalled destination cannot fill the active places; a healthy one goes on', async () => {
  const stalled: (() => void)[] = [];
  const script: Script = (req) => {
    if (!domainOf(req).includes('stall.example')) return req.recipients.map((r) => ok(r.idx));
    return new Promise<RecipientResult[]>((resolve) => {
      const answer = () => resolve(req.recipients.map((r) => tempfail(r.idx)));
      stalled.push(answer);
      req.signal?.addEventListener('abort', answer, { once: true });
    });
  };
  const h = harness({ script, config: testConfig({ maxActiveMessages: 60 }) });
  for (let i = 0; i < 500; i++) await h.put({ mailFrom: FROM, recipients: [{ address: `r${i}@stall.example` }] }, BODY);
  for (let i = 0; i < 50; i++) await h.put({ mailFrom: FROM, recipients: [{ address: `r${i}@live.example` }] }, BODY);
  await h.scheduler.start();
  // Time passes (250 ms a turn) while the stalled host answers nothing.
  for (let i = 0; i < 200 && ofType(h.events, 'recipient.delivered').length < 50; i++) {
    h.clock.advance(250);
    h.scheduler['scan']();
    await new Promise<void>((r) => setTimeout(r, 1));
  }
  assert.equal(ofType(h.events, 'recipient.delivered').length, 50, 'every healthy message delivered while the stalled ones hang');
  // A host that never answers never completes a delivery: its window stays at the slow start's first size.
  assert.equal(stalled.length, Math.min(h.config.delivery.initialConcurrency, h.config.delivery.connectionsPerDestination), 'only the stalled destination\'s connections hang');
  assert.ok(h.scheduler.stats().waitingRequests <= 40, `waiting: ${h.scheduler.stats().waitingRequests}`);
  const postponed = [...h.store['entries'].values()].filter((e: { msg: { attempts: number; nextAttemptAt: number } }) => e.msg.attempts === 0 && e.msg.nextAttemptAt > h.clock.now());
  assert.ok(postponed.length >= 400, `postponed without an attempt: ${postponed.length}`);
  await h.scheduler.stop(0);
});

test('bulk flush: all or by domain, one message.flushed each, held and sendAt mail left alone', async () => {
  const h = harness({ script: (req, n) => req.recipients.map((r) => (n <= 6 ? tempfail(r.idx) : ok(r.idx))) });
  for (let i = 0; i < 3; i++) await h.put({ mailFrom: FROM, recipients: [{ address: `a${i}@a.example` }] }, BODY);
  for (let i = 0; i < 3; i++) await h.put({ mailFrom: FROM, recipients: [{ address: `b${i}@b.example` }] }, BODY);
  const later = await h.put({ mailFrom: FROM, recipients: [{ address: 'c@a.example' }], meta: { sendAt: h.clock.now() + 86_400_000 } }, BODY);
  await h.scheduler.start();
  await h.scheduler.runDueOnce();
  assert.equal(h.agent.calls.length, 6);
  const held = [...h.store['entries'].keys()].find((id) => id !== later.id)!;
  await h.scheduler.hold(held);
  assert.equal(await h.scheduler.flush({ domain: 'A.example' }), 2, 'a.example: 3 deferred, one held, the sendAt one left');
  await h.scheduler.runDueOnce();
  assert.equal(h.agent.calls.length, 8);
  assert.ok(h.agent.calls.slice(6).every((c) => domainOf(c).includes('a.example')));
  assert.equal(await h.scheduler.flush(), 3);
  await h.scheduler.runDueOnce();
  assert.equal(h.agent.calls.length, 11);
  assert.equal(ofType(h.events, 'message.flushed').length, 5);
  assert.ok((await h.store.get(later.id))!.attempts === 0);
  await h.scheduler.stop(0);
});

test('a message with 30 next-hop groups raises no MaxListenersExceededWarning', async () => {
  const warnings: string[] = [];
  const onWarn = (w: Error) => warnings.push(w.name);
  process.on('warning', onWarn);
  try {
    const h = harness();
    await h.put({ mailFrom: FROM, recipients: Array.from({ length: 30 }, (_, i) => ({ address: `r@d${i}.example` })) }, BODY);
    await h.scheduler.start();
    await h.scheduler.runDueOnce();
    await new Promise<void>((r) => setImmediate(r));
    assert.equal(h.agent.calls.length, 30);
    assert.equal(h.store.size, 0);
    await h.scheduler.stop(0);
  } finally {
    process.off('warning', onWarn);
  }
  assert.deepEqual(warnings.filter((w) => w === 'MaxListenersExceededWarning'), []);
});
