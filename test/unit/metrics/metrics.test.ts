/**
 * Metrics from a real EventBus fed by a MemoryQueueStore's outbox (events as the store commits
 * them), read back through the strict Prometheus text parser (test/helpers/prom-text.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyLiveConfig } from '../../../src/config/live.js';
import { validateConfig } from '../../../src/config/load.js';
import { EventBus } from '../../../src/events/bus.js';
import type { EventRecord } from '../../../src/events/record.js';
import { createMetrics, type MetricsDeps } from '../../../src/metrics/metrics.js';
import { nextHopClass, replyClass, rejectStage, LabelSet } from '../../../src/metrics/labels.js';
import { ConnectionLimiter } from '../../../src/smtpd/connection-limiter.js';
import { observe } from '../../../src/core/fixed-histogram.js';
import { newStats } from '../../../src/spool/sqlite/writer-protocol.js';
import { MemoryQueueStore } from '../../helpers/memory-store.js';
import { assertBoundedLabels, parsePromText } from '../../helpers/prom-text.js';
import { commitOne, makeStore, tempDir } from '../spool/helpers.js';

/** A bus wired to a memory store as main.ts wires the real one. */
function wired(): { bus: EventBus; store: MemoryQueueStore } {
  const bus = new EventBus();
  bus.setErrorHandler((err) => { throw err; });
  const store = new MemoryQueueStore();
  store.setEventListener((list) => { for (const e of list) bus.emit(e); });
  return { bus, store };
}

const at = 1_700_000_000_000;
const smtp = (listener: string) => ({ kind: 'smtp', listener, clientAddress: '192.0.2.7' });

function outcome(type: EventRecord['type'], queueId: string, recipient: string, nextHop: string | undefined, extra: Partial<EventRecord> = {}): EventRecord {
  return { type, at, queueId, recipient, ...(nextHop ? { nextHop } : {}), attempt: 1, durationMs: 120, delayMs: 2500, dsn: '2.0.0', reply: '250 ok', ...extra };
}

test('labels: next-hop class, reply class, stage, bounded set', () => {
  assert.equal(nextHopClass('mx:example.com:25'), 'mx');
  assert.equal(nextHopClass('host:127.0.0.1:2525'), 'relay');
  assert.equal(nextHopClass('relay:[smtp.example.net]:587'), 'relay');
  assert.equal(nextHopClass('local:'), 'local');
  assert.equal(nextHopClass(undefined), 'none');
  assert.equal(nextHopClass('lmtp:unix:/x'), 'other');
  assert.equal(nextHopClass('example.com'), 'other');
  assert.equal(replyClass('550 5.7.1 no'), '5xx');
  assert.equal(replyClass('452 4.3.1 full'), '4xx');
  assert.equal(replyClass(undefined), 'other');
  assert.equal(rejectStage('rcpt'), 'rcpt');
  assert.equal(rejectStage('user@example.com'), 'other');
  const s = new LabelSet(2, ['a']);
  assert.equal(s.get('b'), 'b');
  assert.equal(s.get('c'), 'other');
  assert.equal(s.get('a'), 'a');
  assert.equal(s.get('x'.repeat(100)), 'other');
  assert.throws(() => createMetrics({ events: new EventBus(), store: new MemoryQueueStore(), maxLabelValues: 0 }), RangeError);
});

