import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConnectionLimiter } from '../../../src/smtpd/connection-limiter.js';

test('one count across listeners: per-IP and total limits', () => {
  const limits = { maxConnections: 3, maxConnectionsPerIp: 2 };
  const l = new ConnectionLimiter(() => limits);
  assert.ok(l.tryAcquire('127.0.0.2'));
  assert.ok(l.tryAcquire('127.0.0.2'));
  assert.ok(!l.tryAcquire('127.0.0.2'), 'per-IP limit');
  assert.ok(l.tryAcquire('127.0.0.3'));
  assert.ok(!l.tryAcquire('127.0.0.4'), 'total limit');
  l.release('127.0.0.2');
  assert.equal(l.count(), 2);
  assert.ok(l.tryAcquire('127.0.0.4'));
  limits.maxConnections = 10; // read at each connection (live reload)
  assert.ok(l.tryAcquire('127.0.0.5'));
});
