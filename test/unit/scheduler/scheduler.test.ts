import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NoSuchMessageError } from '../../../src/scheduler/admin.js';
import { buildDsn } from '../../../src/bounce/dsn.js';
import type { RecipientResult } from '../../../src/delivery/types.js';
import { BODY, HEADERS, all, harness, ofType, ok, passedOn, permfail, relayed, tempfail, testConfig } from './harness.js';

const FROM = 'sender@example.com';

test('a delivered message is removed, with one request per next hop and one event per recipient', async () => {
  const h = harness();
  const m = await h.put({ mailFrom: FROM, recipients: [{ address: 'a@example.org' }, { address: 'b@example.org' }, { address: 'c@example.net' }], arrivedAt: h.clock.now() - 1500 }, BODY);
  await h.scheduler.start();
  await h.scheduler.runDueOnce();
  assert.equal(h.agent.calls.length, 2);
  const org = h.agent.calls.find((c) => c.nextHop.kind === 'mx' && c.nextHop.domain === 'example.org')!;
  assert.deepEqual(org.recipients.map((r) => r.idx), [0, 1]);
  assert.equal(org.queueId, m.id);
  assert.equal(org.size, Buffer.byteLength(BODY));
  assert.equal(await h.store.get(m.id), undefined);
  const delivered = ofType(h.events, 'recipient.delivered');
  assert.equal(delivered.length, 3);
  assert.equal(delivered[0]!.delayMs, 1500);
  assert.equal(delivered[0]!.remoteHost, 'mx.example.org[192.0.2.25]:25');
  assert.equal(delivered[0]!.attempt, 1);
  assert.equal(h.dsns.length, 0);
  assert.equal(h.store.calls.record, 2, 'one store write per request result');
  assert.equal(h.store.calls.remove, 1, 'removed in the last one');
  assert.equal(delivered[0]!.nextHop !== undefined, true);
  await h.scheduler.stop(0);
});

test('451 then 250 across two attempts with backoff', async () => {
  const h = harness({ script: (req, n) => req.recipients.map((r) => (n === 1 ? tempfail(r.idx) : ok(r.idx))) });
  const m = await h.put({ mailFrom: FROM, recipients: [{ address: 'a@example.org' }], arrivedAt: h.clock.now() }, BODY);
  await h.scheduler.start();
  await h.scheduler.runDueOnce();
  const after1 = (await h.store.get(m.id))!;
  assert.equal(after1.attempts, 1);
  assert.equal(after1.nextAttemptAt, h.clock.now() + 300_000);
  assert.equal(after1.recipients[0]!.status, 'pending');
  assert.equal(after1.lastError, '451 4.3.0 try again later');
  assert.equal(ofType(h.events, 'recipient.deferred').length, 1);
  assert.equal(ofType(h.events, 'recipient.deferred')[0]!.bounceClass, 'TransientFailure', 'the agent\'s class goes into the event');
  h.clock.advance(299_999);
  await h.scheduler.runDueOnce();
  assert.equal(h.agent.calls.length, 1, 'not due yet');
  h.clock.advance(1);
  await h.scheduler.runDueOnce();
  assert.equal(h.agent.calls.length, 2);
  assert.equal(await h.store.get(m.id), undefined);
  const d = ofType(h.events, 'recipient.delivered');
  assert.equal(d.length, 1);
  assert.equal(d[0]!.attempt, 2);
  assert.equal(d[0]!.delayMs, 300_000);
  await h.scheduler.stop(0);
});

test('enqueued schedules a new message at once', async () => {
  const h = harness();
  await h.scheduler.start();
  const m = await h.put({ mailFrom: FROM, recipients: [{ address: 'a@example.org' }], arrivedAt: h.clock.now() + 10 }, BODY);
  h.scheduler.enqueued(m);
  await h.scheduler.runDueOnce();
  assert.equal(h.agent.calls.length, 1);
  assert.equal(h.store.size, 0);
  await h.scheduler.stop(0);
});

