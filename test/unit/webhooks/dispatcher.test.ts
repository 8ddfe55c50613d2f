/**
 * Webhook dispatchers against a real HTTP receiver on 127.0.0.1 that verifies every request with
 * the standardwebhooks library; cursors in a real SQLite side database; events from an in-test
 * ArrayEventSource (the queue store's outbox is wired in main.ts and tested in test/e2e).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { webhookSchema, type WebhookConfig } from '../../../src/config/schema.js';
import { WebhookManager } from '../../../src/webhooks/manager.js';
import { SqliteWebhookCursorStore } from '../../../src/webhooks/cursor-store.js';
import { ArrayEventSource } from '../../helpers/array-event-source.js';
import { WebhookReceiver, newSecret } from '../../helpers/webhook-receiver.js';
import { captureLogger } from '../spool/helpers.js';
import { waitFor } from '../../helpers/net.js';

interface Rig {
  receiver: WebhookReceiver;
  source: ArrayEventSource;
  cursors: SqliteWebhookCursorStore;
  dir: string;
  lines: Record<string, unknown>[];
  manager(): WebhookManager;
  endpoint(name: string, over?: Record<string, unknown>): WebhookConfig;
  done(): Promise<void>;
}

async function rig(): Promise<Rig> {
  const dir = await mkdtemp(join(tmpdir(), 'postline-hooks-'));
  const receiver = await new WebhookReceiver().listen();
  const source = new ArrayEventSource();
  const cursors = SqliteWebhookCursorStore.open(dir);
  const { logger, lines } = captureLogger();
  const managers: WebhookManager[] = [];
  return {
    receiver, source, cursors, dir, lines,
    manager() {
      const m = new WebhookManager({ source, cursors, logger, cursorFlushMs: 0 });
      source.onAppend = () => m.wake();
      managers.push(m);
      return m;
    },
    endpoint(name, over = {}) {
      const secret = newSecret();
      return webhookSchema.parse({
        name, url: receiver.endpoint(`/${name}`, secret), secret, allowPrivate: true,
        timeoutMs: 300, retry: { initialMs: 20, maxMs: 150, jitter: 0.2 }, pollMs: 50, ...over,
      });
    },
    async done() {
      for (const m of managers) await m.stop();
      await receiver.close();
      await cursors.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('one event per request, signed by Standard Webhooks; a new endpoint starts at the newest event; the cursor is stored', async () => {
  const r = await rig();
  try {
    r.source.appendMany(3); // history before the endpoint existed: not sent (from: now)
    const m = r.manager();
    m.start([r.endpoint('a')]);
    await waitFor('the cursor row', async () => (await r.cursors.get('a'))?.cursor === 3);
    const sent = r.source.append({ type: 'message.received', queueId: 'Q1', mailFrom: 'a@example.com', recipients: ['b@example.net'], size: 10, at: 1_700_000_000_123 }, { type: 'recipient.delivered', queueId: 'Q1', recipient: 'b@example.net', dsn: '2.0.0' });
    await waitFor('2 deliveries', () => r.receiver.ids('/a').length === 2);
    assert.deepEqual(r.receiver.ids('/a'), [4, 5]);
    assert.equal(r.receiver.forged, 0);
    const d0 = r.receiver.deliveries[0]!;
    assert.equal(d0.webhookId, '4');
    assert.ok(Math.abs(d0.timestamp - Date.now() / 1000) < 10, 'webhook-timestamp is seconds');
    assert.deepEqual(d0.payload, { type: 'message.received', timestamp: '2023-11-14T22:13:20.123Z', data: sent[0] });
    await waitFor('stored cursor 5', async () => (await r.cursors.get('a'))?.cursor === 5);
    const c = (await r.cursors.get('a'))!;
    assert.equal(c.delivered, 2);
    assert.ok(c.lastSuccessAt);
    const [st] = await m.status();
    assert.equal(st!.backlog, 0);
  } finally {
    await r.done();
  }
});

test('outage (refused, 500, hanging past the timeout, a redirect) and recovery: every event at least once, none forged, in order; failing is marked and cleared', async () => {
  const r = await rig();
  try {
    const m = r.manager();
    m.start([r.endpoint('a', { maxAgeMs: 250 })]);
    await waitFor('the cursor row', () => r.cursors.get('a'));
    r.source.appendMany(5);
    await waitFor('first 5', () => r.receiver.uniqueIds('/a').size === 5);
    const phases: Array<'down' | 'error' | 'hang' | 'redirect'> = ['down', 'error', 'hang', 'redirect'];
    for (const phase of phases) {
      await r.receiver.setMode(phase);
      r.source.appendMany(4, 'recipient.deferred');
      await sleep(350);
      const c = (await r.cursors.get('a'))!;
      assert.ok(c.lastError, `${phase}: lastError is recorded`);
      assert.ok(c.attempts > 0, `${phase}: attempts counted`);
    }
    const failed = (await r.cursors.get('a'))!;
    assert.ok(failed.failingSince, 'older than maxAgeMs: marked failing');
    const errors = r.lines.filter((l) => l.msg === 'webhook delivery failed').map((l) => String(l.error));
    assert.ok(errors.some((e) => /ECONNREFUSED/.test(e)), errors.join('; '));
    assert.ok(errors.some((e) => /^HTTP 500: receiver is broken right now/.test(e)));
    assert.ok(errors.some((e) => /no answer within 300 ms/.test(e)));
    assert.ok(errors.some((e) => /HTTP 302 \(redirects are not followed\)/.test(e)));
    assert.equal(r.receiver.requests.get('/elsewhere') ?? 0, 0, 'the redirect was not followed');
    assert.ok(r.lines.some((l) => l.msg?.toString().startsWith('webhook endpoint is failing')));
    await r.receiver.setMode('ok');
    await waitFor('all 21 events', () => r.receiver.uniqueIds('/a').size === 21, 10_000);
    assert.deepEqual([...r.receiver.uniqueIds('/a')].sort((a, b) => a - b), Array.from({ length: 21 }, (_, i) => i + 1));
    assert.ok(r.receiver.inOrder('/a'), 'first arrivals in id order');
    assert.equal(r.receiver.forged, 0);
    await waitFor('failing cleared', async () => { const c = await r.cursors.get('a'); return c?.cursor === 21 && c.failingSince === undefined && c.lastError === undefined && c.attempts === 0; });
  } finally {
    await r.done();
  }
});

test('one endpoint hanging does not delay another', async () => {
  const r = await rig();
  try {
    const m = r.manager();
    m.start([r.endpoint('slow', { timeoutMs: 5000 }), r.endpoint('fast')]);
    await waitFor('both cursor rows', async () => (await r.cursors.list()).length === 2);
    await r.receiver.setMode('hang', '/slow');
    const t0 = Date.now();
    for (let i = 0; i < 10; i++) r.source.appendMany(1);
    await waitFor('fast gets 10', () => r.receiver.uniqueIds('/fast').size === 10, 4000);
    const took = Date.now() - t0;
    assert.ok(took < 2000, `fast endpoint took ${took} ms while the slow one hangs`);
    assert.equal(r.receiver.requests.get('/slow'), 1, 'slow is stuck on its first request');
    assert.equal(r.receiver.uniqueIds('/slow').size, 0);
    const st = await m.status();
    assert.equal(st.find((s) => s.name === 'slow')!.state, 'sending');
    assert.equal(st.find((s) => s.name === 'slow')!.backlog, 10);
  } finally {
    await r.done();
  }
});

test('the cursor persists across a dispatcher restart: nothing lost, history not sent again', async () => {
  const r = await rig();
  try {
    const ep = r.endpoint('a');
    let m = r.manager();
    m.start([ep]);
    await waitFor('the cursor row', () => r.cursors.get('a'));
    r.source.appendMany(20);
    await waitFor('some delivered', () => r.receiver.uniqueIds('/a').size >= 5);
    await m.stop(); // mid-run: an in-flight request is aborted
    const stored = (await r.cursors.get('a'))!.cursor;
    assert.ok(stored >= 5, `stored cursor ${stored}`);
    const before = r.receiver.ids('/a').length;
    r.source.appendMany(10); // while stopped
    m = r.manager();
    m.start([ep]);
    await waitFor('all 30', () => r.receiver.uniqueIds('/a').size === 30, 10_000);
    const after = r.receiver.ids('/a').slice(before);
    assert.ok(after[0]! >= stored + 1 && after[0]! <= stored + 1, `resumed right after the stored cursor (${stored}), got ${after[0]}`);
    assert.ok(r.receiver.inOrder('/a'));
    assert.equal(r.receiver.forged, 0);
  } finally {
    await r.done();
  }
});

test('batch > 1: arrays of up to N events, webhook-id is the last id', async () => {
  const r = await rig();
  try {
    await r.receiver.setMode('down'); // let them pile up, then come back
    const m = r.manager();
    m.start([r.endpoint('b', { batch: 5 })]);
    await waitFor('the cursor row', () => r.cursors.get('b'));
    r.source.appendMany(12);
    await sleep(100);
    await r.receiver.setMode('ok');
    await waitFor('12 events', () => r.receiver.uniqueIds('/b').size === 12, 5000);
    const ok = r.receiver.deliveries.filter((d) => d.path === '/b' && d.status < 300);
    assert.deepEqual(ok.map((d) => d.ids), [[1, 2, 3, 4, 5], [6, 7, 8, 9, 10], [11, 12]]);
    for (const d of ok) {
      assert.ok(Array.isArray(d.payload));
      assert.equal(d.webhookId, String(d.ids[d.ids.length - 1]));
    }
    const single = r.source.appendMany(1);
    await waitFor('13', () => r.receiver.uniqueIds('/b').size === 13);
    const last = r.receiver.deliveries[r.receiver.deliveries.length - 1]!;
    assert.deepEqual(last.payload, [{ type: 'message.received', timestamp: new Date(single[0]!.at).toISOString(), data: single[0] }], 'a batch endpoint always gets an array');
    assert.equal(r.receiver.forged, 0);
  } finally {
    await r.done();
  }
});

test('type filter: only the chosen types are sent; the cursor still moves past the others', async () => {
  const r = await rig();
  try {
    const m = r.manager();
    m.start([r.endpoint('f', { events: ['recipient.*', 'message.held'] })]);
    await waitFor('the cursor row', () => r.cursors.get('f'));
    r.source.append({ type: 'message.received' }, { type: 'recipient.delivered' }, { type: 'message.held' }, { type: 'recipient.bounced' }, { type: 'dsn.queued' }, { type: 'message.deleted' });
    await waitFor('stored cursor at 6', async () => (await r.cursors.get('f'))?.cursor === 6);
    assert.deepEqual(r.receiver.ids('/f'), [2, 3, 4]);
    assert.equal((await r.cursors.get('f'))!.delivered, 3);
  } finally {
    await r.done();
  }
});

test('from: start sends retained history; events pruned before delivery are skipped with a warning and counted', async () => {
  const r = await rig();
  try {
    r.source.appendMany(3);
    r.source.prune(2); // retention already dropped 1 and 2 before the endpoint existed
    const ep = r.endpoint('h', { from: 'start' });
    let m = r.manager();
    m.start([ep]);
    await waitFor('3', () => r.receiver.uniqueIds('/h').has(3));
    r.source.appendMany(3); // 4..6
    await waitFor('6', () => r.receiver.uniqueIds('/h').has(6));
    assert.deepEqual(r.receiver.ids('/h'), [3, 4, 5, 6], 'history before a from-start endpoint is not a gap');
    assert.equal((await r.cursors.get('h'))!.skipped, 0);
    await m.stop();
    r.source.appendMany(4); // 7..10 while the dispatcher is stopped
    r.source.prune(8); // and retention drops 7 and 8 before it takes them
    m = r.manager();
    m.start([ep]);
    await waitFor('10', () => r.receiver.uniqueIds('/h').has(10), 5000);
    assert.deepEqual(r.receiver.ids('/h'), [3, 4, 5, 6, 9, 10]);
    await waitFor('skipped counted', async () => (await r.cursors.get('h'))?.skipped === 2);
    assert.ok(r.lines.some((l) => String(l.msg).includes('pruned by retention') && l.skipped === 2));
    assert.equal((await m.status())[0]!.skipped, 2);
  } finally {
    await r.done();
  }
});

test('reload: an added endpoint starts, a removed one stops and keeps its cursor, a changed one resumes at its cursor', async () => {
  const r = await rig();
  try {
    const a = r.endpoint('a');
    const b = r.endpoint('b');
    const m = r.manager();
    m.start([a]);
    await waitFor('a row', () => r.cursors.get('a'));
    r.source.appendMany(2);
    await waitFor('a has 2', () => r.receiver.uniqueIds('/a').size === 2);
    let res = await m.reload([a, b]);
    assert.deepEqual(res, { added: ['b'], removed: [], changed: [] });
    await waitFor('b row', () => r.cursors.get('b'));
    r.source.appendMany(1); // 3
    await waitFor('both have 3', () => r.receiver.uniqueIds('/a').has(3) && r.receiver.uniqueIds('/b').has(3));
    const a2 = { ...a, batch: 10 };
    res = await m.reload([a2]);
    assert.deepEqual(res, { added: [], removed: ['b'], changed: ['a'] });
    r.source.appendMany(2); // 4, 5
    await waitFor('a has 5', () => r.receiver.uniqueIds('/a').has(5));
    const lastA = r.receiver.deliveries.filter((d) => d.path === '/a').pop()!;
    assert.ok(Array.isArray(lastA.payload), 'the new batch setting is used');
    assert.ok(!r.receiver.uniqueIds('/b').has(4), 'b stopped');
    assert.equal((await r.cursors.get('b'))!.cursor, 3, 'b keeps its row');
    assert.deepEqual(r.receiver.ids('/a').filter((id) => id <= 3).length, 3, 'a did not resend history after the change');
  } finally {
    await r.done();
  }
});

test('backoff: waits double from retry.initialMs up to retry.maxMs; once failing, every retry.maxMs', async () => {
  const r = await rig();
  try {
    await r.receiver.setMode('error');
    const m = r.manager();
    m.start([r.endpoint('bo', { retry: { initialMs: 60, maxMs: 480, jitter: 0 }, maxAgeMs: 60_000 })]);
    await waitFor('the cursor row', () => r.cursors.get('bo'));
    r.source.appendMany(1);
    await waitFor('6 attempts', () => (r.receiver.requests.get('/bo') ?? 0) >= 6, 10_000);
    const at = r.receiver.deliveries.filter((d) => d.path === '/bo').map((d) => d.at);
    const gaps = at.slice(1, 6).map((t, i) => t - at[i]!);
    const want = [60, 120, 240, 480, 480];
    gaps.forEach((g, i) => assert.ok(g >= want[i]! - 5 && g < want[i]! + 300, `gap ${i}: ${g} ms, want about ${want[i]} (${gaps.join(', ')})`));
    assert.equal((await r.cursors.get('bo'))!.failingSince, undefined, 'not failing while younger than maxAgeMs');
  } finally {
    await r.done();
  }
});

test('the receiver\'s check is real: another secret, a changed body or an old timestamp is counted as forged', async () => {
  const r = await rig();
  try {
    const ep = r.endpoint('v');
    const { WebhookSigner } = await import('../../../src/webhooks/signing.js');
    const [e] = r.source.appendMany(1);
    const good = new WebhookSigner(ep.secret).sign([e!], false, Date.now());
    const post = (headers: Record<string, string>, body: string) => fetch(ep.url, { method: 'POST', headers, body });
    assert.equal((await post(good.headers, good.body)).status, 204);
    const other = new WebhookSigner(newSecret()).sign([e!], false, Date.now());
    assert.equal((await post(other.headers, other.body)).status, 401);
    assert.equal((await post(good.headers, good.body.replace('message.received', 'message.rejected'))).status, 401);
    const old = new WebhookSigner(ep.secret).sign([e!], false, Date.now() - 3600_000);
    assert.equal((await post(old.headers, old.body)).status, 401);
    assert.equal(r.receiver.forged, 3);
    assert.deepEqual(r.receiver.ids('/v'), [1]);
  } finally {
    await r.done();
  }
});
