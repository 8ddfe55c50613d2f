/**
 * Metrics end to end: a real Postline (in this process, so the test reads `running.metrics`)
 * takes N messages over SMTP and delivers them to Postfix's smtp-sink on loopback; the
 * Prometheus text is parsed strictly and its counters agree with what the sink received; no label
 * value holds a queue ID or an address.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { validateConfig } from '../../src/config/load.js';
import { startPostline, type RunningPostline } from '../../src/main.js';
import { SmtpSink, SMTP_SINK } from '../helpers/smtp-sink.js';
import { RawSmtp } from '../helpers/raw-smtp.js';
import { freePort, waitFor } from '../helpers/net.js';
import { assertBoundedLabels, parsePromText, type Exposition } from '../helpers/prom-text.js';

const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
});

const N = 12;

async function scrape(running: RunningPostline): Promise<Exposition> {
  assert.ok(running.metrics, 'metrics enabled by default');
  return parsePromText(await running.metrics.render());
}

test('counters agree with the sink; queue, connections and store figures make sense; labels stay bounded', { skip: SMTP_SINK ? false : 'smtp-sink not installed' }, async () => {
  const sink = await new SmtpSink().start();
  cleanups.push(() => sink.cleanup());
  const dir = mkdtempSync(join(tmpdir(), 'postline-metrics-'));
  cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
  const closedPort = await freePort(); // a webhook endpoint that never answers: its backlog grows
  const config = validateConfig({
    hostname: 'mx.postline.test',
    http: null, // the registry is read directly; no port 8025 (another Postline may hold it)
    dataDir: join(dir, 'var'),
    log: { level: 'error', format: 'json' },
    limits: { minFreeBytes: 0 },
    listeners: [{ name: 'inbound-mx', address: '127.0.0.1', port: 0, role: 'mx', tls: 'none' }],
    relay: { localDomains: [{ domain: 'local.test', recipients: ['known'] }] },
    delivery: {
      routes: [{ domain: 'sink.test', host: '127.0.0.1', port: sink.port, tls: 'none' }],
      retry: { initialMs: 60_000, maxMs: 60_000, jitter: 0 },
      scanIntervalMs: 100,
    },
    webhooks: [{
      name: 'hook-down', url: `http://127.0.0.1:${closedPort}/events`, secret: `whsec_${Buffer.alloc(24, 7).toString('base64')}`,
      allowPrivate: true, from: 'start', timeoutMs: 500, retry: { initialMs: 60_000, maxMs: 60_000, jitter: 0 },
    }],
  });
  const running = await startPostline(config);
  let stopped = false;
  cleanups.push(async () => { if (!stopped) await running.stop(2000); });
  const port = running.listeners.get('inbound-mx')!.port;

  const queueIds: string[] = [];
  const addresses: string[] = [];
  // Two sessions, N messages in all, one recipient each.
  for (const half of [0, 1]) {
    const { c, greeting } = await RawSmtp.open(port);
    assert.equal(greeting.code, 220);
    await c.ehlo();
    for (let i = half * (N / 2); i < (half + 1) * (N / 2); i++) {
      const to = `user${i}@sink.test`;
      addresses.push(to);
      const body = Buffer.from(`From: sender@origin.test\r\nTo: ${to}\r\nSubject: metrics ${i}\r\nMessage-ID: <metrics-${i}@origin.test>\r\n\r\nBody ${i}.\r\n`);
      const r = await c.send('sender@origin.test', [to], body);
      assert.equal(r.final?.code, 250, JSON.stringify(r));
      queueIds.push(/queued as (\S+)/.exec(r.final!.text)![1]!);
    }
    if (half === 0) {
      // While this session is open it is counted as an inbound connection.
      const x = await scrape(running);
      assert.ok(x.value('postline_inbound_connections')! >= 1, 'an open session is counted');
    }
    await c.quit();
  }
  // One refusal at RCPT (unknown local user): 550 5.1.1.
  {
    const { c } = await RawSmtp.open(port);
    await c.ehlo();
    assert.equal((await c.cmd('MAIL FROM:<sender@origin.test>')).code, 250);
    assert.equal((await c.cmd('RCPT TO:<nobody@local.test>')).code, 550);
    await c.quit();
  }

  await waitFor('every message at the sink', () => sink.messages().length >= N || undefined, 30_000);
  // The delivered event is committed right after the sink's 250; wait for the counter to catch up.
  const x = await waitFor('delivered counted', async () => {
    const e = await scrape(running);
    return e.sum('postline_recipients_total', { outcome: 'delivered' }) >= N && e.sum('postline_messages_rejected_total') >= 1 ? e : undefined;
  }, 20_000);

  const delivered = sink.messages().length;
  assert.equal(delivered, N, 'the sink got each message once');
  assert.equal(x.value('postline_messages_received_total', { origin: 'inbound-mx' }), N);
  assert.equal(x.sum('postline_messages_received_total'), N);
  assert.equal(x.sum('postline_recipients_total', { outcome: 'delivered' }), delivered);
  assert.equal(x.value('postline_recipients_total', { outcome: 'delivered', next_hop: 'relay' }), N, 'a route to a fixed host is the relay class');
  assert.equal(x.sum('postline_recipients_total', { outcome: 'deferred' }), 0);
  assert.equal(x.sum('postline_recipients_total', { outcome: 'bounced' }), 0);
  assert.equal(x.value('postline_messages_rejected_total', { stage: 'rcpt', class: '5xx' }), 1);
  assert.equal(x.value('postline_events_total', { type: 'message.received' }), N);
  assert.equal(x.value('postline_accept_seconds_count'), N, 'accept latency observed once per accepted message');
  assert.equal(x.value('postline_delivery_delay_seconds_count', { outcome: 'delivered' }), N);
  const attempts = x.value('postline_delivery_attempt_seconds_count', { next_hop: 'relay' })!;
  assert.ok(attempts >= 1 && attempts <= N, `attempts ${attempts}`);

  // Store writer: every message committed, each durable commit timed, batches add up.
  assert.equal(x.value('postline_store_messages_committed_total'), N);
  assert.equal(x.value('postline_store_batch_messages_sum'), N);
  assert.ok(x.value('postline_store_commit_seconds_count')! >= 1);
  assert.ok(x.value('postline_store_transactions_total')! >= x.value('postline_store_commit_seconds_count')!);
  assert.ok(x.value('postline_store_largest_batch_messages')! >= 1);

  // The webhook endpoint that is down holds the events back (at least one per message).
  const hook = await waitFor('webhook backlog', async () => {
    const e = await scrape(running);
    return (e.value('postline_webhook_backlog_events', { endpoint: 'hook-down' }) ?? 0) >= N ? e : undefined;
  }, 20_000);
  assert.equal(hook.value('postline_webhook_failing', { endpoint: 'hook-down' }), 0, 'not failing before maxAgeMs');

  // Default process metrics, on the same registry.
  for (const name of ['process_cpu_user_seconds_total', 'nodejs_eventloop_lag_seconds', 'nodejs_heap_size_used_bytes']) {
    assert.ok(x.families.has(name), `${name} present`);
  }
  // Every family has HELP and TYPE.
  for (const f of x.families.values()) assert.ok(f.help !== undefined && f.type !== undefined, `${f.name} has HELP and TYPE`);

  // Cardinality: no queue ID, address or domain as a label value.
  assertBoundedLabels(x.samples, [...queueIds, ...addresses, 'sink.test', 'origin.test', 'local.test', String(sink.port), String(closedPort), 'events']);
  const labelValues = new Set(x.samples.flatMap((s) => Object.values(s.labels)));
  assert.ok(labelValues.size < 200, `label values: ${labelValues.size}`);

  // Once everything is delivered and the sessions are closed, the gauges settle at zero.
  const idle = await waitFor('queue empty, no inbound connection', async () => {
    const e = await scrape(running);
    return e.sum('postline_queue_messages') === 0 && e.value('postline_inbound_connections') === 0 ? e : undefined;
  }, 20_000);
  assert.equal(idle.value('postline_scheduler_messages', { state: 'active' }), 0);
  assert.equal(idle.value('postline_delivery_requests', { state: 'active' }), 0);
  assert.equal(idle.value('postline_outbound_connections', { state: 'busy' }), 0);
  const parked = idle.value('postline_outbound_connections', { state: 'idle' })!;
  assert.ok(parked >= 0 && parked <= config.delivery.connectionsPerDestination, `idle connections to the sink: ${parked}`);

  await running.stop(2000);
  stopped = true;
  assert.equal((await running.metrics!.render()).trim(), '', 'closed at stop');
});

test('metrics.enabled: false leaves them out', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'postline-metrics-'));
  cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
  const running = await startPostline(validateConfig({
    hostname: 'mx.postline.test', http: null, dataDir: join(dir, 'var'), log: { level: 'error', format: 'json' }, limits: { minFreeBytes: 0 },
    listeners: [{ name: 'mx', address: '127.0.0.1', port: 0, tls: 'none' }],
    metrics: { enabled: false },
  }));
  try {
    assert.equal(running.metrics, undefined);
  } finally {
    await running.stop(1000);
  }
});