test('550: failure DSN to the sender with the RFC 3464 fields; one DSN for all bounced recipients', async () => {
  const h = harness({ script: all(permfail) });
  const m = await h.put({
    mailFrom: FROM, envid: 'ENV1', recipients: [{ address: 'a@example.org', orcpt: { addrType: 'rfc822', address: 'A@example.org' } }, { address: 'b@example.org', notify: ['FAILURE', 'DELAY'] }],
    arrivedAt: h.clock.now() - 1000,
  }, BODY);
  await h.scheduler.start();
  await h.scheduler.runDueOnce();
  assert.equal(h.dsns.length, 1);
  const { input, envelope, id } = h.dsns[0]!;
  assert.deepEqual(envelope, { mailFrom: '', recipients: [{ address: FROM }], bodyType: '8BITMIME', smtputf8: false });
  assert.equal(input.to, FROM);
  assert.equal(input.reportingMta, 'mx.test');
  assert.equal(input.queueId, m.id);
  assert.equal(input.envid, 'ENV1');
  assert.equal(input.arrivedAt, m.arrivedAt);
  assert.equal(input.receivedFromMta, 'dns; client.example (192.0.2.9)');
  assert.equal(input.ret, 'FULL');
  assert.equal(input.original.toString(), BODY);
  assert.equal(input.recipients.length, 2);
  const r0 = input.recipients[0]!;
  assert.equal(r0.finalRecipient, 'a@example.org');
  assert.deepEqual(r0.originalRecipient, { addrType: 'rfc822', address: 'A@example.org' });
  assert.equal(r0.action, 'failed');
  assert.equal(r0.status, '5.1.1');
  assert.equal(r0.diagnostic, '550 5.1.1 <x> User unknown');
  assert.equal(r0.remote, true);
  assert.equal(r0.remoteMta, 'mx.example.org');
  assert.equal(r0.lastAttemptAt, h.clock.now());
  const q = ofType(h.events, 'dsn.queued');
  assert.deepEqual(q.map((e) => [e.queueId, e.dsnQueueId, e.dsnKind, e.recipient]), [[m.id, id, 'failure', FROM]]);
  assert.equal(ofType(h.events, 'recipient.bounced').length, 2);
  assert.deepEqual(ofType(h.events, 'recipient.bounced').map((e) => e.bounceClass), ['InvalidRecipient', 'InvalidRecipient']);
  assert.equal(h.store.size, 0);
});

test('no failure DSN for NOTIFY=NEVER or NOTIFY=SUCCESS only; RET=HDRS returns headers only', async () => {
  const h = harness({ script: all(permfail) });
  await h.put({ mailFrom: FROM, recipients: [{ address: 'a@example.org', notify: ['NEVER'] }, { address: 'b@example.org', notify: ['SUCCESS'] }] }, BODY);
  const m2 = await h.put({ mailFrom: FROM, ret: 'HDRS', recipients: [{ address: 'c@example.org' }] }, BODY);
  await h.scheduler.start();
  await h.scheduler.runDueOnce();
  assert.equal(h.dsns.length, 1);
  assert.equal(h.dsns[0]!.input.queueId, m2.id);
  assert.equal(h.dsns[0]!.input.ret, 'HDRS');
  assert.equal(h.dsns[0]!.input.original.toString(), HEADERS);
  assert.equal(h.store.size, 0);
});

