/**
 * The http transport (inbound parse) against a real node:http receiver on 127.0.0.1: a 503 then a
 * 200 (deferred, then delivered), 4xx with and without bounceOn4xx, the Standard Webhooks signature
 * checked on the receiver's side with an HMAC computed in the test (and by the standardwebhooks
 * package), one POST for all recipients, timeout, refused connection, the SSRF guard, the size
 * limit, unsigned requests, a body read error; the `local.http` keys and the route URL check at load.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { Webhook } from 'standardwebhooks';
import { HttpAgent, requestId } from '../../../src/local/http-agent.js';
import type { LocalHttpConfig } from '../../../src/config/local-schema.js';
import type { DeliveryRecipient, DeliveryRequest } from '../../../src/delivery/types.js';
import { InboundReceiver, verifySignature } from '../../helpers/inbound-receiver.js';
import { freePort } from '../../helpers/net.js';
import { validateConfig } from '../../../src/config/load.js';

const cleanups: Array<() => Promise<void>> = [];
after(async () => { for (const c of cleanups.reverse()) await c().catch(() => {}); });

const SECRET = `whsec_${randomBytes(32).toString('base64')}`;
const MSG = Buffer.from([
  'Authentication-Results: mx.postline.test;',
  ' spf=pass smtp.mailfrom=alice@origin.test;',
  ' dkim=fail (bad signature) header.d=origin.test;',
  ' dkim=pass header.d=origin.test header.s=s2;',
  ' dmarc=pass (p=reject) header.from=origin.test',
  'Authentication-Results: other.example; spf=fail',
  'From: Alice <alice@origin.test>',
  'To: bob@hooks.test, "Carol C." <carol@hooks.test>',
  'Cc: Team: dan@hooks.test, erin@hooks.test;',
  'Subject: =?UTF-8?Q?h=C3=A9llo?=',
  'Date: Tue, 04 Jun 2024 17:50:00 +0200',
  'Message-ID: <m1@origin.test>',
  'MIME-Version: 1.0',
  'Content-Type: multipart/mixed; boundary="b1"',
  '',
  '--b1',
  'Content-Type: text/plain; charset=utf-8',
  '',
  'plain body',
  '--b1',
  'Content-Type: application/octet-stream; name="data.bin"',
  'Content-Disposition: attachment; filename="data.bin"',
  'Content-Transfer-Encoding: base64',
  '',
  Buffer.from([0, 1, 2, 250, 251, 252, 253]).toString('base64'),
  '--b1--',
  '',
].join('\r\n'));

function config(over: Partial<LocalHttpConfig> = {}): LocalHttpConfig {
  return { secret: SECRET, allowPrivate: true, timeoutMs: 5000, maxBytes: 1024 * 1024, maxBytesInFlight: 4 * 1024 * 1024, ...over };
}

function agent(over: Partial<LocalHttpConfig> = {}, lookup?: ConstructorParameters<typeof HttpAgent>[0]['lookup']): HttpAgent {
  const a = new HttpAgent({ config: () => config(over), authservId: () => 'mx.postline.test', ...(lookup ? { lookup } : {}) });
  cleanups.push(() => a.close());
  return a;
}

function request(url: string, recipients: DeliveryRecipient[] = [{ idx: 0, address: 'bob@hooks.test' }], over: Partial<DeliveryRequest> = {}, body = MSG, bounceOn4xx = false): DeliveryRequest {
  return {
    queueId: 'Q1ABC', mailFrom: 'alice@origin.test', bodyType: '8BITMIME', smtputf8: false, size: body.length, recipients,
    nextHop: { kind: 'http', url, bounceOn4xx },
    openBody: () => Readable.from([body.subarray(0, 50), body.subarray(50, 51), body.subarray(51)]),
    ...over,
  };
}

async function receiver(): Promise<InboundReceiver> {
  const r = await new InboundReceiver().listen();
  cleanups.push(() => r.close());
  return r;
}

test('a 503 defers with the status in the diagnostic; the retry gets 200 and delivers; the payload and its signature', async () => {
  const rx = (await receiver()).script({ status: 503, text: 'busy\nnow' }, { status: 200, text: 'ok' });
  const a = agent();
  const first = await a.deliver(request(rx.url()));
  assert.deepEqual(first.map((r) => [r.idx, r.outcome, r.code, r.dsnStatus]), [[0, 'deferred', 451, '4.0.0']]);
  assert.equal(first[0]!.diagnostic, `451 4.0.0 127.0.0.1:${rx.port} answered HTTP 503: busy now`);
  const second = await a.deliver(request(rx.url()));
  assert.deepEqual(second.map((r) => [r.idx, r.outcome, r.code, r.dsnStatus]), [[0, 'delivered', 250, '2.0.0']]);
  assert.equal(second[0]!.remoteMta, `127.0.0.1:${rx.port}`);
  assert.equal(rx.requests.length, 2);
  for (const q of rx.requests) {
    assert.equal(q.method, 'POST');
    assert.equal(q.path, '/inbound');
    assert.equal(q.headers['content-type'], 'application/json');
    assert.equal(q.headers['webhook-id'], 'Q1ABC.0', 'the same id on the retry');
    assert.ok(verifySignature(SECRET, q.headers, q.body), 'HMAC-SHA256 computed by the test');
    assert.ok(!verifySignature(`whsec_${randomBytes(32).toString('base64')}`, q.headers, q.body), 'another secret does not verify');
    assert.ok(!verifySignature(SECRET, q.headers, q.body.replace('plain body', 'plain bodY')), 'a changed body does not verify');
    new Webhook(SECRET).verify(q.body, q.headers as Record<string, string>); // and the reference library
  }
  const p = rx.requests[1]!.json as Record<string, unknown>;
  assert.equal(p.queueId, 'Q1ABC');
  assert.deepEqual(p.envelope, { mailFrom: 'alice@origin.test', rcptTo: ['bob@hooks.test'] });
  assert.equal(p.messageId, '<m1@origin.test>');
  assert.equal(p.subject, 'h\u00e9llo');
  assert.equal(p.date, '2024-06-04T15:50:00.000Z');
  assert.deepEqual(p.from, [{ name: 'Alice', address: 'alice@origin.test' }]);
  assert.deepEqual(p.to, [{ name: '', address: 'bob@hooks.test' }, { name: 'Carol C.', address: 'carol@hooks.test' }]);
  assert.deepEqual(p.cc, [{ name: '', address: 'dan@hooks.test' }, { name: '', address: 'erin@hooks.test' }]);
  assert.deepEqual(p.replyTo, []);
  assert.equal(p.text, 'plain body');
  assert.equal(p.html, null);
  assert.equal(p.size, MSG.length);
  const headers = p.headers as Array<{ name: string; value: string }>;
  assert.deepEqual(headers.map((h) => h.name), ['Authentication-Results', 'Authentication-Results', 'From', 'To', 'Cc', 'Subject', 'Date', 'Message-ID', 'MIME-Version', 'Content-Type']);
  assert.equal(headers[5]!.value, '=?UTF-8?Q?h=C3=A9llo?=', 'raw values: encoded words left alone');
  assert.deepEqual(p.authenticationResults, [
    'mx.postline.test; spf=pass smtp.mailfrom=alice@origin.test; dkim=fail (bad signature) header.d=origin.test; dkim=pass header.d=origin.test header.s=s2; dmarc=pass (p=reject) header.from=origin.test',
    'other.example; spf=fail',
  ]);
  assert.deepEqual(p.auth, { authservId: 'mx.postline.test', spf: 'pass', dkim: 'pass', dmarc: 'pass' });
  assert.deepEqual(p.attachments, [{
    filename: 'data.bin', contentType: 'application/octet-stream', size: 7, contentId: null, disposition: 'attachment', related: false,
    content: Buffer.from([0, 1, 2, 250, 251, 252, 253]).toString('base64'),
  }]);
});

test('4xx: bounced 550 5.0.0 with bounceOn4xx, else deferred 451 4.0.0; the status in the diagnostic', async () => {
  const rx = (await receiver()).script({ status: 422, text: 'no such inbox' });
  const a = agent();
  const bounced = await a.deliver(request(rx.url(), undefined, {}, MSG, true));
  assert.deepEqual(bounced.map((r) => [r.outcome, r.code, r.dsnStatus]), [['bounced', 550, '5.0.0']]);
  assert.equal(bounced[0]!.diagnostic, `550 5.0.0 127.0.0.1:${rx.port} answered HTTP 422: no such inbox`);
  const deferred = await a.deliver(request(rx.url()));
  assert.deepEqual(deferred.map((r) => [r.outcome, r.code, r.dsnStatus]), [['deferred', 451, '4.0.0']]);
  assert.match(deferred[0]!.diagnostic, /HTTP 422: no such inbox \(retried: the route does not set bounceOn4xx\)$/);
  rx.script({ status: 302, text: '' });
  const redirected = await a.deliver(request(rx.url(), undefined, {}, MSG, true));
  assert.equal(redirected[0]!.outcome, 'deferred');
  assert.match(redirected[0]!.diagnostic, /HTTP 302 \(redirects are not followed\)$/);
});

test('one POST for all the recipients of a request, each gets its result; the id names their indexes', async () => {
  const rx = (await receiver()).script({ status: 204 });
  const rs = await agent().deliver(request(rx.url(), [{ idx: 0, address: 'bob@hooks.test' }, { idx: 2, address: 'carol@hooks.test' }, { idx: 5, address: 'dan@hooks.test' }]));
  assert.deepEqual(rs.map((r) => [r.idx, r.outcome]), [[0, 'delivered'], [2, 'delivered'], [5, 'delivered']]);
  assert.equal(rx.requests.length, 1);
  assert.deepEqual((rx.requests[0]!.json as { envelope: unknown }).envelope, { mailFrom: 'alice@origin.test', rcptTo: ['bob@hooks.test', 'carol@hooks.test', 'dan@hooks.test'] });
  assert.equal(rx.requests[0]!.headers['webhook-id'], 'Q1ABC.0.2.5');
  assert.match(requestId('Q', Array.from({ length: 20 }, (_, i) => i)), /^Q\.h[0-9a-f]{16}$/);
  assert.equal(requestId('Q', [3, 1]), 'Q.1.3');
});

test('without a secret: webhook-id and webhook-timestamp, no signature', async () => {
  const rx = (await receiver()).script({ status: 200 });
  const rs = await agent({ secret: undefined }).deliver(request(rx.url()));
  assert.equal(rs[0]!.outcome, 'delivered');
  const h = rx.requests[0]!.headers;
  assert.equal(h['webhook-id'], 'Q1ABC.0');
  assert.match(String(h['webhook-timestamp']), /^\d{10}$/);
  assert.equal(h['webhook-signature'], undefined);
});

test('no answer within timeoutMs: deferred 4.4.2; connection refused: deferred 4.4.1, destination unreachable', async () => {
  const rx = (await receiver()).script('hang');
  const slow = await agent({ timeoutMs: 300 }).deliver(request(rx.url()));
  assert.deepEqual(slow.map((r) => [r.outcome, r.dsnStatus, r.diagnostic]), [['deferred', '4.4.2', `451 4.4.2 no answer from 127.0.0.1:${rx.port} within 300 ms`]]);
  const port = await freePort();
  const refused = await agent().deliver(request(`http://127.0.0.1:${port}/inbound`));
  assert.equal(refused[0]!.outcome, 'deferred');
  assert.equal(refused[0]!.dsnStatus, '4.4.1');
  assert.equal(refused[0]!.destination, 'unreachable');
  assert.match(refused[0]!.diagnostic, new RegExp(`^451 4\\.4\\.1 cannot connect to 127\\.0\\.0\\.1:${port}: ECONNREFUSED`));
});

test('the SSRF guard: loopback without allowPrivate, metadata always, a name resolving inside: 4.3.5 and no request; a name that does not resolve: 4.4.3', async () => {
  const rx = await receiver();
  const loop = await agent({ allowPrivate: false }).deliver(request(rx.url()));
  assert.deepEqual(loop.map((r) => [r.outcome, r.code, r.dsnStatus]), [['deferred', 451, '4.3.5']]);
  assert.match(loop[0]!.diagnostic, /inbound parse URL refused: 127\.0\.0\.1 is a loopback address \(set local\.http\.allowPrivate: true to allow it\)/);
  const meta = await agent().deliver(request('http://169.254.169.254/latest'));
  assert.match(meta[0]!.diagnostic, /^451 4\.3\.5 inbound parse URL refused: 169\.254\.169\.254 is a metadata address/);
  const named = await agent({ allowPrivate: false }, async () => [{ address: '10.1.2.3', family: 4 }]).deliver(request('http://hooks.example/inbound'));
  assert.match(named[0]!.diagnostic, /^451 4\.3\.5 inbound parse URL refused: hooks\.example resolves to 10\.1\.2\.3 is a private address/);
  const nx = await agent({}, async () => { throw Object.assign(new Error('queryA ENOTFOUND hooks.example'), { code: 'ENOTFOUND' }); }).deliver(request('http://hooks.example/inbound'));
  assert.deepEqual([nx[0]!.outcome, nx[0]!.dsnStatus], ['deferred', '4.4.3']);
  assert.match(nx[0]!.diagnostic, /cannot resolve hooks\.example/);
  assert.equal(rx.requests.length, 0);
});

test('a message over maxBytes bounces 552 5.3.4 unsent, also when it is longer than its recorded size', async () => {
  const rx = await receiver();
  const big = await agent({ maxBytes: 2048 }).deliver(request(rx.url(), undefined, { size: 4096 }));
  assert.deepEqual(big.map((r) => [r.outcome, r.code, r.dsnStatus]), [['bounced', 552, '5.3.4']]);
  assert.match(big[0]!.diagnostic, /^552 5\.3\.4 message too big for inbound parse \(4096 bytes, the limit is 2048\)$/);
  const long = Buffer.concat([MSG, Buffer.alloc(3000, 'x')]);
  const lying = await agent({ maxBytes: 2048 }).deliver(request(rx.url(), undefined, { size: 100 }, long));
  assert.deepEqual(lying.map((r) => [r.outcome, r.dsnStatus, r.diagnostic]), [['bounced', '5.3.4', '552 5.3.4 message too big for inbound parse (more than 2048 bytes)']]);
  assert.equal(rx.requests.length, 0);
});

test('a body read error defers 4.3.0; an aborted delivery defers 4.3.0 (shutdown); another transport 4.3.5', async () => {
  const rx = await receiver();
  const failing = () => new Readable({ read() { this.destroy(Object.assign(new Error('disk gone'), { code: 'EIO' })); } });
  const rs = await agent().deliver(request(rx.url(), undefined, { openBody: failing }));
  assert.deepEqual(rs.map((r) => [r.outcome, r.dsnStatus, r.diagnostic]), [['deferred', '4.3.0', '451 4.3.0 cannot read the message: EIO disk gone']]);
  const ac = new AbortController();
  ac.abort();
  const aborted = await agent().deliver(request(rx.url(), undefined, { signal: ac.signal }));
  assert.deepEqual(aborted.map((r) => [r.outcome, r.diagnostic]), [['deferred', '451 4.3.0 delivery aborted (shutdown)']]);
  const other = await agent().deliver({ ...request(rx.url()), nextHop: { kind: 'maildir', path: '/tmp/x' } });
  assert.equal(other[0]!.dsnStatus, '4.3.5');
  assert.equal(rx.requests.length, 0);
});

test('config: local.http defaults, the secret checked, a route URL the SSRF guard refuses stops the load naming the key', () => {
  const base = { listeners: [{ name: 'mx', address: '127.0.0.1', port: 2525 }] };
  const c = validateConfig(base);
  assert.deepEqual(c.local.http, { allowPrivate: false, timeoutMs: 30_000, maxBytes: 25 * 1024 * 1024, maxBytesInFlight: 100 * 1024 * 1024 });
  assert.throws(() => validateConfig({ ...base, local: { http: { secret: 'whsec_abc' } } }), /local\.http\.secret: the secret must decode to 16-64 bytes/);
  assert.throws(() => validateConfig({ ...base, local: { http: { secret: 'plain' } } }), /local\.http\.secret: expected "whsec_" followed by base64/);
  assert.equal(validateConfig({ ...base, local: { http: { secret: SECRET } } }).local.http.secret, SECRET);
  const route = (target: string) => ({ routes: [{ match: 'hooks.test', transport: 'http', target }] });
  assert.throws(() => validateConfig({ ...base, local: route('http://127.0.0.1:8080/in') }), /local\.routes\.0\.target: 127\.0\.0\.1 is a loopback address \(set local\.http\.allowPrivate: true to allow it\)/);
  assert.throws(() => validateConfig({ ...base, local: route('http://[fe80::1]/in') }), /local\.routes\.0\.target: fe80::1 is a link-local address/);
  assert.throws(() => validateConfig({ ...base, local: route('https://user:pw@hooks.example/in') }), /local\.routes\.0\.target: .*must not carry a user name or password/);
  assert.equal(validateConfig({ ...base, local: { ...route('http://127.0.0.1:8080/in'), http: { allowPrivate: true } } }).local.routes[0]!.target, 'http://127.0.0.1:8080/in');
  assert.equal(validateConfig({ ...base, local: route('https://hooks.example/in') }).local.routes.length, 1, 'names are checked at each request');
});
