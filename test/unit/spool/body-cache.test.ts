/** BodyCache: bounded by total bytes, oldest dropped first. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BodyCache } from '../../../src/spool/sqlite/body-cache.js';

test('body cache: keeps at most maxBytes, drops the oldest first, ignores oversized bodies', () => {
  const c = new BodyCache(10);
  c.set('a', [Buffer.alloc(4)]);
  c.set('b', [Buffer.alloc(4)]);
  assert.equal(c.size(), 8);
  c.set('c', [Buffer.alloc(4)]);
  assert.equal(c.get('a'), undefined, 'oldest dropped');
  assert.ok(c.get('b') && c.get('c'));
  assert.equal(c.size(), 8);
  c.set('huge', [Buffer.alloc(11)]);
  assert.equal(c.get('huge'), undefined);
  c.delete('b');
  c.delete('missing');
  assert.equal(c.size(), 4);
  const off = new BodyCache(0);
  off.set('x', [Buffer.alloc(1)]);
  assert.equal(off.get('x'), undefined);
  off.set('empty', [Buffer.alloc(0)]);
  assert.equal(off.size(), 0);
});