test('success DSN for NOTIFY=SUCCESS: delivered and relayed, headers only by default', async () => {
  const h = harness({ script: (req) => req.recipients.map((r) => (r.idx === 0 ? ok(r.idx) : relayed(r.idx))) });
  await h.put({ mailFrom: FROM, recipients: [{ address: 'a@example.org', notify: ['SUCCESS', 'FAILURE'] }, { address: 'b@example.org', notify: ['SUCCESS'] }, { address: 'c@example.org' }] }, BODY);
  await h.scheduler.start();
  await h.scheduler.runDueOnce();
  assert.equal(h.dsns.length, 1);
  const { input } = h.dsns[0]!;
  assert.deepEqual(input.recipients.map((r) => [r.finalRecipient, r.action, r.status]), [['a@example.org', 'delivered', '2.0.0'], ['b@example.org', 'relayed', '2.0.0']]);
  assert.equal(input.ret, 'HDRS');
  assert.equal(input.original.toString(), HEADERS);
  assert.equal(ofType(h.events, 'dsn.queued')[0]!.dsnKind, 'success');
  assert.equal(ofType(h.events, 'recipient.relayed').length, 2);
  assert.equal(ofType(h.events, 'recipient.delivered').length, 1);
});

test('issue 15 item 1: no success DSN when the agent passed NOTIFY on to a hop with DSN; relayed ones still get one', async () => {
  const h = harness({ script: (req) => req.recipients.map((r) => (r.idx === 0 ? passedOn(r.idx) : relayed(r.idx))) });
  const m = await h.put({ mailFrom: FROM, recipients: [{ address: 'a@example.org', notify: ['SUCCESS', 'FAILURE'] }, { address: 'b@example.org', notify: ['SUCCESS'] }] }, BODY);
  await h.scheduler.start();
  await h.scheduler.runDueOnce();
  assert.equal(h.dsns.length, 1, 'one DSN, about the relayed recipient only');
  assert.deepEqual(h.dsns[0]!.input.recipients.map((r) => [r.finalRecipient, r.action]), [['b@example.org', 'relayed']]);
  assert.equal(h.store.size, 0, 'nothing owed is left behind');
  const only = harness({ script: all(passedOn) });
  await only.put({ mailFrom: FROM, recipients: [{ address: 'a@example.org', notify: ['SUCCESS'] }] }, BODY);
  await only.scheduler.start();
  await only.scheduler.runDueOnce();
  assert.equal(only.dsns.length, 0);
  assert.equal(only.store.size, 0);
  assert.ok(m.id);
});

test('expiry: a deferral after maxQueueLifetimeMs expires the recipient with 4.4.7 and a failure DSN', async () => {
  const config = testConfig({ maxQueueLifetimeMs: 3_600_000, bounceQueueLifetimeMs: 600_000 });
  const h = harness({ config, script: all(tempfail) });
  const m = await h.put({ mailFrom: FROM, recipients: [{ address: 'a@example.org' }], arrivedAt: h.clock.now() - 3_600_001 }, BODY);
  const young = await h.put({ mailFrom: FROM, recipients: [{ address: 'b@example.org' }], arrivedAt: h.clock.now() - 700_000 }, BODY);
  const bounce = await h.put({ mailFrom: '', recipients: [{ address: 'c@example.org' }], arrivedAt: h.clock.now() - 700_000 }, BODY);
  await h.scheduler.start();
  await h.scheduler.runDueOnce();
  assert.equal(await h.store.get(m.id), undefined);
  assert.equal(await h.store.get(bounce.id), undefined, 'null reverse-path mail uses bounceQueueLifetimeMs');
  assert.ok(await h.store.get(young.id));
  const exp = ofType(h.events, 'recipient.expired');
  assert.deepEqual(exp.map((e) => [e.queueId, e.dsn]).sort(), [[m.id, '4.4.7'], [bounce.id, '4.4.7']].sort());
  assert.match(exp[0]!.reply ?? '', /message expired/);
  const mine = h.dsns.find((d) => d.input.queueId === m.id)!;
  assert.deepEqual(mine.input.recipients.map((r) => [r.action, r.status, r.diagnostic]), [['failed', '4.4.7', '451 4.3.0 try again later']]);
  const pm = h.dsns.find((d) => d.input.queueId === bounce.id)!;
  assert.equal(pm.input.to, 'postmaster@mx.test');
});