test('counters and histograms follow the committed events, with bounded labels', async () => {
  const { bus, store } = wired();
  const m = createMetrics({ events: bus, store, listeners: ['mx', 'submission'], maxLabelValues: 3, defaultMetrics: false });
  try {
    const qid = 'Q7ABCDEFGHJKLM';
    await store.appendEvents([
      { type: 'message.received', at, queueId: qid, mailFrom: 'a@example.org', recipients: ['b@example.com'], origin: smtp('mx') },
      { type: 'message.received', at, queueId: 'Q7B', origin: smtp('mx') },
      { type: 'message.received', at, queueId: 'Q7C', origin: smtp('submission') },
      { type: 'message.received', at, queueId: 'Q7D', origin: { kind: 'api', apiKey: 'app-1' } },
      { type: 'message.received', at, queueId: 'Q7E', origin: { kind: 'dsn' } },
      // a third listener name still fits the cap of 3, a fourth does not
      { type: 'message.received', at, queueId: 'Q7F', origin: smtp('extra') },
      { type: 'message.received', at, queueId: 'Q7G', origin: smtp('one-too-many') },
      { type: 'message.received', at, queueId: 'Q7H', origin: { kind: 'carrier-pigeon' } },
    ]);
    await store.appendEvents([
      { type: 'message.rejected', at, reason: 'rcpt', reply: '550 5.7.1 Relay access denied', recipient: 'x@example.net', origin: smtp('mx') },
      { type: 'message.rejected', at, reason: 'rcpt', reply: '450 4.2.0 try later', recipient: 'y@example.net', origin: smtp('mx') },
      { type: 'message.rejected', at, reason: 'data', reply: '552 5.3.4 too big', origin: smtp('mx') },
      { type: 'message.rejected', at, reason: 'api', reply: '554 5.6.0 bad metadata', origin: { kind: 'api' } },
    ]);
    // One attempt with two recipients to one MX: two outcomes, one attempt duration.
    await store.appendEvents([
      outcome('recipient.delivered', qid, 'b@example.com', 'mx:example.com:25'),
      outcome('recipient.delivered', qid, 'c@example.com', 'mx:example.com:25'),
    ]);
    await store.appendEvents([
      outcome('recipient.relayed', 'Q7B', 'd@example.com', 'host:127.0.0.1:2525', { durationMs: 40 }),
      outcome('recipient.deferred', 'Q7C', 'e@example.com', 'host:127.0.0.1:2525', { durationMs: 30, reply: '451 later', dsn: '4.0.0' }),
      outcome('recipient.bounced', 'Q7D', 'f@example.com', 'mx:example.net:25', { durationMs: 20, reply: '550 no such user', dsn: '5.1.1', delayMs: 10, bounceClass: 'InvalidRecipient' }),
      outcome('recipient.expired', 'Q7E', 'g@example.com', undefined, { durationMs: undefined, delayMs: 5 * 86_400_000 }),
      { type: 'dsn.queued', at, queueId: 'Q7D', dsnQueueId: 'Q7Z', dsnKind: 'failure', recipient: 'a@example.org' },
      { type: 'dsn.queued', at, queueId: 'Q7C', dsnQueueId: 'Q7Y', dsnKind: 'delay', recipient: 'a@example.org' },
      { type: 'dsn.dropped', at, queueId: 'Q7E', dsnKind: 'failure', reason: 'no route' },
      { type: 'message.held', at, queueId: 'Q7F' },
      { type: 'recipient.suppressed', at, queueId: 'Q7F', recipient: 'h@example.com' },
    ]);
    m.observeAccept(3);
    m.observeAccept(40);
    m.observeAccept(-1); // ignored
    m.observeAccept(Number.NaN); // ignored

    const text = await m.render();
    const x = parsePromText(text);
    assert.equal(x.families.get('postline_messages_received_total')?.type, 'counter');
    assert.equal(x.value('postline_messages_received_total', { origin: 'mx' }), 2);
    assert.equal(x.value('postline_messages_received_total', { origin: 'submission' }), 1);
    assert.equal(x.value('postline_messages_received_total', { origin: 'api' }), 1);
    assert.equal(x.value('postline_messages_received_total', { origin: 'dsn' }), 1);
    assert.equal(x.value('postline_messages_received_total', { origin: 'extra' }), 1);
    assert.equal(x.value('postline_messages_received_total', { origin: 'other' }), 2, 'past the cap, and unknown kinds');
    assert.equal(x.sum('postline_messages_received_total'), 8);

    assert.equal(x.value('postline_messages_rejected_total', { stage: 'rcpt', class: '5xx' }), 1);
    assert.equal(x.value('postline_messages_rejected_total', { stage: 'rcpt', class: '4xx' }), 1);
    assert.equal(x.value('postline_messages_rejected_total', { stage: 'data', class: '5xx' }), 1);
    assert.equal(x.value('postline_messages_rejected_total', { stage: 'api', class: '5xx' }), 1);

    assert.equal(x.value('postline_recipients_total', { outcome: 'delivered', next_hop: 'mx' }), 2);
    assert.equal(x.value('postline_recipients_total', { outcome: 'relayed', next_hop: 'relay' }), 1);
    assert.equal(x.value('postline_recipients_total', { outcome: 'deferred', next_hop: 'relay' }), 1);
    assert.equal(x.value('postline_recipients_total', { outcome: 'bounced', next_hop: 'mx' }), 1);
    assert.equal(x.value('postline_recipients_total', { outcome: 'expired', next_hop: 'none' }), 1);
    assert.equal(x.value('postline_recipient_failures_total', { outcome: 'bounced', class: 'InvalidRecipient' }), 1);
    assert.equal(x.value('postline_recipient_failures_total', { outcome: 'deferred', class: 'none' }), 1, 'an event without a class');
    assert.equal(x.sum('postline_recipient_failures_total'), 3, 'deferred, bounced, expired; not delivered or relayed');
    assert.equal(x.value('postline_dsn_queued_total', { kind: 'failure' }), 1);
    assert.equal(x.value('postline_dsn_queued_total', { kind: 'delay' }), 1);
    assert.equal(x.value('postline_dsn_dropped_total', { kind: 'failure' }), 1);
    assert.equal(x.value('postline_events_total', { type: 'message.held' }), 1);
    assert.equal(x.value('postline_events_total', { type: 'recipient.suppressed' }), 1, 'reserved types are known');
    assert.equal(x.sum('postline_events_total'), 8 + 4 + 2 + 9);

    // Delivery delay: final outcomes only (the deferral is not one).
    assert.equal(x.value('postline_delivery_delay_seconds_count', { outcome: 'delivered' }), 2);
    assert.equal(x.value('postline_delivery_delay_seconds_sum', { outcome: 'delivered' }), 5);
    assert.equal(x.value('postline_delivery_delay_seconds_count', { outcome: 'deferred' }), undefined);
    assert.equal(x.value('postline_delivery_delay_seconds_bucket', { outcome: 'expired', le: '86400' }), 0);
    assert.equal(x.value('postline_delivery_delay_seconds_bucket', { outcome: 'expired', le: '432000' }), 1);
    // Attempt duration: the two-recipient attempt counts once; the expiry had no attempt.
    assert.equal(x.value('postline_delivery_attempt_seconds_count', { next_hop: 'mx' }), 2);
    assert.ok(Math.abs(x.value('postline_delivery_attempt_seconds_sum', { next_hop: 'mx' })! - 0.14) < 1e-9);
    assert.equal(x.value('postline_delivery_attempt_seconds_count', { next_hop: 'relay' }), 2);
    assert.equal(x.value('postline_delivery_attempt_seconds_count', { next_hop: 'none' }), undefined);
    assert.equal(x.value('postline_accept_seconds_count'), 2);
    assert.equal(x.value('postline_accept_seconds_bucket', { le: '0.005' }), 1);
    assert.equal(x.value('postline_accept_seconds_bucket', { le: '0.05' }), 2);

    assertBoundedLabels(x.samples, [qid, 'Q7B', 'Q7Z', 'app-1']);
  } finally {
    m.close();
  }
});

