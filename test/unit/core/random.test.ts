/** core/random.ts: pooled CSPRNG bytes for identifiers. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pooledRandomBytes } from '../../../src/core/random.js';

test('pooledRandomBytes: the asked length, never the same bytes twice, across pool refills; bad sizes refused', () => {
  const seen = new Set<string>();
  const held: Buffer[] = [];
  for (let i = 0; i < 3000; i++) { // 36 KB: several 4 KiB pools
    const b = pooledRandomBytes(12);
    assert.equal(b.length, 12);
    const hex = b.toString('hex');
    assert.ok(!seen.has(hex), 'a repeat');
    seen.add(hex);
    if (i % 500 === 0) held.push(Buffer.from(b), b);
  }
  // A view handed out earlier is not overwritten by later pools.
  for (let i = 0; i < held.length; i += 2) assert.ok(held[i]!.equals(held[i + 1]!));
  assert.equal(pooledRandomBytes(4096).length, 4096);
  for (const n of [0, -1, 4097, 1.5]) assert.throws(() => pooledRandomBytes(n), RangeError);
  // Not all zero (the pool is filled).
  assert.ok(pooledRandomBytes(64).some((x) => x !== 0));
});
