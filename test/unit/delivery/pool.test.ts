/** Connection pool: reuse, limits, bounded waits, idle expiry. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConnectionPool, type Poolable } from '../../../src/delivery/pool.js';
import { SmtpClientError } from '../../../src/delivery/client-error.js';

class Fake implements Poolable {
  usable = true;
  quits = 0;
  async quit(): Promise<void> { this.quits++; this.usable = false; }
}

const opts = { maxConnections: 2, connectionsPerDestination: 1, idleTimeoutMs: 10_000, messagesPerConnection: 2, maxWaitMs: 1000 };

test('an idle connection is reused for the same key until messagesPerConnection', async () => {
  const pool = new ConnectionPool<Fake>(opts);
  const l1 = await pool.acquire('k');
  assert.equal(l1.conn, undefined);
  const c = new Fake();
  l1.attach(c);
  l1.release({ sent: true, keep: true });
  assert.equal(pool.idleCount('k'), 1);
  const l2 = await pool.acquire('k');
  assert.equal(l2.conn, c);
  assert.equal(l2.reused, true);
  l2.release({ sent: true, keep: true });
  assert.equal(c.quits, 1, 'closed after 2 messages');
  assert.equal(pool.size(), 0);
  await pool.close();
});

test('per-destination limit makes callers wait; release hands the connection over', async () => {
  const pool = new ConnectionPool<Fake>(opts);
  const l1 = await pool.acquire('k');
  const c = new Fake();
  l1.attach(c);
  const waiting = pool.acquire('k');
  l1.release({ sent: true, keep: true });
  const l2 = await waiting;
  assert.equal(l2.conn, c);
  l2.release({ sent: false, keep: false });
  assert.equal(pool.size('k'), 0);
  await pool.close();
});

test('the wait is bounded', async () => {
  const pool = new ConnectionPool<Fake>({ ...opts, maxWaitMs: 50 });
  const l1 = await pool.acquire('k');
  await assert.rejects(pool.acquire('k'), (e: unknown) => e instanceof SmtpClientError && e.kind === 'pool');
  l1.release({ sent: false, keep: false });
  await pool.close();
});

test('maxConnections: an idle connection of another key is closed to make room', async () => {
  const pool = new ConnectionPool<Fake>(opts);
  const a = await pool.acquire('a');
  const ca = new Fake();
  a.attach(ca);
  a.release({ sent: true, keep: true });
  const b = await pool.acquire('b');
  const c = await pool.acquire('c');
  assert.equal(ca.quits, 1);
  assert.equal(pool.size(), 2);
  const d = pool.acquire('d');
  b.release({ sent: false, keep: false });
  const ld = await d;
  assert.equal(ld.conn, undefined);
  ld.release({ sent: false, keep: false });
  c.release({ sent: false, keep: false });
  assert.equal(pool.size(), 0);
  await pool.close();
});

test('idle connections expire after idleTimeoutMs; close() quits idle ones', async () => {
  const pool = new ConnectionPool<Fake>({ ...opts, idleTimeoutMs: 20 });
  const l = await pool.acquire('k');
  const c = new Fake();
  l.attach(c);
  l.release({ sent: true, keep: true });
  for (let i = 0; i < 50 && c.quits === 0; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(c.quits, 1);
  assert.equal(pool.size(), 0);
  const l2 = await pool.acquire('k');
  const c2 = new Fake();
  l2.attach(c2);
  l2.release({ sent: true, keep: true });
  await pool.close();
  assert.equal(c2.quits, 1);
  await assert.rejects(pool.acquire('k'));
});

test('an idle connection that became unusable (e.g. a 421 while parked) is closed, never handed out', async () => {
  const pool = new ConnectionPool<Fake>(opts);
  const l1 = await pool.acquire('k');
  const c = new Fake();
  l1.attach(c);
  l1.release({ sent: true, keep: true });
  c.usable = false;
  const l2 = await pool.acquire('k');
  assert.equal(l2.conn, undefined, 'a fresh slot');
  assert.equal(c.quits, 1, 'the stale one was closed');
  assert.equal(pool.size(), 1);
  l2.release({ sent: false, keep: false });
  await pool.close();
});

test('without connectionsPerDestination the pool follows its callers (the scheduler caps); a lease brings its own messages per connection', async () => {
  const pool = new ConnectionPool<Fake>({ maxConnections: 4, idleTimeoutMs: 10_000, messagesPerConnection: 100, maxWaitMs: 1000 });
  const leases = await Promise.all([pool.acquire('k'), pool.acquire('k'), pool.acquire('k')]);
  assert.equal(pool.size('k'), 3, 'no per-key cap of its own');
  const c = new Fake();
  leases[0]!.attach(c);
  for (const l of leases.slice(1)) l.release({ sent: false, keep: false });
  leases[0]!.release({ sent: true, keep: true });
  // The destination's rule says 2 messages per connection: one more, then it is closed.
  const l2 = await pool.acquire('k', undefined, 2);
  assert.equal(l2.conn, c);
  l2.release({ sent: true, keep: true });
  assert.equal(c.quits, 1, 'closed after the rule\'s 2 messages');
  // An idle connection already past a lower limit is closed instead of handed out.
  const l3 = await pool.acquire('k');
  const d = new Fake();
  l3.attach(d);
  l3.release({ sent: true, keep: true });
  const l4 = await pool.acquire('k', undefined, 1);
  assert.equal(l4.conn, undefined, 'a fresh slot, not the used-up connection');
  assert.equal(d.quits, 1);
  l4.release({ sent: false, keep: false });
  await pool.close();
});
