/**
 * DNS lists (src/policy/dnsbl.ts, RFC 5782) against zones served by a real DNS server on a loopback
 * port: listed, not listed, 127.255.255.x (refused query, never listed), answers outside 127/8,
 * code patterns and weights (allow lists), self-test failure (zone disabled), timeouts (not listed),
 * IPv6 nibble names, the TTL and negative caches, domain lists.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startDnsServer, type Zones } from '../../helpers/dns-server.js';
import { createResolver } from '../../../src/dns/resolver.js';
import { Dnsbl, codeMatcher, type DnsblZone } from '../../../src/policy/dnsbl.js';
import { silentLogger } from '../../../src/core/log.js';
import { reversedName } from '../../../src/policy/ip.js';

const selfTest = (zone: string, v6 = false): Zones => ({
  [`2.0.0.127.${zone}`]: { a: ['127.0.0.2'] },
  ...(v6 ? { [reversedName('::ffff:7f00:2', zone)!]: { a: ['127.0.0.2'] } } : {}),
});

const zone = (z: string, more: Partial<DnsblZone> = {}): DnsblZone => ({ zone: z, weight: 1, ipv6: false, kind: 'ip', ...more });

async function setup(zones: Zones, lists: DnsblZone[], opts: { negativeTtlS?: number; now?: () => number } = {}) {
  const dns = await startDnsServer(zones);
  const resolver = createResolver({ servers: [dns.server], timeoutMs: 300, tries: 1 });
  const changes: string[] = [];
  const bl = new Dnsbl({
    zones: lists, resolver, logger: silentLogger(), negativeTtlS: opts.negativeTtlS ?? 300, cacheEntries: 1000,
    selfTestIntervalMs: 3_600_000, onZoneState: (z, en) => changes.push(`${z}:${en}`), ...(opts.now ? { now: opts.now } : {}),
  });
  return { dns, bl, changes };
}

test('listed, not listed, refused (127.255.255.x) and outside 127/8; TTL cache', async (t) => {
  const { dns, bl } = await setup({
    ...selfTest('bl.test'),
    '9.2.0.192.bl.test': { a: ['127.0.0.4'], ttl: 30 },
    '8.2.0.192.bl.test': { a: ['127.255.255.254'] },
    '7.2.0.192.bl.test': { a: ['10.0.0.1'] },
  }, [zone('bl.test')]);
  t.after(() => dns.close());
  await bl.start();
  t.after(() => bl.stop());
  assert.deepEqual(bl.zoneStates().map((z) => z.enabled), [true]);
  assert.deepEqual(await bl.lookupAddress('192.0.2.9'), { score: 1, listedBy: ['bl.test'] });
  assert.deepEqual(await bl.lookupAddress('192.0.2.10'), { score: 0, listedBy: [] });
  assert.deepEqual(await bl.lookupAddress('192.0.2.8'), { score: 0, listedBy: [] }, 'a refused query never lists');
  assert.deepEqual(await bl.lookupAddress('192.0.2.7'), { score: 0, listedBy: [] }, 'only 127/8 answers count');
  const n = dns.queries.length;
  await bl.lookupAddress('192.0.2.9');
  await bl.lookupAddress('192.0.2.10');
  assert.equal(dns.queries.length, n, 'positive and negative answers come from the cache');
});

test('codes and weights: postscreen patterns, thresholds, allow lists with negative weights', async (t) => {
  assert.ok(codeMatcher('127.0.0.[2..11]')('127.0.0.11'));
  assert.ok(!codeMatcher('127.0.0.[2..11]')('127.0.0.12'));
  assert.ok(codeMatcher('127.0.[0;1].[2..4;9]')('127.0.1.9'));
  const { dns, bl } = await setup({
    ...selfTest('a.test'), ...selfTest('b.test'), ...selfTest('wl.test'),
    '5.2.0.192.a.test': { a: ['127.0.0.20'] }, // not in a.test's codes
    '6.2.0.192.a.test': { a: ['127.0.0.3'] },
    '6.2.0.192.b.test': { a: ['127.0.0.2'] },
    '6.2.0.192.wl.test': { a: ['127.0.0.2'] },
    '7.2.0.192.b.test': { a: ['127.0.0.2'] },
  }, [zone('a.test', { weight: 2, codes: ['127.0.0.[2..11]'] }), zone('b.test', { weight: 1 }), zone('wl.test', { weight: -5 })]);
  t.after(() => dns.close());
  assert.deepEqual(await bl.lookupAddress('192.0.2.5'), { score: 0, listedBy: [] });
  assert.deepEqual(await bl.lookupAddress('192.0.2.6'), { score: -2, listedBy: ['a.test', 'b.test', 'wl.test'] });
  assert.deepEqual(await bl.lookupAddress('192.0.2.7'), { score: 1, listedBy: ['b.test'] });
});

test('self-test: a zone that lists 127.0.0.1 (a hijacking resolver) or not 127.0.0.2 is disabled', async (t) => {
  const { dns, bl, changes } = await setup({
    ...selfTest('good.test'),
    '2.0.0.127.liar.test': { a: ['127.0.0.2'] }, '1.0.0.127.liar.test': { a: ['127.0.0.2'] },
    '9.2.0.192.liar.test': { a: ['127.0.0.2'] },
    // dead.test answers nothing at all: 127.0.0.2 is not listed
  }, [zone('good.test'), zone('liar.test'), zone('dead.test')]);
  t.after(() => dns.close());
  await bl.selfTest();
  assert.deepEqual(bl.zoneStates().map((z) => [z.zone, z.enabled]), [['good.test', true], ['liar.test', false], ['dead.test', false]]);
  assert.deepEqual(changes.sort(), ['dead.test:false', 'liar.test:false']);
  assert.deepEqual(await bl.lookupAddress('192.0.2.9'), { score: 0, listedBy: [] }, 'a disabled zone is not asked');
});

test('timeouts count as not listed, quickly; IPv6 clients use nibble names in ipv6 zones only', async (t) => {
  const v6 = '2001:db8::99';
  const { dns, bl } = await setup({
    ...selfTest('slow.test'), ...selfTest('six.test', true), ...selfTest('four.test'),
    '9.2.0.192.slow.test': { drop: true },
    [reversedName(v6, 'six.test')!]: { a: ['127.0.0.2'] },
    [reversedName(v6, 'four.test')!]: { a: ['127.0.0.2'] },
  }, [zone('slow.test'), zone('six.test', { ipv6: true }), zone('four.test')]);
  t.after(() => dns.close());
  await bl.selfTest();
  assert.deepEqual(bl.zoneStates().map((z) => z.enabled), [true, true, true]);
  const t0 = Date.now();
  assert.deepEqual(await bl.lookupAddress('192.0.2.9'), { score: 0, listedBy: [] });
  assert.ok(Date.now() - t0 < 2000, 'bounded by the resolver timeout');
  assert.ok(bl.stats.failed >= 1);
  assert.deepEqual(await bl.lookupAddress(v6), { score: 1, listedBy: ['six.test'] });
});

test('negative answers are cached for negativeTtlS, then asked again', async (t) => {
  let now = 1_000_000;
  const { dns, bl } = await setup(selfTest('bl.test'), [zone('bl.test')], { negativeTtlS: 10, now: () => now });
  t.after(() => dns.close());
  await bl.lookupAddress('192.0.2.50');
  const n = dns.queries.length;
  now += 9_000;
  await bl.lookupAddress('192.0.2.50');
  assert.equal(dns.queries.length, n);
  now += 2_000;
  await bl.lookupAddress('192.0.2.50');
  assert.equal(dns.queries.length, n + 1);
});

test('domain lists (DBL style): self-test with TEST / INVALID, lookups by name', async (t) => {
  const { dns, bl } = await setup({ 'test.dbl.test': { a: ['127.0.1.2'] }, 'spam.example.dbl.test': { a: ['127.0.1.2'] } }, [zone('dbl.test', { kind: 'domain' })]);
  t.after(() => dns.close());
  await bl.selfTest();
  assert.equal(bl.zoneStates()[0]!.enabled, true);
  assert.equal((await bl.lookupDomain('dbl.test', 'Spam.Example.')).result, 'listed');
  assert.equal((await bl.lookupDomain('dbl.test', 'ham.example')).result, 'not-listed');
  await assert.rejects(bl.lookupDomain('nope.test', 'x.example'), RangeError);
});
