/** The Bloom filter of the RCPT check (src/suppression/key-filter.ts): no false negatives, a low false-positive rate at capacity. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KeyFilter } from '../../../src/suppression/key-filter.js';

test('KeyFilter: every key added is found, by the whole key or from a scope prefix; about 1 % false positives at capacity', () => {
  const f = new KeyFilter(20_000);
  for (let i = 0; i < 20_000; i++) f.add(`${i % 2 ? '*' : 'shop.test'}\0user${i}@d${i % 97}.example`);
  assert.equal(f.size, 20_000);
  const all = KeyFilter.prefix('*');
  const shop = KeyFilter.prefix('shop.test');
  for (let i = 0; i < 20_000; i++) {
    const a = `user${i}@d${i % 97}.example`;
    assert.ok(f.mightHave(`${i % 2 ? '*' : 'shop.test'}\0${a}`), a);
    assert.ok(f.mightHaveAfter(i % 2 ? all : shop, a), a);
  }
  let fp = 0;
  for (let i = 0; i < 20_000; i++) if (f.mightHaveAfter(all, `other${i}@d${i % 97}.example`)) fp++;
  assert.ok(fp / 20_000 < 0.03, `false positives ${fp} of 20000`);
  assert.ok(f.bytes <= 20_000 * 10 / 8 + 1024);
  assert.equal(new KeyFilter(10).mightHave('x'), false);
});