test('delay DSN is sent once per recipient after delayWarningMs', async () => {
  const config = testConfig({ delayWarningMs: 1000 });
  const h = harness({ config, script: all(tempfail) });
  const m = await h.put({ mailFrom: FROM, recipients: [{ address: 'a@example.org', notify: ['DELAY', 'FAILURE'] }, { address: 'b@example.org' }], arrivedAt: h.clock.now() }, BODY);
  await h.scheduler.start();
  await h.scheduler.runDueOnce();
  assert.equal(h.dsns.length, 0, 'not waited long enough');
  h.clock.advance(300_000);
  await h.scheduler.runDueOnce();
  assert.equal(h.dsns.length, 1);
  const { input } = h.dsns[0]!;
  assert.deepEqual(input.recipients.map((r) => [r.finalRecipient, r.action, r.status]), [['a@example.org', 'delayed', '4.3.0']]);
  assert.equal(input.recipients[0]!.willRetryUntil, m.arrivedAt + config.delivery.maxQueueLifetimeMs);
  assert.equal(input.ret, 'HDRS');
  assert.equal((await h.store.get(m.id))!.recipients[0]!.delayNotified, true);
  assert.equal(ofType(h.events, 'dsn.queued')[0]!.dsnKind, 'delay');
  h.clock.advance(600_000);
  await h.scheduler.runDueOnce();
  assert.equal(h.agent.calls.length, 3);
  assert.equal(h.dsns.length, 1, 'only once');
});

test('delay DSNs are off when delayWarningMs is 0', async () => {
  const h = harness({ config: testConfig({ delayWarningMs: 0 }), script: all(tempfail) });
  await h.put({ mailFrom: FROM, recipients: [{ address: 'a@example.org', notify: ['DELAY'] }], arrivedAt: h.clock.now() - 10 * 3_600_000 }, BODY);
  await h.scheduler.start();
  await h.scheduler.runDueOnce();
  assert.equal(h.dsns.length, 0);
});

test('double bounce goes to the postmaster; a failed bounce to the postmaster is dropped', async () => {
  const h = harness({ config: testConfig({}, { relay: { postmaster: 'pm@example.com' } }), script: all(permfail) });
  const b1 = await h.put({ mailFrom: '', recipients: [{ address: 'gone@example.org' }] }, BODY);
  const b2 = await h.put({ mailFrom: '', origin: { kind: 'dsn' }, recipients: [{ address: 'PM@example.com' }] }, BODY);
  await h.scheduler.start();
  await h.scheduler.runDueOnce();
  assert.equal(h.dsns.length, 1);
  assert.equal(h.dsns[0]!.input.queueId, b1.id);
  assert.equal(h.dsns[0]!.input.to, 'pm@example.com');
  assert.deepEqual(h.dsns[0]!.envelope.recipients, [{ address: 'pm@example.com' }]);
  assert.equal(h.dsns[0]!.envelope.mailFrom, '');
  const dropped = ofType(h.events, 'dsn.dropped');
  assert.deepEqual(dropped.map((e) => e.queueId), [b2.id]);
  assert.match(dropped[0]!.reason ?? '', /postmaster/);
});

test('doubleBounce=drop drops bounces of bounces with an event', async () => {
  const h = harness({ config: testConfig({ doubleBounce: 'drop' }), script: all(permfail) });
  const b = await h.put({ mailFrom: '', recipients: [{ address: 'gone@example.org' }] }, BODY);
  await h.scheduler.start();
  await h.scheduler.runDueOnce();
  assert.equal(h.dsns.length, 0);
  assert.deepEqual(ofType(h.events, 'dsn.dropped').map((e) => e.queueId), [b.id]);
  assert.equal(h.store.size, 0);
});

