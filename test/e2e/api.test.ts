/**
 * The HTTP API end to end, through the real `postline serve` process: a key made with the CLI
 * while the server runs, POST /api/v1/messages and /raw delivered to Postfix's smtp-sink on
 * loopback (one queue entry per recipient, Bcc not in the header), GET /api/v1/messages/{id} with
 * its delivered attempt after it left the queue, the event log, a deferred (sendAt) message held
 * and deleted through the queue routes, and revocation by the CLI.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startRoutedPostline, type PostlineProcess } from '../helpers/postline-process.js';
import { SmtpSink, SMTP_SINK } from '../helpers/smtp-sink.js';
import { waitFor } from '../helpers/net.js';

let sink: SmtpSink;
let pl: PostlineProcess;
let key = '';

async function call(path: string, init: RequestInit & { json?: unknown; token?: string } = {}): Promise<{ status: number; body: any }> {
  const headers = new Headers(init.headers);
  headers.set('authorization', `Bearer ${init.token ?? key}`);
  if (init.json !== undefined) headers.set('content-type', 'application/json');
  const res = await fetch(`http://127.0.0.1:${pl.httpPort}${path}`, {
    ...init, headers, ...(init.json !== undefined ? { body: JSON.stringify(init.json) } : {}), signal: AbortSignal.timeout(20_000),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

before(async () => {
  if (!SMTP_SINK) return;
  sink = await new SmtpSink().start();
  pl = await startRoutedPostline({ 'sink.test': sink.port }, { http: true });
  const made = await pl.cli(['apikey', 'create', 'e2e', '--scope', 'send,read,admin', '--domain', 'app.test']);
  assert.equal(made.code, 0, made.stderr);
  key = made.stdout.trimEnd().split('\n').at(-1)!;
});

after(async () => {
  await pl?.cleanup();
  await sink?.cleanup();
});

test('POST /api/v1/messages is delivered per recipient and GET /api/v1/messages/{id} shows the delivered attempt', { skip: !SMTP_SINK && 'smtp-sink not installed' }, async () => {
  const r = await call('/api/v1/messages', {
    method: 'POST',
    headers: { 'idempotency-key': 'e2e-1' },
    json: {
      from: { name: 'App', address: 'news@app.test' }, to: ['one@sink.test'], cc: ['two@sink.test'], bcc: ['secret@sink.test'],
      subject: 'API e2e', text: 'hello from the API', tags: ['e2e'], metadata: { run: '1' },
    },
  });
  assert.equal(r.status, 202, JSON.stringify(r.body));
  assert.equal(r.body.recipients.length, 3);
  const again = await call('/api/v1/messages', { method: 'POST', headers: { 'idempotency-key': 'e2e-1' }, json: {
    from: { name: 'App', address: 'news@app.test' }, to: ['one@sink.test'], cc: ['two@sink.test'], bcc: ['secret@sink.test'],
    subject: 'API e2e', text: 'hello from the API', tags: ['e2e'], metadata: { run: '1' },
  } });
  assert.deepEqual(again.body, r.body, 'a repeat with the same Idempotency-Key queued again');

  const got = await waitFor('three deliveries at the sink', () => {
    const m = sink.messages().filter((x) => x.data.toString().includes('Subject: API e2e'));
    return m.length >= 3 ? m : undefined;
  }, 30_000);
  assert.equal(got.length, 3, 'the repeat was delivered');
  for (const m of got) {
    assert.equal(m.rcptArgs.length, 1, 'one recipient per queue entry');
    const head = m.data.toString().split('\n\n')[0]!;
    // The Received field names the one recipient of its copy ("for <...>"), as for SMTP mail.
    const rest = head.replace(/^Received:.*(\n[ \t].*)*/m, '');
    assert.doesNotMatch(rest, /secret@sink\.test|^Bcc:/im);
    assert.match(head, /^Received: from api/m);
    assert.match(head, new RegExp(`^Message-ID: ${r.body.messageId}`, 'm'));
  }
  assert.deepEqual(got.map((m) => m.rcptArgs[0]!.replace(/^.*<|>.*$/g, '')).sort(), ['one@sink.test', 'secret@sink.test', 'two@sink.test']);

  const id: string = r.body.recipients.find((x: { address: string }) => x.address === 'secret@sink.test').queueId;
  const status = await waitFor('the delivered status', async () => {
    const s = await call(`/api/v1/messages/${id}`);
    return s.status === 200 && s.body.recipients[0].status === 'delivered' && !s.body.inQueue ? s.body : undefined;
  }, 20_000);
  assert.equal(status.state, 'done');
  assert.equal(status.mailFrom, 'news@app.test');
  assert.equal(status.messageId, r.body.messageId);
  assert.deepEqual(status.tags, ['e2e']);
  assert.deepEqual(status.metadata, { run: '1' });
  assert.ok(status.size > 0);
  const attempt = status.recipients[0].attempts.find((a: { outcome: string }) => a.outcome === 'delivered');
  assert.ok(attempt, JSON.stringify(status));
  assert.match(attempt.remoteHost, new RegExp(`127\\.0\\.0\\.1.*${sink.port}`));
  assert.match(attempt.reply, /^250/);

  const ev = await call(`/api/v1/events?type=message.received,recipient.delivered&limit=1000`);
  assert.equal(ev.status, 200);
  const mine = ev.body.events.filter((e: { queueId: string }) => e.queueId === id);
  assert.deepEqual(mine.map((e: { type: string }) => e.type), ['message.received', 'recipient.delivered']);
  assert.equal(mine[0].origin.apiKey, 'e2e');
});

