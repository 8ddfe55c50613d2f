/**
 * The PROXY / XCLIENT / TLS-policy / SNI keys of the configuration (issue 12): defaults, what is
 * refused and under which key, the role defaults of the TLS policy, and which keys SIGHUP applies.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_CIPHERS } from 'node:tls';
import { configSchema } from '../../../src/config/schema.js';
import { validateConfig } from '../../../src/config/load.js';
import { applyLiveConfig } from '../../../src/config/live.js';
import { ConfigError } from '../../../src/core/errors.js';
import { DEFAULT_TLS13_SUITES, SUBMISSION_CIPHERS, effectiveTlsPolicy, tlsPolicyOptions } from '../../../src/smtpd/tls-policy.js';

const base = { hostname: 'mx.test', dataDir: '/tmp/x', listeners: [{ name: 'mx', port: 2525 }] };

test('defaults: no proxies, no XCLIENT/XFORWARD clients, 10 s header timeout, no per-listener settings', () => {
  const c = configSchema.parse({});
  assert.deepEqual(c.policy.trustedProxies, []);
  assert.deepEqual(c.policy.xclientNetworks, []);
  assert.deepEqual(c.policy.xforwardNetworks, []);
  assert.equal(c.timeouts.proxyHeaderMs, 10_000);
  assert.equal(c.tls.certificates, undefined);
  const l = configSchema.parse(base).listeners[0]!;
  assert.equal(l.proxyProtocol, undefined);
  assert.equal(l.tlsPolicy, undefined);
});

test('bad values are refused naming the key', () => {
  const bad = (raw: unknown): string => {
    const r = configSchema.safeParse(raw);
    assert.equal(r.success, false);
    return r.error!.issues.map((i) => i.path.join('.')).join(',');
  };
  assert.equal(bad({ listeners: [{ name: 'mx', port: 25, proxyProtocol: 'v3' }] }), 'listeners.0.proxyProtocol');
  assert.equal(bad({ listeners: [{ name: 'mx', port: 25, tlsPolicy: { minVersion: 'SSLv3' } }] }), 'listeners.0.tlsPolicy.minVersion');
  assert.equal(bad({ listeners: [{ name: 'mx', port: 25, tlsPolicy: { ciphersuites: 'AES128-SHA' } }] }), 'listeners.0.tlsPolicy.ciphersuites');
  assert.equal(bad({ listeners: [{ name: 'mx', port: 25, tlsPolicy: { curves: 'X25519' } }] }), 'listeners.0.tlsPolicy');
  assert.equal(bad({ policy: { trustedProxies: ['10.0.0.0/33'] } }), 'policy.trustedProxies.0');
  assert.equal(bad({ policy: { xclientNetworks: ['nope'] } }), 'policy.xclientNetworks.0');
  assert.equal(bad({ tls: { certificates: [{ servername: 'bad name', cert: 'a', key: 'b' }] } }), 'tls.certificates.0.servername');
  assert.equal(bad({ tls: { certificates: [] } }), 'tls.certificates');
  assert.equal(bad({ timeouts: { proxyHeaderMs: 10 } }), 'timeouts.proxyHeaderMs');
});

test('load-time checks: node:tls refuses the policy (ConfigError naming the listener), cert/key with certificates, paths resolved', () => {
  const refused = (raw: object, key: string): void => {
    assert.throws(() => validateConfig({ ...base, ...raw }, '/etc/postline', {}), (e: unknown) => e instanceof ConfigError && e.key === key);
  };
  refused({ listeners: [{ name: 'mx', port: 25, tlsPolicy: { ciphers: 'NO-SUCH-SUITE' } }] }, 'listeners.0.tlsPolicy');
  refused({ listeners: [{ name: 'mx', port: 25 }, { name: 'b', port: 26, tlsPolicy: { ecdhCurve: 'no-such-curve' } }] }, 'listeners.1.tlsPolicy');
  refused({ tls: { cert: 'c.pem', key: 'k.pem', certificates: [{ servername: 'a.test', cert: 'a', key: 'b' }] } }, 'tls.certificates');
  const ok = validateConfig({ ...base, tls: { certificates: [{ servername: '*.Example.com', cert: 'a.crt', key: '/abs/a.key' }] } }, '/etc/postline', {});
  assert.deepEqual(ok.tls.certificates, [{ servername: '*.Example.com', cert: '/etc/postline/a.crt', key: '/abs/a.key' }]);
  validateConfig({ ...base, listeners: [{ name: 'mx', port: 25, tlsPolicy: { minVersion: 'TLSv1', ciphers: 'HIGH:@SECLEVEL=0', ecdhCurve: 'P-256' } }] }, '/', {});
});

test('TLS policy defaults by role: submission ECDHE AEAD only, mx Node\'s list; TLS 1.3 suites always kept', () => {
  const sub = effectiveTlsPolicy({ role: 'submission' });
  assert.equal(sub.minVersion, 'TLSv1.2');
  assert.equal(sub.ciphers, SUBMISSION_CIPHERS);
  for (const s of sub.ciphers.split(':')) assert.match(s, /^ECDHE-(RSA|ECDSA)-(AES\d+-GCM-SHA\d+|CHACHA20-POLY1305)$/, s);
  assert.equal(sub.ciphersuites, DEFAULT_TLS13_SUITES);
  const mx = effectiveTlsPolicy({ role: 'mx' });
  assert.equal(mx.minVersion, 'TLSv1.2');
  assert.equal(mx.ciphers, DEFAULT_CIPHERS.split(':').filter((c) => !c.startsWith('TLS_')).join(':'));
  const own = effectiveTlsPolicy({ role: 'mx', tlsPolicy: { ciphers: 'TLS_AES_128_GCM_SHA256:ECDHE-RSA-AES128-GCM-SHA256' } });
  assert.equal(own.ciphersuites, 'TLS_AES_128_GCM_SHA256');
  assert.equal(own.ciphers, 'ECDHE-RSA-AES128-GCM-SHA256');
  const opts = tlsPolicyOptions({ role: 'submission', tlsPolicy: { ciphersuites: 'TLS_AES_256_GCM_SHA384' } });
  assert.equal(opts.ciphers, `TLS_AES_256_GCM_SHA384:${SUBMISSION_CIPHERS}`, 'TLS 1.3 suites first: without them node turns TLS 1.3 off');
  assert.equal(opts.honorCipherOrder, true);
});

test('SIGHUP: policy.trustedProxies/xclientNetworks, timeouts.proxyHeaderMs and tls.certificates live; listener keys need a restart', () => {
  const running = validateConfig(base, '/tmp', {});
  const fresh = validateConfig({
    ...base,
    listeners: [{ name: 'mx', port: 2525, proxyProtocol: 'v2', tlsPolicy: { minVersion: 'TLSv1.3' } }],
    policy: { trustedProxies: ['192.0.2.1'], xclientNetworks: ['127.0.0.1'], xforwardNetworks: ['127.0.0.1'] },
    timeouts: { proxyHeaderMs: 3000 },
    tls: { certificates: [{ servername: 'mx.test', cert: 'a.crt', key: 'a.key' }] },
  }, '/tmp', {});
  const res = applyLiveConfig(running, fresh);
  for (const k of ['policy.trustedProxies', 'policy.xclientNetworks', 'policy.xforwardNetworks', 'timeouts.proxyHeaderMs', 'tls.certificates']) assert.ok(res.applied.includes(k), k);
  assert.deepEqual(res.needRestart, ['listeners']);
  assert.deepEqual(running.policy.trustedProxies, ['192.0.2.1']);
  assert.equal(running.listeners[0]!.proxyProtocol, undefined);
});
