/**
 * HTTP API, reading and operating side, over real HTTP on 127.0.0.1 (Node fetch and curl):
 * GET /api/v1/messages/{id}, /api/v1/events, /api/v1/queue and its actions, the OpenAPI document
 * (validated with @apidevtools/swagger-parser, every route in it), /api/docs, /metrics, 404,
 * HTTPS, and random bodies never giving a 500. The store and QueueAdmin are test doubles.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import SwaggerParser from '@apidevtools/swagger-parser';
import fc from 'fast-check';
import { configSchema } from '../../../src/config/schema.js';
import { silentLogger } from '../../../src/core/log.js';
import { newQueueId } from '../../../src/core/queue-id.js';
import { loadOrCreateTls } from '../../../src/smtpd/tls.js';
import { startApi, type ApiHarness } from './harness.js';

const run = promisify(execFile);
const simple = { from: 'app@example.com', to: ['rcpt@example.net'], subject: 'Hello', text: 'Hi there' };

describe('GET /api/v1/messages/{queueId}', () => {
  let h: ApiHarness;
  before(async () => { h = await startApi(); });
  after(async () => { await h.close(); });

  it('shows a queued message with its metadata, then its attempts after it left the queue', async () => {
    const sent = await h.call('/api/v1/messages', { method: 'POST', json: { ...simple, tags: ['t'], metadata: { user: '7' } } });
    const id: string = sent.body.recipients[0].queueId;
    let r = await h.call(`/api/v1/messages/${id}`, { key: 'read' });
    assert.equal(r.status, 200);
    assert.equal(r.body.queueId, id);
    assert.equal(r.body.inQueue, true);
    assert.equal(r.body.state, 'queued');
    assert.equal(r.body.messageId, sent.body.messageId);
    assert.equal(r.body.mailFrom, 'app@example.com');
    assert.deepEqual(r.body.tags, ['t']);
    assert.deepEqual(r.body.metadata, { user: '7' });
    assert.ok(r.body.size > 0);
    assert.deepEqual(r.body.recipients, [{ address: 'rcpt@example.net', status: 'queued', attempts: [] }]);

    h.store.append({ type: 'recipient.deferred', at: 1000, queueId: id, recipient: 'rcpt@example.net', attempt: 1, remoteHost: 'mx.example.net[192.0.2.1]:25', reply: '451 4.7.1 try later', dsn: '4.7.1', bounceClass: 'TransientFailure', durationMs: 12 });
    r = await h.call(`/api/v1/messages/${id}`, { key: 'read' });
    assert.equal(r.body.recipients[0].status, 'deferred');

    h.store.append({ type: 'recipient.delivered', at: 2000, queueId: id, recipient: 'rcpt@example.net', attempt: 2, remoteHost: 'mx.example.net[192.0.2.1]:25', reply: '250 2.0.0 Ok: queued as X', dsn: '2.0.0', durationMs: 30, tls: { version: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384' } });
    h.store.messages.delete(id);
    r = await h.call(`/api/v1/messages/${id}`, { key: 'read' });
    assert.equal(r.status, 200);
    assert.equal(r.body.inQueue, false);
    assert.equal(r.body.state, 'done');
    assert.deepEqual(r.body.tags, ['t']);
    assert.equal(r.body.recipients[0].status, 'delivered');
    assert.deepEqual(r.body.recipients[0].attempts, [
      { at: 1000, outcome: 'deferred', attempt: 1, remoteHost: 'mx.example.net[192.0.2.1]:25', reply: '451 4.7.1 try later', dsn: '4.7.1', bounceClass: 'TransientFailure', durationMs: 12 },
      { at: 2000, outcome: 'delivered', attempt: 2, remoteHost: 'mx.example.net[192.0.2.1]:25', reply: '250 2.0.0 Ok: queued as X', dsn: '2.0.0', durationMs: 30, tls: { version: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384' } },
    ]);
  });

  it('shows a message known only from its message.rejected event as rejected, with the reply and the sender', async () => {
    const id = newQueueId();
    h.store.append({ type: 'message.rejected', at: Date.now(), queueId: id, reason: 'data', mailFrom: 'spam@bad.example', recipient: 'rcpt@example.net', reply: '550 5.7.1 message refused', origin: { kind: 'smtp', listener: 'mx' } });
    const r = await h.call(`/api/v1/messages/${id}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.state, 'rejected');
    assert.equal(r.body.reply, '550 5.7.1 message refused');
    assert.equal(r.body.mailFrom, 'spam@bad.example');
    assert.equal(r.body.inQueue, false);
    assert.deepEqual(r.body.recipients.map((x: { address: string; status: string }) => [x.address, x.status]), [['rcpt@example.net', 'rejected']]);
  });

  it('404 for an unknown message, 400 for a malformed ID, 401 without a key', async () => {
    const r = await h.call(`/api/v1/messages/${newQueueId()}`);
    assert.equal(r.status, 404);
    assert.equal(r.body.code, 'ERR_API_NOT_FOUND');
    const bad = await h.call('/api/v1/messages/not-an-id');
    assert.equal(bad.status, 400);
    assert.deepEqual(bad.body.issues.map((i: { in: string; path: string }) => [i.in, i.path]), [['params', 'queueId']]);
    assert.equal((await h.call(`/api/v1/messages/${newQueueId()}`, { key: 'none' })).status, 401);
  });
});

describe('GET /api/v1/events', () => {
  let h: ApiHarness;
  before(async () => {
    h = await startApi();
    for (let i = 0; i < 7; i++) h.store.append({ type: i % 2 ? 'recipient.delivered' : 'message.received', at: 1000 + i, queueId: `Q${i}` });
  });
  after(async () => { await h.close(); });

  it('pages by cursor, oldest first, with next', async () => {
    const seen: number[] = [];
    let after = 0;
    for (let i = 0; i < 10; i++) {
      const r = await h.call(`/api/v1/events?after=${after}&limit=3`, { key: 'read' });
      assert.equal(r.status, 200);
      seen.push(...r.body.events.map((e: { id: number }) => e.id));
      if (r.body.events.length === 0) {
        assert.equal(r.body.next, after, 'next moved without events');
        break;
      }
      after = r.body.next;
    }
    assert.deepEqual(seen, [1, 2, 3, 4, 5, 6, 7]);
    const one = await h.call('/api/v1/events?limit=1');
    assert.deepEqual(one.body.events[0], { id: 1, type: 'message.received', at: 1000, queueId: 'Q0' });
  });

  it('filters by type (comma separated)', async () => {
    const r = await h.call('/api/v1/events?type=recipient.delivered');
    assert.deepEqual(r.body.events.map((e: { id: number }) => e.id), [2, 4, 6]);
    const both = await h.call('/api/v1/events?type=recipient.delivered,message.received&after=5');
    assert.deepEqual(both.body.events.map((e: { id: number }) => e.id), [6, 7]);
  });

  it('takes "recipient.*" like the CLI, and since= (ms)', async () => {
    const r = await h.call('/api/v1/events?type=recipient.*');
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body.events.map((e: { id: number }) => e.id), [2, 4, 6]);
    const mixed = await h.call('/api/v1/events?type=recipient.*,message.received&since=1005');
    assert.deepEqual(mixed.body.events.map((e: { id: number }) => e.id), [6, 7]);
    assert.equal((await h.call('/api/v1/events?type=nothing.*')).status, 400);
  });

  it('keeps next at min(after, newest id) when after is beyond the newest event', async () => {
    const r = await h.call('/api/v1/events?after=500');
    assert.equal(r.status, 200);
    assert.deepEqual(r.body.events, []);
    assert.equal(r.body.next, 7);
    h.store.append({ type: 'message.received', at: 2000, queueId: 'Q7' });
    const next = await h.call(`/api/v1/events?after=${r.body.next}`);
    assert.deepEqual(next.body.events.map((e: { id: number }) => e.id), [8], 'an event after the cursor was skipped');
    const within = await h.call('/api/v1/events?after=3&type=message.deleted');
    assert.equal(within.body.next, 3);
  });

  it('400 for a bad cursor, limit or type, and an unknown parameter', async () => {
    for (const q of ['after=-1', 'after=abc', 'limit=0', 'limit=1001', 'type=message.exploded', 'colour=blue']) {
      const r = await h.call(`/api/v1/events?${q}`);
      assert.equal(r.status, 400, q);
      assert.equal(r.body.issues[0].in, 'querystring', q);
    }
  });
});

describe('GET /api/v1/queue and the queue actions', () => {
  let h: ApiHarness;
  let ids: string[];
  before(async () => {
    h = await startApi();
    ids = [];
    for (const [from, to] of [['a@one.example', 'x@dest.example'], ['b@two.example', 'y@other.example'], ['a@one.example', 'z@Dest.example']]) {
      const r = await h.call('/api/v1/messages', { method: 'POST', json: { ...simple, from, to: [to] } });
      ids.push(r.body.recipients[0].queueId);
    }
    ids.sort();
  });
  after(async () => { await h.close(); });

  it('lists pages with counts, filters by state, sender and domain', async () => {
    const r = await h.call('/api/v1/queue?limit=2', { key: 'read' });
    assert.equal(r.status, 200);
    assert.deepEqual(r.body.items.map((i: { id: string }) => i.id), ids.slice(0, 2));
    assert.equal(r.body.next, ids[1]);
    assert.deepEqual(r.body.counts, { active: 3, deferred: 0, held: 0, quarantined: 0 });
    const rest = await h.call(`/api/v1/queue?limit=2&after=${r.body.next}`);
    assert.deepEqual(rest.body.items.map((i: { id: string }) => i.id), ids.slice(2));
    assert.equal(rest.body.next, undefined);
    const f = await h.call('/api/v1/queue?sender=a@one.example&domain=DEST.example.&state=active');
    assert.equal(f.body.items.length, 2);
    assert.deepEqual(h.store.pageQueries.at(-1), { limit: 100, state: 'active', sender: 'a@one.example', recipientDomain: 'dest.example' });
    for (const q of ['state=frozen', 'limit=5000', 'after=xyz']) assert.equal((await h.call(`/api/v1/queue?${q}`)).status, 400, q);
  });

  it('hold, flush (409 while held), release, flush, delete through QueueAdmin; 404 for unknown IDs', async () => {
    const id = ids[0]!;
    const act = (verb: string) => h.call(`/api/v1/queue/${id}/${verb}`, { method: 'POST', key: 'admin' });
    assert.deepEqual((await act('hold')).body, { queueId: id, action: 'held' });
    assert.equal((await h.call('/api/v1/queue?state=held')).body.items[0].id, id);
    const f = await act('flush');
    assert.equal(f.status, 409);
    assert.equal(f.body.code, 'ERR_MESSAGE_HELD');
    assert.deepEqual((await act('release')).body, { queueId: id, action: 'released' });
    assert.deepEqual((await act('flush')).body, { queueId: id, action: 'flushed' });
    const d = await h.call(`/api/v1/queue/${id}`, { method: 'DELETE', key: 'admin' });
    assert.deepEqual(d.body, { queueId: id, action: 'deleted' });
    assert.deepEqual(h.admin.calls, [`hold ${id}`, `release ${id}`, `flush ${id}`, `delete ${id}`]);
    const gone = await h.call(`/api/v1/queue/${id}/hold`, { method: 'POST', key: 'admin' });
    assert.equal(gone.status, 404);
    assert.equal(gone.body.code, 'ERR_NO_SUCH_MESSAGE');
    assert.equal((await h.call(`/api/v1/queue/${id}`, { method: 'DELETE', key: 'admin' })).status, 404);
    assert.equal((await h.call('/api/v1/queue/nope/hold', { method: 'POST', key: 'admin' })).status, 400);
    // The deleted message is still known by its events.
    const m = await h.call(`/api/v1/messages/${id}`);
    assert.equal(m.body.state, 'deleted');
    assert.equal(m.body.recipients[0].status, 'deleted');
  });

  it('a queue action is also curl-able (a real client other than fetch)', async () => {
    const id = ids[1]!;
    const { stdout } = await run('curl', ['-sS', '--max-time', '10', '-X', 'POST', '-H', `Authorization: Bearer ${h.key.admin}`, '-w', '\n%{http_code}', `${h.url}/api/v1/queue/${id}/hold`]);
    const [body, code] = stdout.trim().split('\n');
    assert.equal(code, '200');
    assert.deepEqual(JSON.parse(body!), { queueId: id, action: 'held' });
  });
});

describe('OpenAPI, docs, metrics, unknown routes, curl, HTTPS', () => {
  let h: ApiHarness;
  before(async () => { h = await startApi({ metrics: { contentType: 'text/plain; version=0.0.4; charset=utf-8', render: async () => 'postline_up 1\n' } }); });
  after(async () => { await h.close(); });

  it('/api/openapi.json is a valid OpenAPI 3 document with every route', async () => {
    const r = await h.call('/api/openapi.json', { key: 'none' });
    assert.equal(r.status, 200);
    assert.match(r.body.openapi, /^3\./);
    await SwaggerParser.validate(structuredClone(r.body));
    const want: Array<[string, string]> = [
      ['/api/v1/messages', 'post'], ['/api/v1/messages/raw', 'post'], ['/api/v1/messages/{queueId}', 'get'],
      ['/api/v1/events', 'get'], ['/api/v1/queue', 'get'], ['/api/v1/queue/{queueId}/flush', 'post'],
      ['/api/v1/queue/{queueId}/hold', 'post'], ['/api/v1/queue/{queueId}/release', 'post'], ['/api/v1/queue/{queueId}', 'delete'],
      ['/metrics', 'get'],
    ];
    for (const [path, method] of want) assert.ok(r.body.paths[path]?.[method], `${method.toUpperCase()} ${path} missing`);
    // And nothing served is missing: every route fastify knows (but the docs' own) is in the document.
    const listed = new Set(Object.entries(r.body.paths as Record<string, object>).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`)));
    const served = h.server.routes.filter((x) => !x.hidden && x.method !== 'HEAD' && !x.url.startsWith('/api/docs'));
    assert.equal(served.length, want.length, JSON.stringify(served));
    for (const x of served) {
      const path = x.url.replace(/:(\w+)/g, '{$1}');
      assert.ok(listed.has(`${x.method} ${path}`), `${x.method} ${x.url} is served but not in the document`);
    }
    const send = r.body.paths['/api/v1/messages'].post;
    assert.ok(send.requestBody.content['application/json'].schema, 'no request schema');
    assert.ok(send.responses['202'] && send.responses['400'] && send.responses['401'] && send.responses['413'] && send.responses['429']);
    assert.deepEqual(r.body.components.securitySchemes.bearer, { type: 'http', scheme: 'bearer', description: 'an API key from `postline apikey create`' });
  });

  it('/api/docs serves the browsable reference', async () => {
    const res = await fetch(`${h.url}/api/docs/`, { signal: AbortSignal.timeout(10_000) });
    assert.equal(res.status, 200);
    assert.match(await res.text(), /swagger/i);
  });

  it('GET /metrics renders at most once a second however many scrape', async () => {
    let renders = 0;
    const m = await startApi({ metrics: { contentType: 'text/plain; version=0.0.4; charset=utf-8', render: async () => `postline_renders ${++renders}\n` } });
    try {
      const texts = await Promise.all(Array.from({ length: 20 }, () => fetch(`${m.url}/metrics`, { signal: AbortSignal.timeout(10_000) }).then((r) => r.text())));
      assert.equal(renders, 1);
      assert.ok(texts.every((t) => t === 'postline_renders 1\n'));
      await new Promise((r) => setTimeout(r, 1100));
      assert.equal(await (await fetch(`${m.url}/metrics`, { signal: AbortSignal.timeout(10_000) })).text(), 'postline_renders 2\n');
    } finally { await m.close(); }
  });

  it('GET /metrics serves the given registry without a key', async () => {
    const res = await fetch(`${h.url}/metrics`, { signal: AbortSignal.timeout(10_000) });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    assert.equal(await res.text(), 'postline_up 1\n');
  });

  it('404 in JSON for unknown routes and methods; no /metrics without a registry', async () => {
    for (const [method, path] of [['GET', '/nope'], ['GET', '/api/v2/messages'], ['PUT', '/api/v1/messages'], ['GET', '/api/v1/messages']]) {
      const r = await h.call(path!, { method });
      assert.equal(r.status, 404, `${method} ${path}`);
      assert.equal(r.body.code, 'ERR_API_NOT_FOUND');
    }
    const bare = await startApi();
    try {
      assert.equal((await bare.call('/metrics')).status, 404);
    } finally {
      await bare.close();
    }
  });

  it('curl sends a message (202) and gets a 400 for a header with CRLF', async () => {
    const { stdout } = await run('curl', ['-sS', '--max-time', '10', '-H', `Authorization: Bearer ${h.key.send}`, '-H', 'Content-Type: application/json',
      '--data-binary', JSON.stringify(simple), '-w', '\n%{http_code}', `${h.url}/api/v1/messages`]);
    const [body, code] = stdout.trim().split('\n');
    assert.equal(code, '202');
    assert.equal(JSON.parse(body!).recipients[0].status, 'queued');
    const bad = await run('curl', ['-sS', '--max-time', '10', '-H', `Authorization: Bearer ${h.key.send}`, '-H', 'Content-Type: application/json',
      '--data-binary', JSON.stringify({ ...simple, headers: { 'X-Evil': 'a\r\nBcc: x@example.com' } }), '-w', '\n%{http_code}', `${h.url}/api/v1/messages`]);
    const [badBody, badCode] = bad.stdout.trim().split('\n');
    assert.equal(badCode, '400');
    assert.equal(JSON.parse(badBody!).issues[0].path, 'headers.X-Evil');
  });

  it('random JSON bodies and query strings never give a 500', async () => {
    const statuses = new Set<number>();
    await fc.assert(fc.asyncProperty(
      fc.oneof(fc.jsonValue(), fc.record({ from: fc.string(), to: fc.array(fc.oneof(fc.string(), fc.jsonValue())), headers: fc.dictionary(fc.string(), fc.string()), attachments: fc.array(fc.record({ filename: fc.string(), content: fc.string() })) }, { requiredKeys: [] })),
      fc.constantFrom('/api/v1/messages', '/api/v1/messages/raw', '/api/v1/queue/0000000000AAAAAAAA/hold'),
      async (body, path) => {
        const r = await h.call(path, { method: 'POST', json: body });
        statuses.add(r.status);
        assert.ok(r.status < 500, `${r.status} for ${JSON.stringify(body).slice(0, 200)}: ${JSON.stringify(r.body)}`);
      },
    ), { numRuns: 150 });
    await fc.assert(fc.asyncProperty(fc.string(), fc.string(), async (k, v) => {
      const r = await h.call(`/api/v1/events?${encodeURIComponent(k)}=${encodeURIComponent(v)}`);
      assert.ok(r.status < 500, `${r.status} for ${k}=${v}`);
    }), { numRuns: 100 });
    assert.ok(statuses.has(400));
  });

  it('serves HTTPS with the listeners\' TLS material', async () => {
    const cfg = configSchema.parse({ hostname: 'localhost', dataDir: `${h.dir}/tlsdata`, http: { tls: {} } });
    const tls = loadOrCreateTls(cfg, silentLogger());
    const s = await startApi({ tls });
    try {
      assert.match(s.url, /^https:/);
      const { stdout } = await run('curl', ['-sS', '--max-time', '10', '--insecure', '-H', `Authorization: Bearer ${s.key.read}`, '-w', '\n%{http_code}', `${s.url}/api/v1/events`]);
      assert.equal(stdout.trim().split('\n').at(-1), '200');
      const plain = await run('curl', ['-sS', '--max-time', '10', '-o', '/dev/null', '-w', '%{http_code}', `http://127.0.0.1:${new URL(s.url).port}/api/v1/events`]).catch((e: { stdout: string }) => e);
      assert.notEqual(plain.stdout, '200');
    } finally {
      await s.close();
    }
  });
});
