/** The `http` configuration: on by default on loopback, `null` turns it off, the body limit, TLS paths resolved and checked. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { apiMaxBodyBytes, configSchema } from '../../../src/config/schema.js';
import { loadConfig } from '../../../src/config/load.js';
import { ConfigError } from '../../../src/core/errors.js';

test('http defaults, http: null, and the body limit', () => {
  const d = configSchema.parse({});
  assert.deepEqual(d.http, {
    address: '127.0.0.1', port: 8025, requestTimeoutMs: 300_000, maxConnections: 1024, maxRecipientsPerRequest: 1000,
    maxBytesPerRequest: 500 * 1024 * 1024, idempotencyTtlMs: 86_400_000, metricsAuth: false,
  });
  assert.equal(configSchema.safeParse({ http: { maxConnections: 0 } }).success, false);
  assert.equal(apiMaxBodyBytes(d), Math.ceil((50 * 1024 * 1024) / 3) * 4 + 1024 * 1024);
  assert.equal(configSchema.parse({ http: null }).http, null);
  assert.equal(apiMaxBodyBytes(configSchema.parse({ http: { maxBodyBytes: 1234 } })), 1234);
  assert.equal(configSchema.safeParse({ http: { port: 70000 } }).success, false);
  assert.equal(configSchema.safeParse({ http: { colour: 'blue' } }).success, false);
});

test('http.tls files are resolved against the configuration file, and need each other', () => {
  const dir = mkdtempSync(join(tmpdir(), 'postline-httpcfg-'));
  try {
    const f = join(dir, 'p.yaml');
    writeFileSync(f, 'http:\n  tls: { cert: c.pem, key: k.pem }\n');
    const cfg = loadConfig(f);
    assert.deepEqual(cfg.http?.tls, { cert: join(dir, 'c.pem'), key: join(dir, 'k.pem') });
    writeFileSync(f, 'http:\n  tls: { cert: c.pem }\n');
    assert.throws(() => loadConfig(f), (e: unknown) => e instanceof ConfigError && e.key === 'http.tls.key');
    writeFileSync(f, 'http:\n');
    assert.equal(loadConfig(f).http, null);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
