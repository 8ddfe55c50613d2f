/** MX resolution against a real DNS server (dns2) on a loopback UDP port. RFC 5321 5.1, RFC 7505. */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startDnsServer, type DnsServerHandle } from '../../helpers/dns-server.js';
import { createResolver } from '../../../src/dns/resolver.js';
import { resolveMxHosts, MxLookupError, orderMx, toALabel } from '../../../src/dns/mx.js';
import { DnsError, type Resolver } from '../../../src/dns/types.js';

let dns: DnsServerHandle;
let resolver: Resolver;

before(async () => {
  dns = await startDnsServer({
    'pref.test': { mx: [{ exchange: 'mx20.pref.test', priority: 20 }, { exchange: 'mx10.pref.test', priority: 10 }, { exchange: 'mx30.pref.test', priority: 30 }] },
    'mx10.pref.test': { a: ['127.0.0.10'] },
    'mx20.pref.test': { a: ['127.0.0.20'], aaaa: ['::1'] },
    'mx30.pref.test': { a: ['127.0.0.30'] },
    'equal.test': { mx: [{ exchange: 'a.equal.test', priority: 5 }, { exchange: 'b.equal.test', priority: 5 }, { exchange: 'c.equal.test', priority: 5 }] },
    'a.equal.test': { a: ['127.0.1.1'] },
    'b.equal.test': { a: ['127.0.1.2'] },
    'c.equal.test': { a: ['127.0.1.3'] },
    'implicit.test': { a: ['127.0.2.1'] },
    'nullmx.test': { mx: [{ exchange: '', priority: 0 }] },
    'broken.test': { servfail: true },
    'partial.test': { mx: [{ exchange: 'gone.partial.test', priority: 1 }, { exchange: 'ok.partial.test', priority: 2 }] },
    'ok.partial.test': { a: ['127.0.3.2'] },
    'allbad.test': { mx: [{ exchange: 'sf.allbad.test', priority: 1 }] },
    'sf.allbad.test': { servfail: true },
    'empty.test': {},
    'nxmx.test': { mx: [{ exchange: 'missing.nxmx.test', priority: 10 }] },
    'nodatamx.test': { mx: [{ exchange: 'bare.nodatamx.test', priority: 10 }, { exchange: 'missing.nodatamx.test', priority: 20 }] },
    'bare.nodatamx.test': {},
    'mixedmx.test': { mx: [{ exchange: 'missing.mixedmx.test', priority: 10 }, { exchange: 'sf.mixedmx.test', priority: 20 }] },
    'sf.mixedmx.test': { servfail: true },
    'xn--bcher-kva.test': { a: ['127.0.4.1'] },
  });
  resolver = createResolver({ servers: [dns.server], timeoutMs: 1000, tries: 1 });
});
after(async () => { await dns.close(); });

async function rejects(domain: string): Promise<MxLookupError> {
  try {
    await resolveMxHosts(resolver, domain);
  } catch (err) {
    assert.ok(err instanceof MxLookupError, String(err));
    return err;
  }
  assert.fail(`expected ${domain} to fail`);
}

test('MX hosts are sorted by preference, A before AAAA', async () => {
  const hosts = await resolveMxHosts(resolver, 'pref.test');
  assert.deepEqual(hosts.map((h) => h.name), ['mx10.pref.test', 'mx20.pref.test', 'mx30.pref.test']);
  assert.deepEqual(hosts[1]!.addresses, ['127.0.0.20', '::1']);
  assert.equal(hosts[0]!.implicit, false);
});

test('equal preference hosts come in random order', async () => {
  const seen = new Set<string>();
  for (let i = 0; i < 40 && seen.size < 2; i++) {
    const hosts = await resolveMxHosts(resolver, 'equal.test');
    assert.equal(hosts.length, 3);
    seen.add(hosts.map((h) => h.name).join(','));
  }
  assert.ok(seen.size >= 2, 'order never changed over 40 lookups');
  // With a fixed random source the order is deterministic.
  const fixed = await resolveMxHosts(resolver, 'equal.test', { random: () => 0.5 });
  assert.equal(fixed.length, 3);
});