test('POST /api/v1/messages/raw is delivered as given; a sendAt message waits and can be held and deleted', { skip: !SMTP_SINK && 'smtp-sink not installed' }, async () => {
  const raw = 'From: raw@app.test\r\nTo: raw@sink.test\r\nSubject: API raw e2e\r\n\r\nraw body\r\n';
  const r = await call('/api/v1/messages/raw', { method: 'POST', json: { mailFrom: 'raw@app.test', rcptTo: ['raw@sink.test'], raw: Buffer.from(raw).toString('base64') } });
  assert.equal(r.status, 202, JSON.stringify(r.body));
  await waitFor('the raw message at the sink', () => sink.messages().some((m) => m.data.toString().includes('Subject: API raw e2e')), 30_000);

  const later = await call('/api/v1/messages', { method: 'POST', json: { from: 'later@app.test', to: ['later@sink.test'], subject: 'later', text: 'x', sendAt: Date.now() + 3600_000 } });
  assert.equal(later.status, 202);
  const id: string = later.body.recipients[0].queueId;
  const q = await call('/api/v1/queue?sender=later@app.test');
  assert.equal(q.status, 200);
  assert.deepEqual(q.body.items.map((i: { id: string }) => i.id), [id]);
  assert.equal((await call(`/api/v1/queue/${id}/hold`, { method: 'POST' })).status, 200);
  assert.equal((await call('/api/v1/queue?state=held')).body.items.some((i: { id: string }) => i.id === id), true);
  assert.equal((await call(`/api/v1/messages/${id}`)).body.state, 'held');
  assert.equal((await call(`/api/v1/queue/${id}`, { method: 'DELETE' })).status, 200);
  const gone = await call(`/api/v1/messages/${id}`);
  assert.equal(gone.body.state, 'deleted');
  assert.equal(gone.body.inQueue, false);
  assert.ok(!sink.messages().some((m) => m.data.toString().includes('Subject: later')));

  assert.equal((await call('/api/v1/messages', { method: 'POST', json: { from: 'x@other.test', to: ['a@sink.test'], text: 'x' } })).status, 403);
  const rejected = await waitFor('the message.rejected event', async () => {
    const ev = await call('/api/v1/events?type=message.rejected&limit=1000');
    return ev.body.events.find((e: { mailFrom?: string }) => e.mailFrom === 'x@other.test');
  }, 5000);
  assert.equal(rejected.origin.apiKey, 'e2e');
  assert.match(rejected.reply, /^403 /);
});

test('a key revoked with the CLI is refused by the running server', { skip: !SMTP_SINK && 'smtp-sink not installed' }, async () => {
  const made = await pl.cli(['apikey', 'create', 'short-lived', '--scope', 'read']);
  const token = made.stdout.trimEnd().split('\n').at(-1)!;
  assert.equal((await call('/api/v1/events?limit=1', { token })).status, 200);
  const rv = await pl.cli(['apikey', 'revoke', 'short-lived']);
  assert.equal(rv.code, 0, rv.stderr);
  await waitFor('401 after revoke', async () => (await call('/api/v1/events?limit=1', { token })).status === 401, 2000);
});
