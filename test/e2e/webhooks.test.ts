/**
 * Webhooks end to end: the real `postline serve` process, mail over SMTP relayed to a loopback SMTP
 * peer, and a real webhook receiver on 127.0.0.1 that verifies every request with the
 * standardwebhooks library. The receiver gets message.received and recipient.delivered for each
 * message; it goes down and comes back; Postline is SIGKILLed in the middle of a run and restarted;
 * at the end every event in the store's log has reached the receiver (at least once, in order,
 * none forged), and `postline webhooks status` shows the endpoint caught up.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { PostlineProcess } from '../helpers/postline-process.js';
import { RawSmtp } from '../helpers/raw-smtp.js';
import { waitFor } from '../helpers/net.js';
import { startSmtpPeer } from '../helpers/smtp-peer.js';
import { WebhookReceiver, newSecret } from '../helpers/webhook-receiver.js';

const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
});

/** Sends `n` messages over one session; stops at the first failure (a killed server). Returns the queue IDs acknowledged. */
async function submit(port: number, n: number, tag: string): Promise<string[]> {
  const ids: string[] = [];
  let c: RawSmtp | undefined;
  try {
    c = (await RawSmtp.open(port)).c;
    await c.ehlo();
    for (let i = 0; i < n; i++) {
      const body = Buffer.from(`From: sender@origin.test\r\nTo: rcpt${i}@remote.test\r\nSubject: ${tag}-${i}\r\nMessage-ID: <${tag}-${i}@origin.test>\r\n\r\nBody ${tag} ${i}.\r\n`);
      const r = await c.send('sender@origin.test', [`rcpt${i}@remote.test`], body);
      if (r.final?.code !== 250) break;
      ids.push(/queued as (\S+)/.exec(r.final.text)![1]!);
    }
    await c.quit().catch(() => {});
  } catch {
    // the server went away (SIGKILL): what was acknowledged so far counts
  }
  return ids;
}

/** The receiver's verified events: queue ID -> types seen. */
function typesByQueueId(receiver: WebhookReceiver, path: string): Map<string, Set<string>> {
  const m = new Map<string, Set<string>>();
  for (const d of receiver.deliveries) {
    if (d.path !== path || d.status >= 300) continue;
    for (const p of Array.isArray(d.payload) ? d.payload : [d.payload]) {
      const e = (p as { type: string; data: { queueId?: string } });
      if (!e.data.queueId) continue;
      if (!m.has(e.data.queueId)) m.set(e.data.queueId, new Set());
      m.get(e.data.queueId)!.add(e.type);
    }
  }
  return m;
}

const hasBoth = (m: Map<string, Set<string>>, ids: readonly string[]): boolean =>
  ids.every((id) => m.get(id)?.has('message.received') && m.get(id)?.has('recipient.delivered'));