test('gauges are read at scrape time: queue by state, scheduler, connections, store writer, webhooks', async () => {
  const { bus, store } = wired();
  const a = await store.put({ mailFrom: 'a@example.org', recipients: [{ address: 'b@example.com' }] }, 'Subject: a\r\n\r\na\r\n');
  await store.put({ mailFrom: 'a@example.org', recipients: [{ address: 'c@example.com' }] }, 'Subject: b\r\n\r\nb\r\n');
  const c = await store.put({ mailFrom: 'a@example.org', recipients: [{ address: 'd@example.com' }] }, 'Subject: c\r\n\r\nc\r\n');
  await store.setHold(c.id, true);
  await store.record(a.id, { updates: [], next: { attempts: 1, nextAttemptAt: Date.now() + 60_000, lastError: '451 later' } });

  const limiter = new ConnectionLimiter(() => ({ maxConnections: 10, maxConnectionsPerIp: 5 }));
  limiter.tryAcquire('192.0.2.1');
  limiter.tryAcquire('192.0.2.2');
  const sched = { scheduled: 7, activeMessages: 2, activeRequests: 3, waitingRequests: 1 };
  const writer = newStats();
  writer.transactions = 5; writer.syncedTransactions = 4; writer.idleSyncs = 2; writer.commits = 12; writer.writes = 20; writer.largestBatch = 6; writer.dirSyncs = 1;
  for (const s of [0.0003, 0.0008, 0.004, 3]) observe(writer.commitSeconds, s);
  for (const n of [1, 5, 6]) observe(writer.batchSize, n);
  let hooks: { name: string; backlog: number; failing: boolean }[] = [
    { name: 'crm', backlog: 12, failing: false }, { name: 'billing', backlog: 0, failing: true },
  ];
  let hookCalls = 0;
  const errors: string[] = [];
  const deps: MetricsDeps = {
    events: bus, store, scheduler: { stats: () => sched }, inbound: limiter,
    outbound: { connections: () => ({ open: 4, idle: 1 }) },
    commitStats: () => writer,
    webhookBacklog: async () => { hookCalls++; if (hooks.length === 0) throw new Error('side db closed'); return hooks; },
    onError: (_err, what) => errors.push(what),
    defaultMetrics: false,
  };
  const m = createMetrics(deps);
  try {
    let x = parsePromText(await m.render());
    assert.equal(x.families.get('postline_queue_messages')?.type, 'gauge');
    assert.equal(x.value('postline_queue_messages', { state: 'active' }), 1);
    assert.equal(x.value('postline_queue_messages', { state: 'deferred' }), 1);
    assert.equal(x.value('postline_queue_messages', { state: 'held' }), 1);
    assert.equal(x.value('postline_queue_messages', { state: 'quarantined' }), 0);
    assert.equal(x.value('postline_scheduler_messages', { state: 'scheduled' }), 7);
    assert.equal(x.value('postline_scheduler_messages', { state: 'active' }), 2);
    assert.equal(x.value('postline_delivery_requests', { state: 'active' }), 3);
    assert.equal(x.value('postline_delivery_requests', { state: 'waiting' }), 1);
    assert.equal(x.value('postline_inbound_connections'), 2);
    assert.equal(x.value('postline_outbound_connections', { state: 'busy' }), 3);
    assert.equal(x.value('postline_outbound_connections', { state: 'idle' }), 1);
    assert.equal(x.families.get('postline_store_transactions_total')?.type, 'counter');
    assert.equal(x.value('postline_store_transactions_total'), 5);
    assert.equal(x.value('postline_store_messages_committed_total'), 12);
    assert.equal(x.value('postline_store_synced_transactions_total'), 4);
    assert.equal(x.value('postline_store_idle_syncs_total'), 2);
    assert.equal(x.value('postline_store_writes_total'), 20);
    assert.equal(x.value('postline_store_dir_fsyncs_total'), 1);
    assert.equal(x.value('postline_store_commit_failures_total'), 0);
    assert.equal(x.value('postline_store_largest_batch_messages'), 6);
    assert.equal(x.families.get('postline_store_commit_seconds')?.type, 'histogram');
    assert.equal(x.value('postline_store_commit_seconds_bucket', { le: '0.00025' }), 0);
    assert.equal(x.value('postline_store_commit_seconds_bucket', { le: '0.0005' }), 1);
    assert.equal(x.value('postline_store_commit_seconds_bucket', { le: '0.001' }), 2);
    assert.equal(x.value('postline_store_commit_seconds_bucket', { le: '0.005' }), 3);
    assert.equal(x.value('postline_store_commit_seconds_bucket', { le: '2.5' }), 3);
    assert.equal(x.value('postline_store_commit_seconds_bucket', { le: '+Inf' }), 4);
    assert.equal(x.value('postline_store_commit_seconds_count'), 4);
    assert.ok(Math.abs(x.value('postline_store_commit_seconds_sum')! - 3.0051) < 1e-9);
    assert.equal(x.value('postline_store_batch_messages_bucket', { le: '1' }), 1);
    assert.equal(x.value('postline_store_batch_messages_bucket', { le: '4' }), 1);
    assert.equal(x.value('postline_store_batch_messages_bucket', { le: '8' }), 3);
    assert.equal(x.value('postline_store_batch_messages_sum'), 12);
    assert.equal(x.value('postline_webhook_backlog_events', { endpoint: 'crm' }), 12);
    assert.equal(x.value('postline_webhook_backlog_events', { endpoint: 'billing' }), 0);
    assert.equal(x.value('postline_webhook_failing', { endpoint: 'billing' }), 1);
    assert.equal(x.value('postline_webhook_failing', { endpoint: 'crm' }), 0);
    assert.equal(hookCalls, 1, 'one backlog read per scrape for both gauges');

    // Values follow the sources at the next scrape; a removed endpoint disappears.
    limiter.release('192.0.2.1');
    sched.scheduled = 0;
    writer.transactions = 9;
    hooks = [{ name: 'crm', backlog: 3, failing: false }];
    await store.setHold(c.id, false);
    await new Promise((r) => setImmediate(r));
    x = parsePromText(await m.render());
    assert.equal(x.value('postline_inbound_connections'), 1);
    assert.equal(x.value('postline_scheduler_messages', { state: 'scheduled' }), 0);
    assert.equal(x.value('postline_store_transactions_total'), 9);
    assert.equal(x.value('postline_queue_messages', { state: 'held' }), 0);
    assert.equal(x.value('postline_webhook_backlog_events', { endpoint: 'crm' }), 3);
    assert.equal(x.value('postline_webhook_backlog_events', { endpoint: 'billing' }), undefined);

    // A failing source is reported; the scrape still answers.
    hooks = [];
    await new Promise((r) => setImmediate(r));
    x = parsePromText(await m.render());
    assert.ok(errors.includes('webhook backlog'));
    assert.equal(x.value('postline_inbound_connections'), 1);
  } finally {
    m.close();
  }
});

