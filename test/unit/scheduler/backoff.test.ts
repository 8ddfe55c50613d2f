import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { baseDelayMs, nextAttemptAt, retryDelayMs, type RetryPolicy } from '../../../src/scheduler/backoff.js';
import { DueIndex } from '../../../src/scheduler/due-index.js';

const policy = fc.record({
  initialMs: fc.integer({ min: 1, max: 10_000_000 }),
  maxMs: fc.integer({ min: 1, max: 100_000_000 }),
  multiplier: fc.double({ min: 1, max: 10, noNaN: true }),
  jitter: fc.double({ min: 0, max: 1, noNaN: true }),
}) as fc.Arbitrary<RetryPolicy>;

test('backoff without jitter is monotone non-decreasing and capped', () => {
  fc.assert(fc.property(policy, fc.integer({ min: 0, max: 2000 }), (p, n) => {
    const a = baseDelayMs(n, p);
    const b = baseDelayMs(n + 1, p);
    const cap = Math.max(p.initialMs, p.maxMs);
    return a <= b && b <= cap && a >= 1 && Number.isInteger(a);
  }));
});

test('backoff with jitter stays within the spread and the cap', () => {
  fc.assert(fc.property(policy, fc.integer({ min: 1, max: 200 }), fc.double({ min: 0, max: 0.999999, noNaN: true }), (p, n, r) => {
    const base = baseDelayMs(n, p);
    const d = retryDelayMs(n, p, () => r);
    const cap = Math.max(p.initialMs, p.maxMs);
    return d >= 1 && d <= cap && d >= Math.floor(base * (1 - p.jitter)) - 1 && d <= Math.ceil(base * (1 + p.jitter)) + 1;
  }));
});

test('backoff examples: Postfix-like defaults', () => {
  const p: RetryPolicy = { initialMs: 300_000, maxMs: 4_000_000, multiplier: 2, jitter: 0.1 };
  assert.deepEqual([1, 2, 3, 4, 5, 6].map((n) => baseDelayMs(n, p)), [300_000, 600_000, 1_200_000, 2_400_000, 4_000_000, 4_000_000]);
  assert.equal(baseDelayMs(0, p), 300_000);
  assert.equal(baseDelayMs(100_000, p), 4_000_000);
  assert.equal(retryDelayMs(1, p, () => 0), 270_000);
  assert.equal(retryDelayMs(1, p, () => 0.5), 300_000);
  assert.equal(nextAttemptAt(1000, 2, p, () => 0.5), 601_000);
});

test('DueIndex pops due IDs in time order, honours moves and deletes', () => {
  const ix = new DueIndex();
  ix.set('a', 30); ix.set('b', 10); ix.set('c', 20); ix.set('a', 5); ix.delete('c');
  assert.equal(ix.size, 2);
  assert.equal(ix.nextDueAt(), 5);
  assert.equal(ix.popDue(4), undefined);
  assert.equal(ix.popDue(100), 'a');
  assert.equal(ix.popDue(100), 'b');
  assert.equal(ix.popDue(100), undefined);
  fc.assert(fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 50 }), fc.integer({ min: 0, max: 1000 })), { maxLength: 3000 }), (ops) => {
    const ix2 = new DueIndex();
    const want = new Map<string, number>();
    for (const [k, t] of ops) { ix2.set(`m${k}`, t); want.set(`m${k}`, t); }
    const got: number[] = [];
    for (let i = 0; i < 100; i++) {
      const id = ix2.popDue(1000);
      if (id === undefined) break;
      got.push(want.get(id)!);
    }
    return got.length === want.size && got.every((t, i) => i === 0 || got[i - 1]! <= t);
  }));
});
