/** loadOrCreateTls: self-signed material created once in dataDir/tls (0600) and reused; configured files read. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { silentLogger } from '../../../src/core/log.js';
import { ConfigError } from '../../../src/core/errors.js';
import { loadOrCreateTls } from '../../../src/smtpd/tls.js';
import { testConfig } from './helpers.js';

test('creates a self-signed pair for the hostname once, mode 0600, and reuses it', () => {
  const config = testConfig();
  const first = loadOrCreateTls(config, silentLogger());
  const cert = new X509Certificate(first.cert);
  assert.match(cert.subject, /CN=mx\.test/);
  assert.ok(cert.checkHost('mx.test'));
  for (const f of ['cert.pem', 'key.pem']) assert.equal(statSync(join(config.dataDir, 'tls', f)).mode & 0o777, 0o600);
  const again = loadOrCreateTls(config, silentLogger());
  assert.deepEqual(again, first);
});

test('reads configured cert and key files; one without the other is a ConfigError', () => {
  const made = loadOrCreateTls(testConfig(), silentLogger());
  const config = testConfig();
  const certPath = join(config.dataDir, 'c.pem');
  const keyPath = join(config.dataDir, 'k.pem');
  writeFileSync(certPath, made.cert);
  writeFileSync(keyPath, made.key);
  const loaded = loadOrCreateTls({ ...config, tls: { cert: certPath, key: keyPath } }, silentLogger());
  assert.deepEqual(loaded, made);
  assert.throws(() => loadOrCreateTls({ ...config, tls: { cert: certPath } }, silentLogger()), ConfigError);
  assert.throws(() => loadOrCreateTls({ ...config, tls: { cert: certPath, key: join(config.dataDir, 'missing') } }, silentLogger()), ConfigError);
});