test('restart: a new Scheduler over the same store picks up deferred mail', async () => {
  const h = harness({ script: (req, n) => req.recipients.map((r) => (n === 1 ? tempfail(r.idx) : ok(r.idx))) });
  const m = await h.put({ mailFrom: FROM, recipients: [{ address: 'a@example.org' }] }, BODY);
  await h.scheduler.start();
  await h.scheduler.runDueOnce();
  await h.scheduler.stop(0);
  const s2 = h.restart();
  await s2.start();
  await s2.runDueOnce();
  assert.equal(h.agent.calls.length, 1, 'keeps the stored next attempt time');
  h.clock.advance(300_000);
  await s2.runDueOnce();
  assert.equal(h.agent.calls.length, 2);
  assert.equal(await h.store.get(m.id), undefined);
  await s2.stop(0);
});

test('hold, release, flush, flushOne and delete', async () => {
  const h = harness({ script: all(tempfail) });
  const a = await h.put({ mailFrom: FROM, recipients: [{ address: 'a@example.org' }] }, BODY);
  const b = await h.put({ mailFrom: FROM, recipients: [{ address: 'b@example.org' }] }, BODY);
  await h.scheduler.start();
  await h.scheduler.hold(a.id);
  assert.equal((await h.store.get(a.id))!.held, true);
  await h.scheduler.runDueOnce();
  assert.deepEqual(h.agent.calls.map((c) => c.queueId), [b.id], 'held message not tried');
  await h.scheduler.release(a.id);
  await h.scheduler.runDueOnce();
  assert.deepEqual(h.agent.calls.map((c) => c.queueId), [b.id, a.id]);
  assert.equal((await h.store.get(a.id))!.held, false);
  // both deferred now; flush makes them due without moving the clock
  assert.equal(await h.scheduler.flush(), 2);
  await h.scheduler.runDueOnce();
  assert.equal(h.agent.calls.length, 4);
  await h.scheduler.flushOne(b.id);
  await h.scheduler.runDueOnce();
  assert.equal(h.agent.calls.length, 5);
  await h.scheduler.hold(b.id);
  await assert.rejects(h.scheduler.flushOne(b.id), /on hold/);
  await h.scheduler.delete(b.id);
  assert.equal(await h.store.get(b.id), undefined);
  assert.deepEqual(ofType(h.events, 'message.deleted').map((e) => e.queueId), [b.id]);
  assert.equal(h.dsns.length, 0);
  assert.deepEqual(ofType(h.events, 'message.held').map((e) => e.queueId), [a.id, b.id]);
  assert.equal(ofType(h.events, 'message.released').length, 1);
  assert.equal(ofType(h.events, 'message.flushed').length, 3);
  const list = await h.scheduler.list();
  assert.deepEqual(list.map((s) => s.id), [a.id]);
  const shown = await h.scheduler.show(a.id, { body: true });
  assert.equal(shown.headers, HEADERS);
  assert.equal(Buffer.from(shown.bodyBase64!, 'base64').toString(), BODY);
  for (const op of [() => h.scheduler.show(b.id), () => h.scheduler.hold(b.id), () => h.scheduler.release(b.id), () => h.scheduler.delete(b.id), () => h.scheduler.flushOne(b.id)]) {
    await assert.rejects(op(), (e: unknown) => e instanceof NoSuchMessageError && e.message === 'no such message');
  }
  await h.scheduler.stop(0);
});

test('unreadable bodies are quarantined and other mail is still delivered', async () => {
  const h = harness();
  const bad1 = await h.put({ mailFrom: FROM, recipients: [{ address: 'a@example.org' }] }, BODY);
  const good = await h.put({ mailFrom: FROM, recipients: [{ address: 'b@example.org' }] }, BODY);
  const bad2 = await h.put({ mailFrom: FROM, recipients: [{ address: 'c@example.org' }] }, BODY);
  h.store.breakBody(bad1.id, 'missing');
  h.store.breakBody(bad2.id, 'stream-error');
  await h.scheduler.start();
  await h.scheduler.runDueOnce();
  assert.deepEqual(h.agent.calls.map((c) => c.queueId), [good.id]);
  assert.equal(await h.store.get(good.id), undefined);
  assert.deepEqual([...h.store.quarantined.keys()].sort(), [bad1.id, bad2.id].sort());
  assert.deepEqual(ofType(h.events, 'message.quarantined').map((e) => e.queueId).sort(), [bad1.id, bad2.id].sort());
  await h.scheduler.stop(0);
});

