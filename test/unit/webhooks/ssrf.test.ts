/** SSRF guard (src/webhooks/ssrf.ts), the webhook config keys, and the guard in a running dispatcher. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { classifyAddress, checkUrlStatic, resolveAndCheck, type LookupAll } from '../../../src/webhooks/ssrf.js';
import { WebhookTargetError } from '../../../src/webhooks/errors.js';
import { validateConfig } from '../../../src/config/load.js';
import { applyLiveConfig } from '../../../src/config/live.js';
import { ConfigError } from '../../../src/core/errors.js';
import { webhookSchema } from '../../../src/config/schema.js';
import { createPoster } from '../../../src/webhooks/http-post.js';
import { WebhookManager } from '../../../src/webhooks/manager.js';
import { SqliteWebhookCursorStore } from '../../../src/webhooks/cursor-store.js';
import { ArrayEventSource } from '../../helpers/array-event-source.js';
import { WebhookReceiver, newSecret } from '../../helpers/webhook-receiver.js';
import { waitFor } from '../../helpers/net.js';
import { silentLogger } from '../../../src/core/log.js';

test('classifyAddress', () => {
  const cases: Array<[string, string]> = [
    ['169.254.169.254', 'metadata'], ['fd00:ec2::254', 'metadata'], ['[fd00:ec2::254]', 'metadata'],
    ['169.254.1.2', 'link-local'], ['fe80::1', 'link-local'], ['fe80::1%eth0', 'link-local'], ['febf::1', 'link-local'],
    ['0.0.0.0', 'unspecified'], ['0.1.2.3', 'unspecified'], ['::', 'unspecified'],
    ['224.0.0.1', 'multicast'], ['255.255.255.255', 'multicast'], ['ff02::1', 'multicast'],
    ['127.0.0.1', 'loopback'], ['127.255.0.9', 'loopback'], ['::1', 'loopback'],
    ['10.1.2.3', 'private'], ['172.16.0.1', 'private'], ['172.31.255.255', 'private'], ['192.168.1.1', 'private'], ['100.64.0.1', 'private'], ['fd12::1', 'private'], ['fc00::1', 'private'],
    ['::ffff:127.0.0.1', 'loopback'], ['::ffff:7f00:1', 'loopback'], ['::ffff:a9fe:a9fe', 'metadata'], ['64:ff9b::169.254.169.254', 'metadata'], ['::ffff:8.8.8.8', 'public'],
    ['8.8.8.8', 'public'], ['172.32.0.1', 'public'], ['2001:4860:4860::8888', 'public'], ['192.0.2.1', 'public'],
    ['example.com', 'invalid'], ['', 'invalid'],
  ];
  for (const [a, want] of cases) assert.equal(classifyAddress(a), want, a);
});

test('checkUrlStatic: scheme, credentials, literal addresses (after URL normalization)', () => {
  assert.equal(checkUrlStatic('https://hooks.example.com/x', false), undefined);
  assert.equal(checkUrlStatic('http://203.0.113.9:8080/x', false), undefined);
  assert.match(checkUrlStatic('ftp://example.com/', false)!, /only http and https/);
  assert.match(checkUrlStatic('file:///etc/passwd', false)!, /only http and https/);
  assert.match(checkUrlStatic('not a url', false)!, /not a URL/);
  assert.match(checkUrlStatic('https://user:pw@example.com/', false)!, /user name or password/);
  assert.match(checkUrlStatic('http://169.254.169.254/latest/meta-data', true)!, /metadata/, 'metadata even with allowPrivate');
  assert.match(checkUrlStatic('http://[fd00:ec2::254]/', true)!, /metadata/);
  assert.match(checkUrlStatic('http://[fe80::1]/', true)!, /link-local/);
  assert.match(checkUrlStatic('http://0.0.0.0:80/', true)!, /unspecified/);
  assert.match(checkUrlStatic('http://127.0.0.1:9/', false)!, /loopback.*allowPrivate/);
  assert.match(checkUrlStatic('http://2130706433/', false)!, /loopback/, 'decimal IPv4 is normalized by URL');
  assert.match(checkUrlStatic('http://0x7f.1/', false)!, /loopback/, 'hex IPv4 too');
  assert.match(checkUrlStatic('http://[::ffff:127.0.0.1]/', false)!, /loopback/);
  assert.match(checkUrlStatic('http://10.0.0.1/', false)!, /private/);
  assert.equal(checkUrlStatic('http://127.0.0.1:9/', true), undefined);
  assert.equal(checkUrlStatic('http://localhost:9/', false), undefined, 'names are checked at send time');
});

test('resolveAndCheck: every address of a name is checked', async () => {
  const dns = (map: Record<string, string[]>): LookupAll => async (h) => {
    const a = map[h];
    if (!a) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${h}`), { code: 'ENOTFOUND' });
    return a.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };
  const lookup = dns({ 'good.test': ['203.0.113.5', '2001:db8::5'], 'mixed.test': ['203.0.113.5', '169.254.169.254'], 'lo.test': ['127.0.0.1'], 'empty.test': [] });
  await resolveAndCheck('https://good.test/h', false, lookup);
  await assert.rejects(resolveAndCheck('https://mixed.test/h', true, lookup), (e: unknown) => e instanceof WebhookTargetError && e.code === 'ERR_WEBHOOK_TARGET' && /mixed.test resolves to 169.254.169.254 is a metadata/.test(e.message));
  await assert.rejects(resolveAndCheck('https://lo.test/h', false, lookup), /loopback/);
  await resolveAndCheck('https://lo.test/h', true, lookup);
  await assert.rejects(resolveAndCheck('https://none.test/h', false, lookup), /cannot resolve none.test/);
  await assert.rejects(resolveAndCheck('https://empty.test/h', false, lookup), /no addresses/);
  await assert.rejects(resolveAndCheck('gopher://good.test/', false, lookup), WebhookTargetError);
  await resolveAndCheck('http://localhost:1/', true); // the system resolver: localhost is loopback
  await assert.rejects(resolveAndCheck('http://localhost:1/', false), /loopback/);
});

test('config: webhook defaults, bad secrets, bad URLs (a literal bad address fails the load), duplicate names', () => {
  const secret = newSecret();
  const base = { listeners: [{ name: 'mx', port: 2525 }] };
  const c = validateConfig({ ...base, webhooks: [{ name: 'crm', url: 'https://hooks.example.com/postline', secret }] }, '/tmp');
  const w = c.webhooks[0]!;
  assert.equal(w.batch, 1);
  assert.equal(w.timeoutMs, 10_000);
  assert.equal(w.maxAgeMs, 3 * 24 * 3600_000);
  assert.equal(w.allowPrivate, false);
  assert.equal(w.from, 'now');
  assert.equal(w.events, undefined, 'all types');
  assert.deepEqual(w.retry, { initialMs: 5000, maxMs: 600_000, jitter: 0.2 });
  assert.deepEqual(validateConfig(base, '/tmp').webhooks, []);
  const bad = (hook: Record<string, unknown>, re: RegExp) => assert.throws(
    () => validateConfig({ ...base, webhooks: [{ name: 'h', url: 'https://hooks.example.com/', secret, ...hook }] }, '/tmp'),
    (e: unknown) => e instanceof ConfigError && re.test(e.message), JSON.stringify(hook));
  bad({ secret: 'abc' }, /webhooks\.0\.secret: expected "whsec_"/);
  bad({ secret: 'whsec_' + Buffer.alloc(8).toString('base64') }, /16-64 bytes/);
  bad({ url: 'http://169.254.169.254/' }, /webhooks\.0\.url: .*metadata/);
  bad({ url: 'http://127.0.0.1:8080/' }, /webhooks\.0\.url: .*loopback/);
  bad({ url: 'ftp://x.example/' }, /webhooks\.0\.url: only http and https/);
  bad({ batch: 0 }, /webhooks\.0\.batch/);
  bad({ batch: 101 }, /webhooks\.0\.batch/);
  bad({ events: ['delivered'] }, /webhooks\.0\.events\.0/);
  bad({ name: 'no spaces' }, /webhooks\.0\.name/);
  bad({ retry: { initialMs: 1000, maxMs: 10 } }, /retry\.maxMs/);
  bad({ colour: 'red' }, /colour|Unrecognized/i);
  assert.throws(() => validateConfig({ ...base, webhooks: [{ name: 'h', url: 'https://a.example/', secret }, { name: 'h', url: 'https://b.example/', secret }] }, '/tmp'), /duplicate webhook name "h"/);
  const ok = validateConfig({ ...base, webhooks: [{ name: 'h', url: 'http://127.0.0.1:8080/', secret, allowPrivate: true, events: ['recipient.*', 'message.received'] }] }, '/tmp');
  assert.deepEqual(ok.webhooks[0]!.events, ['recipient.*', 'message.received']);
});

test('config: webhooks is a live key (SIGHUP)', () => {
  const base = { hostname: 'mx.test', listeners: [{ name: 'mx', port: 2525 }] };
  const running = validateConfig(base, '/tmp');
  const fresh = validateConfig({ ...base, webhooks: [{ name: 'h', url: 'https://a.example/', secret: newSecret() }] }, '/tmp');
  const res = applyLiveConfig(running, fresh);
  assert.deepEqual(res.applied, ['webhooks']);
  assert.deepEqual(res.needRestart, []);
  assert.equal(running.webhooks[0]!.name, 'h');
});

test('a running dispatcher refuses a name that resolves to a forbidden address, records why, and sends nothing', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'postline-hooks-'));
  const receiver = await new WebhookReceiver().listen();
  const cursors = SqliteWebhookCursorStore.open(dir);
  const source = new ArrayEventSource();
  const secret = newSecret();
  receiver.endpoint('/x', secret);
  let fetched = 0;
  const m = new WebhookManager({
    source, cursors, logger: silentLogger(),
    lookup: async () => [{ address: '169.254.169.254', family: 4 }],
    post: async (req) => { fetched++; return createPoster()(req); },
  });
  try {
    const ep = webhookSchema.parse({ name: 'x', url: `http://rebind.test:${receiver.port}/x`, secret, allowPrivate: true, retry: { initialMs: 20, maxMs: 50 }, pollMs: 20 });
    m.start([ep]);
    await waitFor('row', () => cursors.get('x'));
    source.appendMany(2);
    await waitFor('a refusal recorded', async () => /metadata/.test((await cursors.get('x'))?.lastError ?? ''));
    assert.equal(fetched, 0, 'no request was made');
    assert.equal(receiver.requests.size, 0);
    assert.equal((await cursors.get('x'))!.cursor, 0, 'the events are kept, not skipped');
  } finally {
    await m.stop();
    await receiver.close();
    await cursors.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('the request connects only to the address the guard checked (the lookup is pinned: no DNS rebinding)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'postline-hooks-'));
  const receiver = await new WebhookReceiver().listen();
  const cursors = SqliteWebhookCursorStore.open(dir);
  const source = new ArrayEventSource();
  const secret = newSecret();
  receiver.endpoint('/p', secret);
  // "pinned.invalid" does not resolve in the system DNS (RFC 6761 .invalid): only the guard's
  // answer (127.0.0.1) can make the request reach the receiver.
  const m = new WebhookManager({ source, cursors, logger: silentLogger(), lookup: async () => [{ address: '127.0.0.1', family: 4 }] });
  try {
    const ep = webhookSchema.parse({ name: 'p', url: `http://pinned.invalid:${receiver.port}/p`, secret, allowPrivate: true, retry: { initialMs: 20, maxMs: 50 }, pollMs: 20, from: 'start' });
    m.start([ep]);
    source.appendMany(3);
    await waitFor('three verified deliveries', () => receiver.uniqueIds('/p').size >= 3, 10_000);
    assert.equal(receiver.forged, 0, 'every signature verified by the standardwebhooks package');
  } finally {
    await m.stop();
    await receiver.close();
    await cursors.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('addresses that stand for IPv4 in any IPv6 spelling, and reserved ranges, are classed by what they reach', () => {
  const cases: Array<[string, string]> = [
    ['::169.254.169.254', 'metadata'], ['[::169.254.169.254]', 'metadata'], ['0:0:0:0:0:ffff:169.254.169.254', 'metadata'],
    ['::ffff:a9fe:a9fe', 'metadata'], ['64:ff9b::a9fe:a9fe', 'metadata'], ['2002:a9fe:a9fe::1', 'metadata'],
    ['2002:7f00:1::', 'loopback'], ['64:ff9b:1::1', 'private'], ['192.0.0.8', 'private'], ['198.18.0.1', 'private'],
    ['240.1.2.3', 'reserved'], ['100::1', 'reserved'],
    ['8.8.8.8', 'public'], ['2001:4860::8888', 'public'],
  ];
  for (const [a, c] of cases) assert.equal(classifyAddress(a), c, a);
  assert.match(checkUrlStatic('http://[::169.254.169.254]/x', true) ?? '', /metadata/);
});
