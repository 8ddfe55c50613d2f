import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, validateConfig } from '../../../src/config/load.js';
import { ConfigError } from '../../../src/core/errors.js';

test('defaults: three listeners on loopback, ./var, Postfix-like limits', () => {
  const c = validateConfig({}, '/tmp/x');
  assert.deepEqual(c.listeners.map((l) => [l.name, l.port, l.role, l.tls]), [
    ['mx', 2525, 'mx', 'starttls'],
    ['submission', 5870, 'submission', 'starttls'],
    ['smtps', 4650, 'submission', 'implicit'],
  ]);
  assert.equal(c.dataDir, '/tmp/x/var');
  assert.equal(c.delivery.mxPort, 25);
  assert.equal(c.limits.maxLineLength, 65536);
  assert.equal(c.delivery.retry.initialMs, 300_000);
  assert.equal(c.delivery.maxQueueLifetimeMs, 5 * 24 * 3600_000);
});

test('the issue example file loads as written', () => {
  const dir = mkdtempSync(join(tmpdir(), 'postline-cfg-'));
  try {
    const f = join(dir, 'postline.yaml');
    writeFileSync(f, `hostname: mx.example.test
dataDir: ./var
listeners:
  - { name: mx, address: 127.0.0.1, port: 2525, role: mx, tls: starttls }
  - { name: submission, address: 127.0.0.1, port: 5870, role: submission, tls: starttls }
  - { name: smtps, address: 127.0.0.1, port: 4650, role: submission, tls: implicit }
relay:
  trustedNetworks: ["127.0.0.0/8", "::1/128"]
  localDomains: ["example.test", { domain: example.org, recipients: [alice] }]
delivery:
  relayhost: { host: 127.0.0.1, port: 2699, tls: none }
  dns: { servers: ["127.0.0.1:5353"] }
`);
    const c = loadConfig(f, {});
    assert.equal(c.hostname, 'mx.example.test');
    assert.equal(c.dataDir, join(dir, 'var'));
    assert.equal(c.delivery.relayhost?.port, 2699);
    assert.equal(c.delivery.relayhost?.tls, 'none');
    assert.deepEqual(c.delivery.dns.servers, ['127.0.0.1:5353']);
    assert.equal(c.delivery.dns.timeoutMs, 5000);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad values name the key', () => {
  assert.throws(() => validateConfig({ listeners: [{ name: 'a', port: 'x' }] }), (e: unknown) => e instanceof ConfigError && /listeners\.0\.port/.test(e.message));
  assert.throws(() => validateConfig({ listners: [] }), /listners/);
  assert.throws(() => validateConfig({ delivery: { relayhost: { host: 'h', tls: 'sometimes' } } }), /delivery\.relayhost\.tls/);
  assert.throws(() => validateConfig({ listeners: [{ name: 'a', port: 1 }, { name: 'a', port: 2 }] }), /duplicate listener name/);
  assert.throws(() => validateConfig({ tls: { cert: 'c.pem' } }), /tls: give both/);
  assert.throws(() => validateConfig([1, 2]), /YAML mapping/);
});

test('a file that is not YAML or cannot be read gives a clear error', () => {
  const dir = mkdtempSync(join(tmpdir(), 'postline-cfg-'));
  try {
    const f = join(dir, 'bad.yaml');
    writeFileSync(f, 'listeners: [ {name: a\n');
    assert.throws(() => loadConfig(f, {}), /not valid YAML/);
    assert.throws(() => loadConfig(join(dir, 'missing.yaml'), {}), /cannot read configuration file/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('environment variables override the main keys', () => {
  const c = validateConfig({ delivery: { relayhost: { host: 'a', port: 26, tls: 'none' } } }, '/tmp', {
    POSTLINE_HOSTNAME: 'env.example',
    POSTLINE_DATA_DIR: '/tmp/envdata',
    POSTLINE_RELAYHOST: '[127.0.0.1]:2600',
    POSTLINE_DNS_SERVERS: '127.0.0.1:5353, 127.0.0.2:53',
    POSTLINE_MX_PORT: '2626',
    POSTLINE_LOCAL_DOMAINS: 'a.test,b.test',
  });
  assert.equal(c.hostname, 'env.example');
  assert.equal(c.dataDir, '/tmp/envdata');
  assert.equal(c.delivery.relayhost?.host, '127.0.0.1');
  assert.equal(c.delivery.relayhost?.port, 2600);
  assert.equal(c.delivery.relayhost?.tls, 'none');
  assert.deepEqual(c.delivery.dns.servers, ['127.0.0.1:5353', '127.0.0.2:53']);
  assert.equal(c.delivery.mxPort, 2626);
  assert.deepEqual(c.relay.localDomains, ['a.test', 'b.test']);
  assert.throws(() => validateConfig({}, '/tmp', { POSTLINE_MX_PORT: 'abc' }), /delivery\.mxPort/);
});

test('auth and arc: defaults, strict keys, the ARC key path relative to the file', () => {
  const d = validateConfig({}, '/tmp', {});
  assert.deepEqual(d.auth, {
    enabled: true, verifyTrusted: false, minKeyBits: 1024, timeoutMs: 10_000, dmarc: { reject: false },
    dnsCache: { entries: 20_000, maxTtlS: 3600, negativeTtlS: 300 },
  });
  assert.equal(d.arc, undefined);
  assert.equal(d.delivery.routes.length, 0);
  const c = validateConfig({
    auth: { authservId: 'mx.example.com', dmarc: { reject: true }, dns: { servers: ['127.0.0.1:5353'] } },
    arc: { domain: 'example.com', selector: 'arc1', privateKey: 'keys/arc.pem' },
    delivery: { routes: [{ domain: 'fwd.example', host: '127.0.0.1', arcSeal: true }] },
  }, '/etc/postline', {});
  assert.equal(c.auth.authservId, 'mx.example.com');
  assert.deepEqual(c.auth.dns, { servers: ['127.0.0.1:5353'], timeoutMs: 3000, tries: 2 });
  assert.deepEqual(c.arc, { domain: 'example.com', selector: 'arc1', privateKey: '/etc/postline/keys/arc.pem', sealRelayed: true });
  assert.equal(c.delivery.routes[0]!.arcSeal, true);
  assert.throws(() => validateConfig({ auth: { dmarc: { rejct: true } } }, '/tmp', {}), /auth\.dmarc/);
  assert.throws(() => validateConfig({ auth: { authservId: 'bad id;' } }, '/tmp', {}), /auth\.authservId/);
  assert.throws(() => validateConfig({ arc: { domain: 'example.com', selector: 'a' } }, '/tmp', {}), /arc\.privateKey/);
});