test('default process metrics are on the private registry; close() unsubscribes and empties it', async () => {
  const { bus, store } = wired();
  const m = createMetrics({ events: bus, store });
  assert.equal(m.contentType, 'text/plain; version=0.0.4; charset=utf-8');
  const x = parsePromText(await m.render());
  for (const name of ['process_cpu_user_seconds_total', 'process_resident_memory_bytes', 'nodejs_eventloop_lag_seconds', 'nodejs_eventloop_lag_p99_seconds', 'nodejs_heap_size_used_bytes']) {
    assert.ok(x.families.has(name), `${name} present`);
  }
  m.close();
  m.close();
  await store.appendEvents([{ type: 'message.received', at, queueId: 'Q7A', origin: smtp('mx') }]);
  assert.equal((await m.render()).trim(), '');
  // a second instance has its own registry (no "already registered")
  const again = createMetrics({ events: bus, store, defaultMetrics: false });
  await store.appendEvents([{ type: 'message.received', at, queueId: 'Q7B', origin: smtp('mx') }]);
  assert.equal(parsePromText(await again.render()).value('postline_messages_received_total', { origin: 'mx' }), 1);
  again.close();
});

test('the SQLite writer times its durable commits and counts messages per batch', async () => {
  const { dir, cleanup } = await tempDir();
  const store = makeStore(dir);
  try {
    await store.open();
    const before = store.commitStats();
    assert.equal(before.commitSeconds.count, 1, 'one durable transaction at open (it makes what the database holds durable)');
    await Promise.all(Array.from({ length: 20 }, (_, i) => commitOne(store, Buffer.from(`Subject: ${i}\r\n\r\nbody ${i}\r\n`))));
    const s = store.commitStats();
    assert.equal(s.commits, 20);
    assert.equal(s.batchSize.sum, 20, 'every new message counted in one batch');
    assert.ok(s.batchSize.count >= 1 && s.batchSize.count <= 20);
    assert.ok(s.commitSeconds.count >= s.batchSize.count, 'each durable transaction timed');
    assert.ok(s.commitSeconds.sum > 0 && s.commitSeconds.sum < 60);
    assert.equal(s.commitSeconds.counts.reduce((a, b) => a + b, 0), s.commitSeconds.count);
    const m = createMetrics({ events: new EventBus(), store, commitStats: () => store.commitStats(), defaultMetrics: false });
    const x = parsePromText(await m.render());
    assert.equal(x.value('postline_store_messages_committed_total'), 20);
    assert.equal(x.value('postline_store_batch_messages_sum'), 20);
    assert.equal(x.value('postline_store_commit_seconds_count'), s.commitSeconds.count);
    m.close();
  } finally {
    await store.close();
    await cleanup();
  }
});