test('a body that fails while the agent reads it quarantines the message after recording results', async () => {
  const h = harness({
    script: async (req) => {
      const s = req.openBody();
      await new Promise<void>((resolve) => { s.on('error', () => resolve()); s.on('end', () => resolve()); s.resume(); });
      return req.recipients.map((r) => tempfail(r.idx));
    },
  });
  const m = await h.put({ mailFrom: FROM, recipients: [{ address: 'a@example.org' }] }, BODY);
  await h.scheduler.start();
  // probe passes, then the body breaks before the agent reads it
  const origOpen = h.store.openBody.bind(h.store);
  let n = 0;
  h.store.openBody = (id: string) => { n++; if (n === 2) h.store.breakBody(id, 'stream-error'); return origOpen(id); };
  await h.scheduler.runDueOnce();
  assert.ok(h.store.quarantined.has(m.id));
  assert.equal(ofType(h.events, 'recipient.deferred').length, 1);
});

test('routing errors: temporary defers, permanent bounces', async () => {
  const h = harness();
  const { PostlineError } = await import('../../../src/core/errors.js');
  const s = h.restart();
  (s as unknown as { ctx: { route: (a: string) => unknown } }).ctx.route = (a: string) => {
    throw a.startsWith('t') ? new PostlineError('ERR_DNS_TEMPORARY', 'dns timeout') : new PostlineError('ERR_DNS_NXDOMAIN', 'no such domain', { temporary: false });
  };
  await h.put({ mailFrom: FROM, recipients: [{ address: 't@example.org' }, { address: 'p@example.org' }] }, BODY);
  await s.start();
  await s.runDueOnce();
  assert.equal(h.agent.calls.length, 0);
  assert.equal(ofType(h.events, 'recipient.deferred').length, 1);
  assert.equal(ofType(h.events, 'recipient.bounced').length, 1);
  assert.equal(ofType(h.events, 'recipient.bounced')[0]!.bounceClass, 'BadDomain');
  assert.ok(ofType(h.events, 'recipient.deferred')[0]!.bounceClass);
  assert.equal(h.dsns.length, 1);
  await s.stop(0);
});

test('stop aborts in-flight deliveries after the grace period and resolves', async () => {
  const h = harness({
    script: (req) => new Promise((resolve) => {
      req.signal!.addEventListener('abort', () => resolve(req.recipients.map((r) => tempfail(r.idx))), { once: true });
    }),
  });
  const m = await h.put({ mailFrom: FROM, recipients: [{ address: 'a@example.org' }] }, BODY);
  await h.scheduler.start();
  const run = h.scheduler.runDueOnce();
  await new Promise((r) => setImmediate(r));
  assert.equal(h.agent.concurrent, 1);
  await h.scheduler.stop(5);
  await run;
  assert.equal(h.agent.concurrent, 0);
  const after = (await h.store.get(m.id))!;
  assert.equal(after.recipients[0]!.status, 'pending', 'aborted delivery stays pending and does not expire');
  h.scheduler.enqueued(after);
  assert.equal(h.scheduler.stats().scheduled, 0, 'no new work after stop');
});

test('deleting a message while it is being delivered aborts its round', async () => {
  const h = harness({
    script: (req) => new Promise((resolve) => {
      req.signal!.addEventListener('abort', () => resolve(req.recipients.map((r) => tempfail(r.idx))), { once: true });
    }),
  });
  const m = await h.put({ mailFrom: FROM, recipients: [{ address: 'a@example.org' }] }, BODY);
  await h.scheduler.start();
  const run = h.scheduler.runDueOnce();
  await new Promise((r) => setImmediate(r));
  await h.scheduler.delete(m.id);
  await run;
  assert.equal(h.store.size, 0);
  assert.equal(ofType(h.events, 'recipient.deferred').length, 0);
  assert.equal(ofType(h.events, 'message.deleted').length, 1);
  await h.scheduler.stop(0);
});

