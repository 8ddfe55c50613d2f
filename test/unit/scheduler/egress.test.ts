/** Egress pools: rules, weights, warm-up caps by UTC day, counts kept across a restart. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configSchema } from '../../../src/config/schema.js';
import { Egress, destinationOfPath, egressPathKey, warmupCap } from '../../../src/scheduler/egress.js';
import { silentLogger } from '../../../src/core/log.js';

const DAY = 86_400_000;
const day0 = Date.parse('2026-12-01T00:00:00Z');
const clockAt = (t: { now: number }) => ({ now: () => t.now });

function egressConfig() {
  return configSchema.parse({
    listeners: [{ name: 'mx', port: 2525 }],
    egress: {
      sources: [
        { name: 'a', address: '127.0.0.2', ehloName: 'a.out.test' },
        { name: 'b', address: '127.0.0.3', ehloName: 'b.out.test' },
        { name: 'new', address: '127.0.0.4', warmup: { start: '2026-12-01', perDay: [2, 4] } },
      ],
      pools: [
        { name: 'shared', sources: [{ source: 'a', weight: 1 }, { source: 'b', weight: 3 }] },
        { name: 'warm', sources: [{ source: 'new' }] },
      ],
      rules: [
        { senderDomain: '*.bulk.test', pool: 'warm' },
        { apiKey: 'k1', pool: 'warm' },
        { tag: 'pool:warm', pool: 'warm' },
      ],
      defaultPool: 'shared',
    },
  }).egress;
}

test('rules pick the pool (sender domain pattern, API key, tag), else the default pool', () => {
  const t = { now: day0 };
  const e = new Egress({ config: egressConfig, clock: clockAt(t), logger: silentLogger() });
  assert.equal(e.poolOf({ mailFrom: 'x@news.bulk.test' }), 'warm');
  assert.equal(e.poolOf({ mailFrom: 'x@bulk.test' }), 'shared', '"*.bulk.test" is for subdomains only');
  assert.equal(e.poolOf({ mailFrom: 'x@a.test', apiKey: 'k1' }), 'warm');
  assert.equal(e.poolOf({ mailFrom: 'x@a.test', tags: ['pool:warm'] }), 'warm');
  assert.equal(e.poolOf({ mailFrom: '' }), 'shared');
});

test('weights share the messages; the source says its address and EHLO name', () => {
  const t = { now: day0 };
  const e = new Egress({ config: egressConfig, clock: clockAt(t), logger: silentLogger() });
  let seed = 1;
  const random = () => ((seed = (seed * 48271) % 2147483647) / 2147483647);
  const counts = new Map<string, number>();
  for (let i = 0; i < 4000; i++) {
    const p = e.pick({ mailFrom: 'x@a.test' }, random);
    assert.ok(p && 'source' in p);
    counts.set(p.source.name, (counts.get(p.source.name) ?? 0) + 1);
  }
  const share = counts.get('b')! / 4000;
  assert.ok(share > 0.7 && share < 0.8, `b got ${share} of the picks, weight 3 of 4`);
  const p = e.pick({ mailFrom: 'x@a.test' }, () => 0);
  assert.deepEqual(p, { source: { name: 'a', address: '127.0.0.2', ehloName: 'a.out.test' } });
});

test('warm-up: the day\'s cap holds, the next day has the next step, after the ramp no cap; counts survive a restart', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pl-egress-'));
  try {
    const file = join(dir, 'egress-counts.json');
    const t = { now: day0 + 3600_000 };
    const cfg = egressConfig();
    assert.equal(warmupCap(cfg.sources[2]!, Math.floor((day0 - DAY) / DAY)), 0, 'before the start: nothing');
    const e = new Egress({ config: () => cfg, clock: clockAt(t), logger: silentLogger(), file });
    for (let i = 0; i < 2; i++) {
      const p = e.pick({ mailFrom: 'x@a.test', apiKey: 'k1' });
      assert.ok(p && 'source' in p);
      e.sent(p.source.name);
    }
    const wait = e.pick({ mailFrom: 'x@a.test', apiKey: 'k1' });
    assert.ok(wait && 'waitUntil' in wait && wait.waitUntil >= day0 + DAY && wait.waitUntil < day0 + DAY + 600_000);
    e.stop(); // writes the counts
    const again = new Egress({ config: () => cfg, clock: clockAt(t), logger: silentLogger(), file });
    assert.equal(again.today().get('new'), 2);
    assert.ok('waitUntil' in again.pick({ mailFrom: 'x@a.test', apiKey: 'k1' })!, 'still full after the restart');
    t.now = day0 + DAY + 10;
    for (let i = 0; i < 4; i++) {
      const p = again.pick({ mailFrom: 'x@a.test', apiKey: 'k1' });
      assert.ok(p && 'source' in p, `day 2 message ${i}`);
      again.sent('new');
    }
    assert.ok('waitUntil' in again.pick({ mailFrom: 'x@a.test', apiKey: 'k1' })!);
    t.now = day0 + 2 * DAY + 10;
    for (let i = 0; i < 100; i++) again.sent('new');
    assert.ok('source' in again.pick({ mailFrom: 'x@a.test', apiKey: 'k1' })!, 'after the ramp: no cap');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('path keys name the destination and source; config refuses unknown names', () => {
  assert.equal(destinationOfPath(egressPathKey('mx:example.com:25', 'a')), 'mx:example.com:25');
  assert.equal(destinationOfPath('mx:example.com:25'), 'mx:example.com:25');
  const bad = (egress: object) => !configSchema.safeParse({ listeners: [{ name: 'mx', port: 2525 }], egress }).success;
  assert.ok(bad({ sources: [{ name: 'a' }], pools: [{ name: 'p', sources: [{ source: 'zz' }] }] }));
  assert.ok(bad({ sources: [{ name: 'a' }], pools: [{ name: 'p', sources: [{ source: 'a' }] }], rules: [{ pool: 'p' }] }));
  assert.ok(bad({ sources: [{ name: 'a', address: 'not-an-ip' }] }));
  assert.ok(bad({ sources: [{ name: 'a' }, { name: 'a' }] }));
  assert.ok(bad({ defaultPool: 'nope' }));
});