test('listener series exist at 0 from the start; odd names are escaped, cut and capped', async () => {
  const { bus, store } = wired();
  const odd = 'we"ird\\name\nwith newline';
  const long = 'l'.repeat(80);
  const m = createMetrics({ events: bus, store, listeners: ['mx', odd, long], maxLabelValues: 3, defaultMetrics: false });
  try {
    let x = parsePromText(await m.render());
    assert.equal(x.value('postline_messages_received_total', { origin: 'mx' }), 0);
    assert.equal(x.value('postline_messages_received_total', { origin: 'api' }), 0);
    assert.equal(x.value('postline_messages_received_total', { origin: odd }), 0, 'escaped and read back');
    assert.equal(x.value('postline_messages_received_total', { origin: 'l'.repeat(64) }), 0, 'cut to 64 characters');
    await store.appendEvents([{ type: 'message.received', at, queueId: 'Q7A', origin: smtp(odd) }, { type: 'message.received', at, queueId: 'Q7B', origin: smtp('late') }]);
    x = parsePromText(await m.render());
    assert.equal(x.value('postline_messages_received_total', { origin: odd }), 1);
    assert.equal(x.value('postline_messages_received_total', { origin: 'other' }), 1);
  } finally {
    m.close();
  }
});

test('config: metrics on by default, bounded, and a change needs a restart', () => {
  const base = { hostname: 'mx.test', dataDir: '/tmp/x', listeners: [{ name: 'mx', port: 2525 }] };
  const running = validateConfig(base, '/tmp', {});
  assert.deepEqual(running.metrics, { enabled: true, maxLabelValues: 64 });
  assert.throws(() => validateConfig({ ...base, metrics: { maxLabelValues: 0 } }, '/tmp', {}), /metrics\.maxLabelValues/);
  assert.throws(() => validateConfig({ ...base, metrics: { enable: true } }, '/tmp', {}), /metrics/);
  const res = applyLiveConfig(running, validateConfig({ ...base, metrics: { enabled: false } }, '/tmp', {}));
  assert.deepEqual(res.needRestart, ['metrics']);
  assert.equal(running.metrics.enabled, true, 'kept');
});