test('the real DSN builder accepts what the scheduler gives it', async () => {
  const h = harness({ script: all(permfail), build: buildDsn });
  await h.put({ mailFrom: FROM, recipients: [{ address: 'a@example.org' }] }, BODY);
  await h.scheduler.start();
  await h.scheduler.runDueOnce();
  assert.equal(h.dsns.length, 1);
  const text = h.dsns[0]!.body.toString();
  assert.match(text, /Reporting-MTA: dns; ?mx\.test/);
  assert.match(text, /Action: failed/);
  assert.match(text, /Status: 5\.1\.1/);
  assert.match(text, /Remote-MTA: dns; ?mx\.example\.org/);
  assert.match(text, /Subject: hello/);
});

test('sendAt: a scheduled message waits for its time; flush leaves it alone and flushOne says why', async () => {
  const h = harness({ script: all(ok) });
  const later = h.clock.now() + 3_600_000;
  const m = await h.put({ mailFrom: FROM, recipients: [{ address: 'a@example.org' }], meta: { sendAt: later } }, BODY);
  const now = await h.put({ mailFrom: FROM, recipients: [{ address: 'b@example.org' }] }, BODY);
  await h.scheduler.start();
  await h.scheduler.runDueOnce();
  assert.deepEqual(h.agent.calls.map((c) => c.queueId), [now.id], 'only the unscheduled one went');
  assert.equal(await h.scheduler.flush(), 0);
  await assert.rejects(h.scheduler.flushOne(m.id), (e: unknown) => (e as { code?: string }).code === 'ERR_MESSAGE_SCHEDULED');
  await h.scheduler.runDueOnce();
  assert.equal(h.agent.calls.length, 1, 'still waiting');
  h.clock.advance(3_600_001);
  await h.scheduler.runDueOnce();
  assert.deepEqual(h.agent.calls.map((c) => c.queueId), [now.id, m.id], 'sent at its time');
  await h.scheduler.stop(0);
});

test('operator actions on one message run one at a time: a flush and a hold at once leave it held, undelivered', async () => {
  const h = harness({ script: all(tempfail) });
  const m = await h.put({ mailFrom: FROM, recipients: [{ address: 'a@example.org' }] }, BODY);
  await h.scheduler.start();
  await h.scheduler.runDueOnce();
  assert.equal(h.agent.calls.length, 1, 'deferred once');
  for (let i = 0; i < 5; i++) {
    await Promise.all([h.scheduler.flushOne(m.id).catch(() => undefined), h.scheduler.hold(m.id)]);
    await h.scheduler.runDueOnce();
    assert.equal((await h.store.get(m.id))?.held, true);
    assert.equal(h.agent.calls.length, 1, 'never delivered while held');
    await h.scheduler.release(m.id);
    h.clock.advance(1);
  }
  await assert.rejects(h.scheduler.hold(m.id).then(() => h.scheduler.flushOne(m.id)), (e: unknown) => (e as { code?: string }).code === 'ERR_MESSAGE_HELD');
  await h.scheduler.stop(0);
});

test('an agent that names no bounce class (a local transport): the event gets the class of its reply', async () => {
  const full = (idx: number): RecipientResult => ({ idx, outcome: 'bounced', code: 552, dsnStatus: '5.2.2', diagnostic: '552 5.2.2 mailbox over quota', remote: false });
  const h = harness({ script: all(full) });
  await h.put({ mailFrom: FROM, recipients: [{ address: 'a@example.org', notify: ['NEVER'] }] }, BODY);
  await h.scheduler.start();
  await h.scheduler.runDueOnce();
  assert.deepEqual(ofType(h.events, 'recipient.bounced').map((e) => e.bounceClass), ['MailboxFull']);
  await h.scheduler.stop(0);
});
