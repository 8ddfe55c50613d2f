/**
 * Token buckets of traffic shaping (src/scheduler/token-bucket.ts): burst, steady rate, reserved
 * future slots, rate changes that keep what was taken, several limits at once.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { defaultBurst, reserveAll, TokenBucket } from '../../../src/scheduler/token-bucket.js';

test('a bucket lets its burst through at once, then one per interval', () => {
  const b = new TokenBucket(20, 1000); // 20 per second, burst 2
  assert.equal(defaultBurst(20), 2);
  assert.equal(b.intervalMs, 50);
  const t0 = 1_000_000;
  assert.equal(b.tryTake(t0), true);
  assert.equal(b.tryTake(t0), true);
  assert.equal(b.tryTake(t0), false, 'the burst is spent');
  assert.equal(b.nextFree(t0), t0 + 50);
  assert.equal(b.tryTake(t0 + 49), false);
  assert.equal(b.tryTake(t0 + 50), true);
  // Idle for a while: the burst is back, never more.
  assert.equal(b.tryTake(t0 + 10_000), true);
  assert.equal(b.tryTake(t0 + 10_000), true);
  assert.equal(b.tryTake(t0 + 10_000), false);
});

test('reserve hands out distinct future slots: 200 at 20 per second span about 9.9 s', () => {
  const b = new TokenBucket(20, 1000);
  const t0 = 5_000;
  const slots = Array.from({ length: 200 }, () => b.reserve(t0));
  assert.equal(slots[0], t0);
  assert.equal(slots[1], t0, 'burst of 2');
  for (let i = 2; i < slots.length; i++) assert.equal(slots[i]! - slots[i - 1]!, 50, `slot ${i}`);
  assert.equal(slots[199]! - t0, 9900);
  // In any window of one second, at most rate + burst.
  for (let i = 0; i < slots.length; i++) {
    const inWindow = slots.filter((s) => s >= slots[i]! && s < slots[i]! + 1000).length;
    assert.ok(inWindow <= 22, `window at ${i}: ${inWindow}`);
  }
});

test('setRate keeps the reservations already made and applies the new rate after them', () => {
  const b = new TokenBucket(1, 1000, 1);
  const t0 = 0;
  assert.equal(b.reserve(t0), 0);
  assert.equal(b.reserve(t0), 1000);
  b.setRate(2, 1000, 1); // twice as fast
  assert.equal(b.reserve(t0), 2000, 'the next slot after the ones taken');
  assert.equal(b.reserve(t0), 2500);
  assert.throws(() => b.setRate(0, 1000), RangeError);
  assert.throws(() => new TokenBucket(1, 0), RangeError);
});

test('reserveAll takes the first time every limit has room (per second and per minute)', () => {
  const perSecond = new TokenBucket(10, 1000, 1);
  const perMinute = new TokenBucket(3, 60_000, 1);
  const t0 = 0;
  assert.equal(reserveAll([perSecond, perMinute], t0), 0);
  assert.equal(reserveAll([perSecond, perMinute], t0), 20_000, 'the minute limit decides');
  assert.equal(reserveAll([perSecond, perMinute], t0), 40_000);
  assert.equal(reserveAll([], 123), 123);
});