test('the text parser is strict', () => {
  const ok = '# HELP a_total A.\n# TYPE a_total counter\na_total{x="q\\"\\\\\\n"} 1\n\n# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 2\nh_sum 3.5\nh_count 2\n';
  const x = parsePromText(ok + 'n1 Nan\nn2 -inf\nn3 1.5e-7 1700000000000\n');
  assert.ok(Number.isNaN(x.value('n1')!));
  assert.equal(x.value('n2'), -Infinity);
  assert.equal(x.samples.find((s) => s.name === 'n3')?.timestamp, 1700000000000);
  assert.equal(x.value('a_total'), 1);
  assert.equal(x.samples[0]!.labels.x, 'q"\\\n');
  for (const bad of [
    'a 1', // no final newline
    '# a comment\n',
    'a{x="1"} one\n',
    'a 0x10\n',
    'a Infinite\n',
    'a{x=1} 1\n',
    'a{x="1",x="2"} 1\n',
    'a{x="\\t"} 1\n',
    '1a 1\n',
    'a 1\n a 2\n',
    'a 1\na 1\n',
    '# TYPE a counter\n# TYPE a counter\n',
    '# TYPE a counter\na -1\n',
    '# TYPE a gauge\na 1\n# HELP a late\n',
    '# TYPE a wibble\n',
    '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_count 1\n',
    '# TYPE h histogram\nh_bucket{le="1"} 1\nh_count 1\n',
    '# TYPE h histogram\nh_bucket{le="+Inf"} 2\nh_count 1\n',
    '# TYPE h histogram\nh_bucket 1\n',
  ]) {
    assert.throws(() => parsePromText(bad), Error, JSON.stringify(bad));
  }
});
