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

test('a slot moves to a new address (XCLIENT) within the per-IP limit, is released once, and the total never changes', () => {
  const l = new ConnectionLimiter(() => ({ maxConnections: 10, maxConnectionsPerIp: 1 }));
  const a = l.acquire('127.0.0.1')!;
  const b = l.acquire('127.0.0.1');
  assert.equal(b, undefined, 'per-IP limit');
  assert.ok(a.move('192.0.2.1'));
  assert.equal(a.address, '192.0.2.1');
  assert.equal(l.countFor('127.0.0.1'), 0, 'the front end is no longer counted');
  const c = l.acquire('127.0.0.1')!;
  assert.equal(c.move('192.0.2.1'), false, '192.0.2.1 is at its limit');
  assert.equal(c.address, '127.0.0.1');
  assert.equal(l.count(), 2);
  a.release();
  a.release();
  assert.equal(l.count(), 1);
  assert.equal(l.countFor('192.0.2.1'), 0);
  c.release();
  assert.equal(l.count(), 0);
});
