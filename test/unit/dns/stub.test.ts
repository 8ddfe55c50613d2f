/**
 * The stub client (src/dns/client.ts, wire.ts) and the cache (cache.ts) against a real DNS server
 * (dns2) on loopback UDP and TCP. RFC 1035, RFC 2308 (negative TTL from the SOA), RFC 7766 (TCP
 * after a truncated UDP answer), RFC 1034 3.6.2 (CNAME chains).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startDnsServer, type DnsServerHandle, type Zones } from '../../helpers/dns-server.js';
import { createResolver } from '../../../src/dns/resolver.js';
import { parseServer, reverseName } from '../../../src/dns/client.js';
import { CachingResolver } from '../../../src/dns/cache.js';
import { DnsError, type Resolver } from '../../../src/dns/types.js';

let dns: DnsServerHandle;
let r: Resolver;
const long = 'v=DKIM1; k=rsa; p=' + 'A'.repeat(300);
const zones: Zones = {
  'txt.test': { txt: [['v=spf1 ', 'ip4:127.0.0.1 -all'], ['other']], ttl: 300 },
  'a.test': { a: ['127.0.0.7', '127.0.0.8'], aaaa: ['2001:db8::1', '::1'], ttl: 120 },
  'mx.test': { mx: [{ exchange: 'mx1.mx.test', priority: 10 }] },
  '9.0.0.127.in-addr.arpa': { ptr: ['host.a.test'] },
  'alias.test': { cname: 'a.test', ttl: 30 },
  'empty.test': {},
  'broken.test': { servfail: true },
  'silent.test': { drop: true },
  'big.test': { txt: [[long.slice(0, 255), long.slice(255)], [long.slice(0, 255), long.slice(255)], [long.slice(0, 255), long.slice(255)], [long.slice(0, 255), long.slice(255)]], truncate: true },
};

before(async () => {
  dns = await startDnsServer(zones, 0, { tcp: true, negativeTtl: 42 });
  r = createResolver({ servers: [dns.server], timeoutMs: 300, tries: 1 });
});
after(async () => { await dns.close(); });

test('TXT records keep their character-strings and TTL', async () => {
  const set = await r.lookup!('TXT.test.', 'TXT');
  assert.deepEqual(set.records, [['v=spf1 ', 'ip4:127.0.0.1 -all'], ['other']]);
  assert.equal(set.ttl, 300);
});

test('A, AAAA (RFC 5952 text) and MX with TTLs', async () => {
  assert.deepEqual(await r.lookup!('a.test', 'A'), { records: ['127.0.0.7', '127.0.0.8'], ttl: 120 });
  assert.deepEqual((await r.lookup!('a.test', 'AAAA')).records, ['2001:db8::1', '::1']);
  assert.deepEqual((await r.lookup!('mx.test', 'MX')).records, [{ priority: 10, exchange: 'mx1.mx.test' }]);
});

test('PTR by address; CNAME chains are followed and the smallest TTL wins', async () => {
  assert.deepEqual(await r.resolvePtr!('127.0.0.9'), ['host.a.test']);
  assert.deepEqual(await r.lookup!('alias.test', 'A'), { records: ['127.0.0.7', '127.0.0.8'], ttl: 30 });
});

test('NXDOMAIN and NODATA carry the SOA negative TTL; SERVFAIL and silence are temporary', async () => {
  await assert.rejects(r.lookup!('nowhere.test', 'TXT'), (e: unknown) => e instanceof DnsError && e.kind === 'nxdomain' && e.ttl === 42);
  await assert.rejects(r.lookup!('empty.test', 'TXT'), (e: unknown) => e instanceof DnsError && e.kind === 'nodata' && e.ttl === 42);
  await assert.rejects(r.lookup!('broken.test', 'TXT'), (e: unknown) => e instanceof DnsError && e.kind === 'temporary' && /SERVFAIL/.test(e.message));
  const t0 = Date.now();
  await assert.rejects(r.lookup!('silent.test', 'TXT'), (e: unknown) => e instanceof DnsError && e.kind === 'temporary' && /timeout/.test(e.message));
  assert.ok(Date.now() - t0 < 2000);
  await assert.rejects(r.lookup!('a..test', 'A'), (e: unknown) => e instanceof DnsError && e.kind === 'nxdomain');
});

test('a truncated UDP answer is asked again over TCP', async () => {
  const set = await r.lookup!('big.test', 'TXT');
  assert.equal(set.records.length, 4);
  assert.equal(set.records[0]!.join(''), long);
});

test('server strings and reverse names', () => {
  assert.deepEqual(parseServer('127.0.0.1'), { host: '127.0.0.1', port: 53 });
  assert.deepEqual(parseServer('127.0.0.1:5353'), { host: '127.0.0.1', port: 5353 });
  assert.deepEqual(parseServer('[::1]:5353'), { host: '::1', port: 5353 });
  assert.deepEqual(parseServer('2001:db8::53'), { host: '2001:db8::53', port: 53 });
  assert.throws(() => parseServer('dns.example'), TypeError);
  assert.equal(reverseName('192.0.2.1'), '1.2.0.192.in-addr.arpa');
  assert.equal(reverseName('::ffff:192.0.2.1'), '1.2.0.192.in-addr.arpa');
  assert.equal(reverseName('2001:db8::1'), '1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa');
  assert.equal(reverseName('64:ff9b::192.0.2.1'), reverseName('64:ff9b::c000:201'));
  assert.throws(() => reverseName('nope'), TypeError);
});

test('cache: answers for their TTL, negative answers for the SOA TTL, temporary failures never', async () => {
  let now = 1_000_000;
  const c = new CachingResolver(r, { maxEntries: 100, maxTtlS: 3600, negativeTtlS: 10, now: () => now });
  const before = dns.queries.length;
  assert.deepEqual(await c.resolveTxt('txt.test'), [['v=spf1 ', 'ip4:127.0.0.1 -all'], ['other']]);
  assert.deepEqual(await c.resolveTxt('txt.test'), [['v=spf1 ', 'ip4:127.0.0.1 -all'], ['other']]);
  assert.equal(dns.queries.length - before, 1);
  now += 299_000;
  assert.equal((await c.lookup('txt.test', 'TXT')).ttl, 1);
  now += 2000;
  await c.resolveTxt('txt.test');
  assert.equal(dns.queries.length - before, 2, 'expired: asked again');
  await assert.rejects(c.resolveTxt('gone.test'), (e: unknown) => e instanceof DnsError && e.kind === 'nxdomain');
  await assert.rejects(c.resolveTxt('gone.test'), (e: unknown) => e instanceof DnsError && e.kind === 'nxdomain');
  assert.equal(dns.queries.length - before, 3, 'NXDOMAIN cached');
  now += 43_000;
  await assert.rejects(c.resolveTxt('gone.test'));
  assert.equal(dns.queries.length - before, 4, 'after its 42 s asked again');
  await assert.rejects(c.resolveTxt('broken.test'));
  await assert.rejects(c.resolveTxt('broken.test'));
  assert.equal(dns.queries.length - before, 6, 'SERVFAIL not cached');
  const [x, y] = await Promise.all([c.resolve4('a.test'), c.resolve4('a.test')]);
  assert.deepEqual(x, y);
  assert.equal(dns.queries.length - before, 7, 'one lookup shared by two callers');
  assert.ok(c.stats().hits >= 3);
});

test('cache: bounded, least recently used first', async () => {
  const c = new CachingResolver(r, { maxEntries: 2, maxTtlS: 3600, negativeTtlS: 10 });
  await c.resolveTxt('txt.test');
  await c.resolve4('a.test');
  await c.resolveTxt('txt.test'); // used: a.test is now the oldest
  await c.resolveMx('mx.test');
  assert.equal(c.stats().entries, 2);
  const before = dns.queries.length;
  await c.resolveTxt('txt.test');
  assert.equal(dns.queries.length, before, 'kept');
  await c.resolve4('a.test');
  assert.equal(dns.queries.length, before + 1, 'dropped');
});