test('orderMx keeps preference order whatever the random source', () => {
  let x = 0.3;
  const out = orderMx([{ priority: 3 }, { priority: 1 }, { priority: 2 }, { priority: 1 }], () => (x = (x * 7.13) % 1));
  assert.deepEqual(out.map((r) => r.priority), [1, 1, 2, 3]);
});

test('domain without MX but with A uses implicit MX', async () => {
  const hosts = await resolveMxHosts(resolver, 'implicit.test');
  assert.deepEqual(hosts, [{ name: 'implicit.test', preference: 0, implicit: true, addresses: ['127.0.2.1'] }]);
});

test('IDN domain is looked up as A-label', async () => {
  assert.equal(toALabel('Bücher.test.'), 'xn--bcher-kva.test');
  const hosts = await resolveMxHosts(resolver, 'bücher.test');
  assert.equal(hosts[0]!.name, 'xn--bcher-kva.test');
});

test('NXDOMAIN is permanent 5.1.2', async () => {
  const e = await rejects('nope.test');
  assert.equal(e.temporary, false);
  assert.equal(e.dsnStatus, '5.1.2');
});

test('null MX is permanent 5.1.10', async () => {
  const e = await rejects('nullmx.test');
  assert.equal(e.temporary, false);
  assert.equal(e.dsnStatus, '5.1.10');
  assert.match(e.message, /null MX/);
});

test('SERVFAIL is temporary, never a bounce', async () => {
  const e = await rejects('broken.test');
  assert.equal(e.temporary, true);
  assert.equal(e.dsnStatus, '4.4.3');
});

test('an MX host that does not resolve is skipped', async () => {
  const hosts = await resolveMxHosts(resolver, 'partial.test');
  assert.deepEqual(hosts.map((h) => h.name), ['ok.partial.test']);
});

test('issue 15 item 6: an MX host that is NXDOMAIN, and no other, bounces 5.4.4', async () => {
  const e = await rejects('nxmx.test');
  assert.equal(e.temporary, false);
  assert.equal(e.dsnStatus, '5.4.4');
  assert.equal(e.code, 'ERR_DNS_MX_UNRESOLVED');
  assert.match(e.message, /missing\.nxmx\.test/);
});

test('issue 15 item 6: MX hosts that are all NODATA or NXDOMAIN bounce 5.4.4', async () => {
  const e = await rejects('nodatamx.test');
  assert.equal(e.temporary, false);
  assert.equal(e.dsnStatus, '5.4.4');
});

test('issue 15 item 6: one MX host NXDOMAIN and one SERVFAIL defers 4.4.3', async () => {
  const e = await rejects('mixedmx.test');
  assert.equal(e.temporary, true);
  assert.equal(e.dsnStatus, '4.4.3');
});

test('all MX hosts failing temporarily is temporary', async () => {
  const e = await rejects('allbad.test');
  assert.equal(e.temporary, true);
});

test('existing name with no MX and no address is permanent', async () => {
  const e = await rejects('empty.test');
  assert.equal(e.temporary, false);
  assert.equal(e.dsnStatus, '5.4.4');
});

test('resolver maps error kinds', async () => {
  await assert.rejects(resolver.resolve4('nope.test'), (e: unknown) => e instanceof DnsError && e.kind === 'nxdomain');
  await assert.rejects(resolver.resolve4('empty.test'), (e: unknown) => e instanceof DnsError && e.kind === 'nodata');
  await assert.rejects(resolver.resolveMx('broken.test'), (e: unknown) => e instanceof DnsError && e.kind === 'temporary');
});

test('unreachable name server is temporary', async () => {
  const dead = createResolver({ servers: ['127.0.0.1:9'], timeoutMs: 200, tries: 1 });
  await assert.rejects(dead.resolveMx('pref.test'), (e: unknown) => e instanceof DnsError && e.kind === 'temporary');
});
