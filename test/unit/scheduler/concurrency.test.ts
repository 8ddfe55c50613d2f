import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CANCELLED, Dispatcher } from '../../../src/scheduler/dispatcher.js';
import { BODY, harness, ok, ofType, testConfig } from './harness.js';

const ticks = async (n: number): Promise<void> => { for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r)); };

test('scheduler respects maxConnections and connectionsPerDestination', async () => {
  const h = harness({
    config: testConfig({ maxConnections: 3, connectionsPerDestination: 2 }),
    script: async (req) => { await ticks(3); return req.recipients.map((r) => ok(r.idx)); },
  });
  for (const d of ['a.example', 'b.example', 'c.example']) {
    for (let i = 0; i < 4; i++) await h.put({ mailFrom: 's@example.com', recipients: [{ address: `u${i}@${d}` }] }, BODY);
  }
  await h.scheduler.start();
  await h.scheduler.runDueOnce();
  assert.equal(h.agent.calls.length, 12);
  assert.equal(h.agent.maxConcurrent, 3);
  for (const [key, n] of h.agent.maxPerKey) assert.ok(n <= 2, `${key} had ${n} concurrent requests`);
  assert.equal(h.store.size, 0);
  await h.scheduler.stop(0);
});

test('a slow destination does not starve the others', async () => {
  let open!: () => void;
  const gate = new Promise<void>((r) => { open = r; });
  const h = harness({
    config: testConfig({ maxConnections: 3, connectionsPerDestination: 2 }),
    script: async (req) => {
      if (req.nextHop.kind === 'mx' && req.nextHop.domain === 'slow.example') await gate;
      return req.recipients.map((r) => ok(r.idx));
    },
  });
  for (let i = 0; i < 10; i++) await h.put({ mailFrom: 's@example.com', recipients: [{ address: `u${i}@slow.example` }] }, BODY);
  for (let i = 0; i < 3; i++) await h.put({ mailFrom: 's@example.com', recipients: [{ address: `u${i}@fast.example` }] }, BODY);
  await h.scheduler.start();
  const run = h.scheduler.runDueOnce();
  for (let i = 0; i < 200 && ofType(h.events, 'recipient.delivered').length < 3; i++) await ticks(1);
  assert.equal(ofType(h.events, 'recipient.delivered').length, 3, 'fast mail delivered while slow mail waits');
  assert.equal(h.agent.maxPerKey.get('mx:slow.example:25'), 2);
  open();
  await run;
  assert.equal(ofType(h.events, 'recipient.delivered').length, 13);
  await h.scheduler.stop(0);
});

test('dispatcher hands out slots round-robin across destinations', async () => {
  const d = new Dispatcher(1, 1);
  const order: string[] = [];
  const job = (name: string) => async () => { order.push(name); await ticks(1); };
  const all = [
    d.run('A', job('A1')), d.run('A', job('A2')), d.run('A', job('A3')),
    d.run('B', job('B1')), d.run('C', job('C1')), d.run('B', job('B2')),
  ];
  await Promise.all(all);
  assert.deepEqual(order, ['A1', 'A2', 'B1', 'C1', 'A3', 'B2']);
  assert.equal(d.active(), 0);
});

test('dispatcher: cancelWaiting resolves waiting jobs with CANCELLED; a rejecting task frees its slot', async () => {
  const d = new Dispatcher(1, 1);
  let release!: () => void;
  const first = d.run('A', () => new Promise<string>((r) => { release = () => r('done'); }));
  const second = d.run('B', async () => 'never');
  assert.equal(d.waitingCount(), 1);
  d.cancelWaiting();
  assert.equal(await second, CANCELLED);
  release();
  assert.equal(await first, 'done');
  await assert.rejects(d.run('A', async () => { throw new Error('boom'); }), /boom/);
  assert.equal(await d.run('A', async () => 7), 7);
  assert.throws(() => new Dispatcher(0, 1), RangeError);
});

test('dispatcher: within a destination, flows (senders) take turns; a bulk flow does not hold back another', async () => {
  const d = new Dispatcher(1, 1);
  const order: string[] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => { release = r; });
  const first = d.run('gmail', () => gate, 'bulk');
  const jobs: Promise<unknown>[] = [first];
  for (let i = 0; i < 5; i++) jobs.push(d.run('gmail', async () => { order.push(`bulk${i}`); }, 'bulk'));
  jobs.push(d.run('gmail', async () => { order.push('alert'); }, 'app'));
  release();
  await Promise.all(jobs);
  assert.deepEqual(order, ['bulk0', 'alert', 'bulk1', 'bulk2', 'bulk3', 'bulk4'], 'the other sender goes second, not last');
});

test('dispatcher: shedding takes the newest work of the longest flow first', async () => {
  const d = new Dispatcher(1, 1);
  let release!: () => void;
  const gate = new Promise<void>((r) => { release = r; });
  const running = d.run('x', () => gate, 'bulk');
  const bulk = Array.from({ length: 6 }, (_, i) => d.run('x', async () => `bulk${i}`, 'bulk'));
  const app = [d.run('x', async () => 'app0', 'app'), d.run('x', async () => 'app1', 'app')];
  assert.equal(d.shed('x', 4), 4);
  release();
  await running;
  const got = await Promise.all([...bulk, ...app]);
  assert.deepEqual(got.map((v) => (typeof v === 'symbol' ? 'shed' : v)), ['bulk0', 'bulk1', 'shed', 'shed', 'shed', 'shed', 'app0', 'app1']);
});

test('slow start: a new destination starts at the initial window, grows with deliveries that reached it, shrinks with failed connections', async () => {
  const { ConcurrencyWindows } = await import('../../../src/scheduler/concurrency-window.js');
  let now = 0;
  const w = new ConcurrencyWindows({ initial: () => 2, now: () => now, idleMs: 60_000 });
  assert.equal(w.limit('k', 10), 2);
  assert.equal(w.limit('k', 1), 1, 'never above the cap');
  for (let i = 0; i < 3; i++) w.feedback('k', true, 10); // 2 -> 2.5 -> 2.9 -> 3.24
  assert.equal(w.limit('k', 10), 3, 'one more after about a window-full of deliveries');
  for (let i = 0; i < 200; i++) w.feedback('k', true, 10);
  assert.equal(w.limit('k', 10), 10, 'up to the cap, not past it');
  w.feedback('k', false, 10);
  assert.equal(w.limit('k', 10), 9);
  for (let i = 0; i < 20; i++) w.feedback('k', false, 10);
  assert.equal(w.limit('k', 10), 1, 'never below one');
  now += 60_001;
  assert.equal(w.limit('k', 10), 2, 'forgotten when idle: slow again');
});
