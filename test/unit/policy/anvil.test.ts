/**
 * The per-client counter table (src/policy/anvil.ts) and the address helpers (src/policy/ip.ts):
 * sliding-window counts, LRU eviction that forgets rather than blocks, and the memory of 100,000
 * addresses (a figure for the note: printed as "FIGURE").
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Anvil } from '../../../src/policy/anvil.js';
import { ipv6Groups, networkKey, reversedName } from '../../../src/policy/ip.js';

test('counts within the window; the previous window fades out linearly', () => {
  const a = new Anvil(2, 60_000, 100);
  const t0 = 600_000; // a window boundary
  for (let i = 0; i < 10; i++) a.add('x', 0, t0 + i);
  assert.equal(a.count('x', 0, t0 + 100), 10);
  assert.equal(a.count('x', 1, t0 + 100), 0);
  assert.equal(a.count('x', 0, t0 + 60_000), 10); // next window: all of the previous one still overlaps
  assert.equal(a.count('x', 0, t0 + 90_000), 5); // half of it
  assert.equal(a.count('x', 0, t0 + 120_000), 0); // two windows later: gone
  assert.equal(a.add('x', 0, t0 + 120_001), 1);
});

test('LRU: the least recently used key is forgotten at the cap, never refused', () => {
  const a = new Anvil(1, 60_000, 3);
  a.add('a', 0, 1); a.add('b', 0, 1); a.add('c', 0, 1);
  a.add('a', 0, 2); // a is now the most recent
  a.add('d', 0, 3); // evicts b
  assert.equal(a.size, 3);
  assert.equal(a.count('b', 0, 3), 0);
  assert.equal(a.count('a', 0, 3), 2);
  a.setMaxEntries(1);
  assert.equal(a.size, 1);
  assert.equal(a.count('d', 0, 3), 1);
});

test('networks and list names: /24, /64, IPv4-mapped, reversed octets and nibbles (RFC 5782 2.1, 2.4)', () => {
  assert.equal(networkKey('192.0.2.77'), '192.0.2.0/24');
  assert.equal(networkKey('192.0.2.77', 16), '192.0.0.0/16');
  assert.equal(networkKey('2001:db8:1:2:3:4:5:6'), '2001:db8:1:2:0:0:0:0/64');
  assert.equal(networkKey('2001:db8:1:2::9'), networkKey('2001:db8:1:2:ffff::1'));
  assert.deepEqual(ipv6Groups('::ffff:127.0.0.2'), [0, 0, 0, 0, 0, 0xffff, 0x7f00, 2]);
  assert.deepEqual(ipv6Groups('::1'), [0, 0, 0, 0, 0, 0, 0, 1]);
  assert.equal(ipv6Groups('1.2.3.4'), undefined);
  assert.equal(reversedName('192.0.2.99', 'bl.test'), '99.2.0.192.bl.test');
  // RFC 5782 2.4 example: 2001:db8:1:2:3:4:567:89ab
  assert.equal(reversedName('2001:db8:1:2:3:4:567:89ab', 'bl.test'), 'b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.bl.test');
  assert.equal(reversedName('not-an-ip', 'bl.test'), undefined);
});

test('memory: 100,000 client addresses and their networks stay far below 64 MiB (measured)', () => {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const before = process.memoryUsage().heapUsed;
  const a = new Anvil(4, 60_000, 200_000);
  const t = Date.now();
  for (let i = 0; i < 100_000; i++) {
    const ip = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
    a.add(`a:${ip}`, 0, t);
    a.add(`a:${ip}`, 1, t);
    a.add(`n:${networkKey(ip)}`, 0, t); // ~391 networks: the table holds ~100,400 keys
  }
  gc?.();
  const used = process.memoryUsage().heapUsed - before;
  const perKey = used / a.size;
  console.log(`FIGURE limiter memory: ${a.size} keys (100,000 addresses + networks), heap +${(used / 1048576).toFixed(1)} MiB, ${perKey.toFixed(0)} bytes per key${gc ? '' : ' (without --expose-gc: upper bound)'}`);
  assert.ok(a.size >= 100_000);
  assert.ok(used < 64 * 1048576, `used ${used} bytes`);
});