test('webhooks: received and delivered events for each message, across an endpoint outage and a SIGKILL', async () => {
  const receiver = await new WebhookReceiver().listen();
  cleanups.push(() => receiver.close());
  const secret = newSecret();
  const url = receiver.endpoint('/pl', secret);
  const peer = await startSmtpPeer();
  cleanups.push(() => peer.close());
  const pl = new PostlineProcess({
    config: {
      delivery: { relayhost: { host: '127.0.0.1', port: peer.port, tls: 'none' }, scanIntervalMs: 100 },
      webhooks: [{ name: 'e2e', url, secret, allowPrivate: true, from: 'start', timeoutMs: 2000, retry: { initialMs: 100, maxMs: 400 }, pollMs: 200 }],
    },
  });
  cleanups.push(() => pl.cleanup());
  await pl.start();

  // 1. Plain run.
  const first = await submit(pl.port(), 5, 'first');
  assert.equal(first.length, 5);
  await waitFor('received + delivered for the first 5', () => hasBoth(typesByQueueId(receiver, '/pl'), first), 30_000);

  // 2. The receiver is down while mail flows; events wait and arrive once it is back.
  await receiver.setMode('down');
  const during = await submit(pl.port(), 5, 'outage');
  assert.equal(during.length, 5);
  await waitFor('the 5 delivered at the SMTP peer', () => peer.messages().length >= 10, 30_000);
  const st = await pl.cli(['webhooks', 'status', '--json']);
  assert.equal(st.code, 0, st.stderr);
  const down = (JSON.parse(st.stdout) as { endpoints: Array<{ name: string; backlog: number; lastError?: string }> }).endpoints[0]!;
  assert.ok(down.backlog > 0, `backlog while down: ${st.stdout}`);
  await receiver.setMode('ok');
  await waitFor('events of the outage', () => hasBoth(typesByQueueId(receiver, '/pl'), during), 30_000);

  // 3. SIGKILL in the middle of a run, then a restart.
  const sending = submit(pl.port(), 40, 'kill');
  await waitFor('some of the run at the receiver', () => typesByQueueId(receiver, '/pl').size >= 14, 30_000);
  await pl.kill();
  const killed = await sending;
  assert.ok(killed.length < 40, `the kill came in the middle of the run (${killed.length} acknowledged)`);
  await pl.start();
  const last = await submit(pl.port(), 3, 'after');
  assert.equal(last.length, 3);
  const acknowledged = [...first, ...during, ...killed, ...last];
  await waitFor('received + delivered for every acknowledged message', () => hasBoth(typesByQueueId(receiver, '/pl'), acknowledged), 60_000);

  // Every event in the store's log reached the receiver (none missing), in order, none forged.
  const db = new Database(join(pl.dir, 'var', 'queue.db'), { readonly: true });
  let stored: number[];
  try {
    stored = (db.prepare('SELECT id FROM events ORDER BY id').all() as Array<{ id: number }>).map((r) => r.id);
  } finally {
    db.close();
  }
  await waitFor('every stored event at the receiver', () => {
    const got = receiver.uniqueIds('/pl');
    return stored.every((id) => got.has(id));
  }, 30_000);
  assert.ok(stored.length >= 2 * acknowledged.length, `${stored.length} events stored for ${acknowledged.length} messages`);
  assert.ok(receiver.inOrder('/pl'), 'first arrivals in id order');
  assert.equal(receiver.forged, 0);
  const ok = await pl.cli(['webhooks', 'status', '--json']);
  const end = (JSON.parse(ok.stdout) as { endpoints: Array<{ state: string; failingSince?: string }> }).endpoints[0]!;
  assert.notEqual(end.state, 'failing');

  // 4. SIGHUP adds an endpoint: it starts at the newest event and gets only what comes after.
  const secret2 = newSecret();
  const url2 = receiver.endpoint('/second', secret2);
  pl.configOverride = { webhooks: [
    { name: 'e2e', url, secret, allowPrivate: true, from: 'start', timeoutMs: 2000, retry: { initialMs: 100, maxMs: 400 }, pollMs: 200 },
    { name: 'second', url: url2, secret: secret2, allowPrivate: true, events: ['recipient.delivered'], pollMs: 200 },
  ] };
  await pl.writeConfig();
  pl.signal('SIGHUP');
  await waitFor('the reload', () => pl.logs().some((l) => l.msg === 'webhooks reloaded'), 20_000);
  await waitFor('the new endpoint\'s cursor', async () => {
    const r = await pl.cli(['webhooks', 'status', '--json']);
    return (JSON.parse(r.stdout) as { endpoints: Array<{ name: string; state: string }> }).endpoints.some((e) => e.name === 'second' && e.state !== 'new');
  }, 20_000);
  const more = await submit(pl.port(), 2, 'hup');
  await waitFor('delivered events at the second endpoint', () => receiver.uniqueIds('/second').size === 2, 30_000);
  const second = receiver.deliveries.filter((d) => d.path === '/second').map((d) => (d.payload as { type: string; data: { queueId: string } }));
  assert.deepEqual(second.map((p) => p.type), ['recipient.delivered', 'recipient.delivered']);
  assert.deepEqual(second.map((p) => p.data.queueId).sort(), [...more].sort());
  await waitFor('the first endpoint too', () => hasBoth(typesByQueueId(receiver, '/pl'), more), 30_000);
  assert.equal(receiver.forged, 0);
});
