/**
 * Traffic shaping in the scheduler (src/scheduler/shaping.ts) with the in-memory store, a scripted
 * agent and a manual clock: per-destination connections from a rule, message rates postponing
 * without attempts (each message looked at about twice, never busy), reply patterns that suspend
 * or throttle and end by themselves, operator suspend/resume kept across a restart, bounce by
 * domain and sender with DSNs, MX host suffix rules, and a reload of the rules.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StoreQueueAdmin } from '../../../src/control/offline.js';
import { executeRequest, parseRequest } from '../../../src/control/protocol.js';
import { MemoryDestinationStateStore } from '../../../src/scheduler/destination-store.js';
import type { DeliveryRequest, RecipientResult } from '../../../src/delivery/types.js';
import { BODY, harness, ok, ofType, tempfail, testConfig } from './harness.js';

const ticks = async (n: number): Promise<void> => { for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r)); };
const domainOf = (req: DeliveryRequest): string => (req.nextHop.kind === 'mx' ? req.nextHop.domain : req.nextHop.kind === 'host' ? req.nextHop.host : req.nextHop.kind);
const reply = (idx: number, text: string): RecipientResult => ({ idx, outcome: 'deferred', code: Number(text.slice(0, 3)), dsnStatus: text.slice(4, 10).trim(), diagnostic: text, remote: true, remoteMta: 'mx.test[192.0.2.1]:25' });
const GMAIL_421 = '421 4.7.28 [192.0.2.1] Our system has detected an unusual rate of unsolicited mail originating from your IP address. Mail sent from your IP address has been temporarily rate limited.';

test('a rule\'s maxConnections caps one destination; others keep the default', async () => {
  const h = harness({
    config: testConfig({ connectionsPerDestination: 10, shaping: [{ match: 'slow.example', maxConnections: 2 }] }),
    script: async (req) => { await ticks(3); return req.recipients.map((r) => ok(r.idx)); },
  });
  for (const d of ['slow.example', 'fast.example']) for (let i = 0; i < 6; i++) await h.put({ mailFrom: 's@example.com', recipients: [{ address: `u${i}@${d}` }] }, BODY);
  await h.scheduler.start();
  await h.scheduler.runDueOnce();
  assert.equal(h.agent.calls.length, 12);
  assert.equal(h.agent.maxPerKey.get('mx:slow.example:25'), 2);
  assert.ok(h.agent.maxPerKey.get('mx:fast.example:25')! > 2);
  assert.equal(h.agent.calls.find((c) => domainOf(c) === 'slow.example')!.shaping!.messagesPerConnection, 100, 'default messages per connection handed to the agent');
  await h.scheduler.stop(0);
});

test('messagesPerSecond: a backlog is postponed to reserved slots without attempts, each message tried once', async () => {
  const h = harness({ config: testConfig({ shaping: [{ match: 'rate.example', messagesPerSecond: 1 }] }), scheduler: { shortWaitMs: 0 } });
  const ids: string[] = [];
  for (let i = 0; i < 5; i++) ids.push((await h.put({ mailFrom: 's@example.com', recipients: [{ address: `u${i}@rate.example` }] }, BODY)).id);
  await h.put({ mailFrom: 's@example.com', recipients: [{ address: 'free@other.example' }] }, BODY);
  await h.scheduler.start();
  const t0 = h.clock.now();
  await h.scheduler.runDueOnce();
  assert.equal(h.agent.calls.length, 2, 'one token for rate.example, other mail unaffected');
  const waiting = (await Promise.all(ids.map((id) => h.store.get(id)))).filter((m) => m !== undefined);
  assert.equal(waiting.length, 4);
  for (const m of waiting) assert.equal(m!.attempts, 0, 'postponed without an attempt');
  assert.deepEqual(waiting.map((m) => m!.nextAttemptAt - t0).sort((a, b) => a - b), [1000, 2000, 3000, 4000], 'one slot each, a second apart');
  for (let step = 1; step <= 4; step++) {
    h.clock.advance(1000);
    await h.scheduler.runDueOnce();
    assert.equal(h.agent.calls.length, 2 + step, `after ${step} s`);
  }
  assert.equal(h.store.size, 0);
  const delivered = ofType(h.events, 'recipient.delivered').map((e) => e.recipient);
  assert.equal(new Set(delivered).size, 6, 'every message delivered exactly once');
  assert.equal(delivered.length, 6);
  await h.scheduler.stop(0);
});

test('a 421 4.7.28 reply suspends the destination: its mail waits without attempts, then resumes by itself', async () => {
  let answer421 = true;
  const h = harness({
    script: (req) => req.recipients.map((r) => (domainOf(req) === 'gm.example' && answer421 ? reply(r.idx, GMAIL_421) : ok(r.idx))),
  });
  const first = await h.put({ mailFrom: 's@example.com', recipients: [{ address: 'a@gm.example' }] }, BODY);
  await h.scheduler.start();
  await h.scheduler.runDueOnce();
  answer421 = false;
  assert.equal(h.agent.calls.length, 1);
  const [state] = await h.scheduler.listDestinations();
  assert.deepEqual([state!.destination, state!.state, state!.source, state!.until! - h.clock.now()], ['mx:gm.example:25', 'suspended', 'reply', 15 * 60_000]);
  assert.match(state!.reason, /4\.7\.28/);
  assert.equal(h.scheduler.stats().suspendedDestinations, 1);
  assert.equal(h.scheduler.destinations.dead(h.clock.now()).length, 0, 'a host that says "slow down" is not dead');
  const later = [];
  for (let i = 0; i < 3; i++) later.push(await h.put({ mailFrom: 's@example.com', recipients: [{ address: `b${i}@gm.example` }] }, BODY));
  const other = await h.put({ mailFrom: 's@example.com', recipients: [{ address: 'c@other.example' }] }, BODY);
  for (const m of [...later, other]) h.scheduler.enqueued(m);
  await h.scheduler.runDueOnce();
  assert.deepEqual(h.agent.calls.slice(1).map(domainOf), ['other.example'], 'only the other destination was tried');
  for (const m of later) assert.equal((await h.store.get(m.id))!.attempts, 0);
  // The first message's retry (5 min) falls inside the suspension: postponed too, not tried.
  h.clock.advance(6 * 60_000);
  await h.scheduler.runDueOnce();
  assert.equal(h.agent.calls.length, 2);
  h.clock.advance(10 * 60_000 + 31_000);
  await h.scheduler.runDueOnce();
  assert.equal(h.agent.calls.length, 6, 'all four delivered once the suspension ended');
  assert.equal(h.store.size, 0);
  assert.equal((await h.scheduler.listDestinations()).length, 0);
  assert.equal((await h.store.get(first.id)), undefined);
  await h.scheduler.stop(0);
});

test('a throttle pattern halves the connections, again for a later delivery, and ends by itself', async () => {
  const h = harness({
    config: testConfig({ connectionsPerDestination: 8, throttlePatterns: [{ match: '^421 4\\.7\\.0 too many', action: 'throttle', durationMs: 60_000 }] }),
    script: (req) => req.recipients.map((r) => reply(r.idx, '421 4.7.0 Too many concurrent connections')),
  });
  await h.put({ mailFrom: 's@example.com', recipients: [{ address: 'a@busy.example' }] }, BODY);
  await h.scheduler.start();
  await h.scheduler.runDueOnce();
  const key = 'mx:busy.example:25';
  assert.equal(h.scheduler.shaping.concurrency(key), 4);
  h.clock.advance(1000);
  await h.scheduler.flush();
  await h.scheduler.runDueOnce();
  assert.equal(h.scheduler.shaping.concurrency(key), 2, 'a delivery started after the cut cuts again');
  const [t] = await h.scheduler.listDestinations();
  assert.deepEqual([t!.state, t!.factor], ['throttled', 0.25]);
  h.clock.advance(61_000);
  h.scheduler.shaping.sweep(h.clock.now());
  assert.equal(h.scheduler.shaping.concurrency(key), 8, 'back to the rule after durationMs');
  await h.scheduler.stop(0);
});

test('operator suspend and resume, kept across a restart; a domain resume sends its mail at once', async () => {
  const states = new MemoryDestinationStateStore();
  const h = harness({ scheduler: { destinationStates: states } });
  await h.scheduler.start();
  const s = await h.scheduler.suspend('held.example');
  assert.deepEqual([s.destination, s.state, s.source, s.until], ['held.example', 'suspended', 'operator', undefined]);
  const m = await h.put({ mailFrom: 's@example.com', recipients: [{ address: 'a@held.example' }] }, BODY);
  h.scheduler.enqueued(m);
  await h.scheduler.runDueOnce();
  assert.equal(h.agent.calls.length, 0);
  assert.equal((await h.store.get(m.id))!.attempts, 0);
  await h.scheduler.resume('held.example');
  await h.scheduler.runDueOnce();
  assert.equal(h.agent.calls.length, 1, 'resumed: tried at once');
  await assert.rejects(h.scheduler.resume('held.example'), /neither suspended nor throttled/);
  await assert.rejects(h.scheduler.suspend('not a destination'), /bad destination/);
  // Suspended for an hour, then a restart: still suspended.
  await h.scheduler.suspend('[10.0.0.1]:2525', { forMs: 3_600_000 });
  await h.scheduler.suspend('held.example');
  const m2 = await h.put({ mailFrom: 's@example.com', recipients: [{ address: 'b@held.example' }] }, BODY);
  h.scheduler.enqueued(m2);
  await h.scheduler.runDueOnce();
  await h.scheduler.stop(0);
  assert.equal((await states.list()).length, 2);
  const s2 = h.restart();
  await s2.start();
  assert.deepEqual((await s2.listDestinations()).map((d) => d.destination).sort(), ['[10.0.0.1]:2525', 'held.example']);
  h.clock.advance(400_000);
  await s2.runDueOnce();
  assert.equal(h.agent.calls.length, 1, 'not tried after the restart either');
  await s2.resume('held.example');
  await s2.runDueOnce();
  assert.equal(h.agent.calls.length, 2, 'the domain resume made it due');
  assert.equal(h.store.size, 0);
  assert.deepEqual((await states.list()).map((r) => r.destination), ['[10.0.0.1]:2525']);
  await s2.stop(0);
});

test('bounce by domain and by sender: 5.0.0 "bounced by the administrator", a DSN, other recipients kept', async () => {
  const h = harness({ script: (req) => req.recipients.map((r) => tempfail(r.idx)) });
  const m1 = await h.put({ mailFrom: 's@example.com', recipients: [{ address: 'a@bounce.example' }, { address: 'b@keep.example' }] }, BODY);
  const m2 = await h.put({ mailFrom: 'x@sender.example', recipients: [{ address: 'c@keep.example', notify: ['NEVER'] }] }, BODY);
  await h.scheduler.start();
  await h.scheduler.runDueOnce();
  assert.equal(await h.scheduler.bounce({ domain: '@Bounce.Example' }), 1);
  const after = (await h.store.get(m1.id))!;
  assert.deepEqual(after.recipients.map((r) => r.status), ['bounced', 'pending']);
  assert.match(after.recipients[0]!.lastReply!, /^554 5\.0\.0 message bounced by the administrator$/);
  assert.equal(h.dsns.length, 1);
  assert.deepEqual(h.dsns[0]!.input.recipients.map((r) => [r.finalRecipient, r.status, r.action]), [['a@bounce.example', '5.0.0', 'failed']]);
  assert.equal(await h.scheduler.bounce({ sender: 'x@sender.example' }), 1);
  assert.equal(await h.store.get(m2.id), undefined, 'nothing left: removed (NOTIFY=NEVER: no DSN)');
  assert.equal(h.dsns.length, 1);
  assert.equal(ofType(h.events, 'recipient.bounced').length, 2);
  assert.equal(await h.scheduler.bounce({ sender: 'nobody@example.com' }), 0);
  await assert.rejects(h.scheduler.bounce({}), /needs a domain or a sender/);
  await h.scheduler.stop(0);
});

test('a rule by MX host suffix: domains hosted there share its limit; the MX names are looked up once', async () => {
  const asked: string[] = [];
  const h = harness({
    config: testConfig({ shaping: [{ match: '*.protection.outlook.test', maxConnections: 1 }] }),
    script: async (req) => { await ticks(3); return req.recipients.map((r) => ok(r.idx)); },
    scheduler: { mxNames: async (d) => { asked.push(d); return d === 'contoso.example' ? ['contoso-example.mail.protection.outlook.test.'] : [`mx.${d}`]; } },
  });
  for (const d of ['contoso.example', 'plain.example']) for (let i = 0; i < 4; i++) await h.put({ mailFrom: 's@example.com', recipients: [{ address: `u${i}@${d}` }] }, BODY);
  await h.scheduler.start();
  await h.scheduler.runDueOnce();
  assert.equal(h.agent.calls.length, 8);
  assert.equal(h.agent.maxPerKey.get('mx:contoso.example:25'), 1);
  assert.ok(h.agent.maxPerKey.get('mx:plain.example:25')! > 1);
  assert.deepEqual(asked.sort(), ['contoso.example', 'plain.example']);
  await h.scheduler.stop(0);
});

test('a new rules array (SIGHUP) applies to the next delivery', async () => {
  const h = harness({ script: async (req) => { await ticks(3); return req.recipients.map((r) => ok(r.idx)); } });
  await h.scheduler.start();
  const send = async (n: number) => {
    for (let i = 0; i < n; i++) h.scheduler.enqueued(await h.put({ mailFrom: 's@example.com', recipients: [{ address: `u${i}@r.example` }] }, BODY));
    await h.scheduler.runDueOnce();
  };
  await send(5);
  assert.equal(h.agent.maxPerKey.get('mx:r.example:25'), 5);
  h.config.delivery.shaping = [{ match: 'r.example', maxConnections: 1, messagesPerConnection: 7 }];
  h.agent.maxPerKey.clear();
  await send(5);
  assert.equal(h.agent.maxPerKey.get('mx:r.example:25'), 1);
  assert.equal(h.agent.calls.at(-1)!.shaping!.messagesPerConnection, 7);
  await h.scheduler.stop(0);
});

test('control requests and the offline admin: destinations, suspend, resume, bounce', async () => {
  assert.deepEqual(parseRequest('{"op":"suspend","destination":"example.com","forMs":60000}'), { op: 'suspend', id: undefined, body: undefined, destination: 'example.com', forMs: 60000 });
  assert.deepEqual(parseRequest('{"op":"bounce","sender":""}'), { op: 'bounce', id: undefined, body: undefined, sender: '' });
  for (const [line, error] of [
    ['{"op":"suspend"}', /suspend needs a destination/], ['{"op":"suspend","destination":"a b"}', /needs a destination/],
    ['{"op":"suspend","destination":"a.test","forMs":-1}', /forMs/], ['{"op":"resume","destination":"a.test","forMs":5}', /forMs applies to suspend/],
    ['{"op":"bounce"}', /bounce needs a domain or a sender/], ['{"op":"list","destination":"a.test"}', /destination applies/],
  ] as const) assert.match((parseRequest(line) as { error: string }).error, error, line);
  const h = harness();
  const states = new MemoryDestinationStateStore();
  const admin = new StoreQueueAdmin(h.store, h.clock, states);
  const m = await h.put({ mailFrom: 's@example.com', recipients: [{ address: 'a@gone.example' }] }, BODY);
  const r = await executeRequest(admin, { op: 'suspend', destination: '*.Outlook.com', forMs: 60_000 });
  assert.deepEqual(r.ok && (r.result as { destination: string }).destination, '.outlook.com');
  assert.equal(((await executeRequest(admin, { op: 'destinations' })) as { result: unknown[] }).result.length, 1);
  assert.deepEqual(await executeRequest(admin, { op: 'resume', destination: 'nothing.example' }), { ok: false, error: 'nothing.example is neither suspended nor throttled', code: 'ERR_NOT_SUSPENDED' });
  assert.equal((await executeRequest(admin, { op: 'resume', destination: '.outlook.com' })).ok, true);
  assert.deepEqual(await executeRequest(admin, { op: 'bounce', domain: 'gone.example' }), { ok: true, result: { bounced: 1 } });
  const after = (await h.store.get(m.id))!;
  assert.equal(after.recipients[0]!.status, 'bounced');
  assert.equal(after.recipients[0]!.dsnOwed, 'failure', 'the DSN is owed: the server sends it when it starts');
  // The server starts: it sends the owed DSN and removes the message.
  await h.scheduler.start();
  await h.scheduler.runDueOnce();
  assert.equal(h.dsns.length, 1);
  assert.equal(await h.store.get(m.id), undefined);
  await h.scheduler.stop(0);
});
