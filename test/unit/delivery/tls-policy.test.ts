/**
 * Outbound TLS policy (tls-policy.ts) and certificate verification through the real SMTP agent:
 * levels none / opportunistic / required / verify / secure, tlsPolicies rules, servername, caFile,
 * implicit TLS. Real TLS on loopback with certificates from a CA made in the test; MX names from a
 * real DNS server on loopback.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { configSchema, type PostlineConfig } from '../../../src/config/schema.js';
import { validateConfig } from '../../../src/config/load.js';
import { silentLogger } from '../../../src/core/log.js';
import { createResolver } from '../../../src/dns/resolver.js';
import { SmtpDeliveryAgent } from '../../../src/delivery/smtp-agent.js';
import { hopTlsPolicy, judgeCertificate, matchingRule } from '../../../src/delivery/tls-policy.js';
import type { DeliveryRequest, RecipientResult } from '../../../src/delivery/types.js';
import type { SmtpNextHop as NextHop } from '../../../src/routing/types.js';
import type { Resolver } from '../../../src/dns/types.js';
import { startSmtpPeer, type PeerScript, type SmtpPeer } from '../../helpers/smtp-peer.js';
import { startDnsServer, type DnsServerHandle } from '../../helpers/dns-server.js';
import { makeTestCa, type KeyPair, type TestCa } from '../../helpers/test-ca.js';

let ca: TestCa;
let otherCa: TestCa;
let dns: DnsServerHandle;
let resolver: Resolver;
let good: KeyPair; // mx1.tls.test, signed by ca
let wrongName: KeyPair; // other.test, signed by ca
let untrusted: KeyPair; // mx1.tls.test, signed by otherCa
let expired: KeyPair;
let relayCert: KeyPair; // smtp.relay.test

before(async () => {
  ca = await makeTestCa();
  otherCa = await makeTestCa('Some Other CA');
  good = await ca.issue(['mx1.tls.test']);
  wrongName = await ca.issue(['other.test']);
  untrusted = await otherCa.issue(['mx1.tls.test']);
  expired = await ca.issue(['mx1.tls.test'], { expired: true });
  relayCert = await ca.issue(['smtp.relay.test']);
  dns = await startDnsServer({
    'tls.test': { mx: [{ exchange: 'mx1.tls.test', priority: 10 }] },
    'sub.tls.test': { mx: [{ exchange: 'mx1.tls.test', priority: 10 }] },
    'mx1.tls.test': { a: ['127.0.0.1'] },
  });
  resolver = createResolver({ servers: [dns.server], timeoutMs: 1000, tries: 1 });
});
after(async () => {
  await dns.close();
  ca.cleanup();
  otherCa.cleanup();
});

function config(delivery: Record<string, unknown>): PostlineConfig {
  return configSchema.parse({
    hostname: 'client.test', dataDir: '/nonexistent-postline-test', listeners: [{ name: 'mx', port: 1 }],
    delivery: { connectTimeoutMs: 2000, commandTimeoutMs: 2000, dataDoneTimeoutMs: 2000, idleTimeoutMs: 2000, mtaSts: { enabled: false }, ...delivery },
  });
}

const agentFor = (cfg: PostlineConfig) => new SmtpDeliveryAgent({ config: cfg, resolver, logger: silentLogger(), ownListeners: [] });

const BODY = Buffer.from('From: a@src.test\r\nTo: b@tls.test\r\nSubject: tls\r\n\r\nhello\r\n');
const request = (nextHop: NextHop, to = 'b@tls.test'): DeliveryRequest => ({
  queueId: 'QTLS', mailFrom: 'a@src.test', bodyType: '7BIT', smtputf8: false, size: BODY.length,
  recipients: [{ idx: 0, address: to }], nextHop, openBody: () => Readable.from([BODY]),
});

async function withPeer(script: PeerScript, fn: (peer: SmtpPeer) => Promise<void>): Promise<void> {
  const peer = await startSmtpPeer(script);
  try { await fn(peer); } finally { await peer.close(); }
}

/** One MX delivery to tls.test (mx1.tls.test = 127.0.0.1 on the peer's port) under `tls`. */
async function viaMx(peer: SmtpPeer, tls: unknown, extra: Record<string, unknown> = {}, domain = 'tls.test'): Promise<RecipientResult> {
  const cfg = config({ mxPort: peer.port, tls, ...extra });
  const agent = agentFor(cfg);
  try {
    const [r] = await agent.deliver(request({ kind: 'mx', domain, port: peer.port, tls: cfg.delivery.tls }, `b@${domain}`));
    return r!;
  } finally {
    await agent.close();
  }
}

test('levels and rules: tlsPolicies exact match first, then the longest suffix; [host]:port for fixed hosts; caFile inherited', () => {
  const cfg = validateConfig({
    delivery: {
      tls: { mode: 'opportunistic', caFile: ca.file },
      tlsPolicies: [
        { match: '.example.test', mode: 'required' },
        { match: '.deep.example.test', mode: 'verify' },
        { match: 'example.test', mode: 'secure' },
        { match: '[smtp.relay.test]:587', mode: 'verify', servername: 'relay.example' },
        { match: '[10.0.0.1]', mode: 'none' },
      ],
    },
  }, '/');
  const d = cfg.delivery;
  const mx = (domain: string): NextHop => ({ kind: 'mx', domain, port: 25, tls: d.tls });
  assert.equal(hopTlsPolicy(d, mx('other.test')).level, 'opportunistic');
  assert.equal(hopTlsPolicy(d, mx('other.test')).explicit, false);
  assert.equal(hopTlsPolicy(d, mx('example.test')).level, 'secure');
  assert.equal(hopTlsPolicy(d, mx('a.example.test')).level, 'required');
  assert.equal(hopTlsPolicy(d, mx('x.deep.example.test')).level, 'verify', 'the longest suffix wins, whatever the order');
  assert.equal(hopTlsPolicy(d, mx('x.deep.example.test')).caFile, ca.file, 'a rule without caFile uses delivery.tls.caFile');
  const relay = (port: number): NextHop => ({ kind: 'host', host: 'smtp.relay.test', port, tls: 'starttls' });
  assert.deepEqual([hopTlsPolicy(d, relay(587)).level, hopTlsPolicy(d, relay(587)).servername], ['verify', 'relay.example']);
  assert.equal(hopTlsPolicy(d, relay(25)).level, 'required', 'no rule for port 25: the hop\'s own "starttls" (= required)');
  assert.equal(hopTlsPolicy(d, { kind: 'host', host: '10.0.0.1', port: 2525, tls: 'verify' }).level, 'none', '"[host]" matches any port');
  assert.equal(hopTlsPolicy(d, { kind: 'host', host: 'h', port: 465, tls: 'implicit' }).implicit, true);
  assert.equal(matchingRule(d.tlsPolicies, { kind: 'host', host: 'smtp.relay.test', port: 587, tls: 'none', mxLookup: true }), undefined, 'a relay host with MX lookup is matched by name, not [host]');
});

test('config: bad rules, implicit TLS for MX delivery and missing CA files are refused naming the key', () => {
  assert.throws(() => validateConfig({ delivery: { tlsPolicies: [{ match: 'a b', mode: 'verify' }] } }, '/'), /delivery\.tlsPolicies\.0\.match/);
  assert.throws(() => validateConfig({ delivery: { tlsPolicies: [{ match: 'a.test', mode: 'dane' }] } }, '/'), /delivery\.tlsPolicies\.0\.mode/);
  assert.throws(() => validateConfig({ delivery: { tls: { mode: 'verify', implicit: true } } }, '/'), /delivery\.tls/);
  assert.throws(() => validateConfig({ delivery: { tls: { mode: 'verify', caFile: 'no-such-ca.pem' } } }, '/tmp'), /delivery\.tls\.caFile: cannot read/);
  assert.throws(() => validateConfig({ delivery: { relayhost: { host: 'h', tls: { mode: 'verify', caFile: 'x.pem' } } } }, '/tmp'), /delivery\.relayhost\.tls\.caFile/);
  const ok = validateConfig({ delivery: { tls: 'verify', relayhost: { host: 'h', tls: 'secure' }, routes: [{ domain: 'r.test', host: 'h', tls: { mode: 'required', implicit: true } }] } }, '/');
  assert.equal(ok.delivery.tls, 'verify');
});

test('judgeCertificate: names, ".domain" suffixes (secure), untrusted chains', () => {
  const cert = { subject: { CN: 'mx1.tls.test' }, subjectaltname: 'DNS:mx1.tls.test, DNS:*.mail.tls.test' } as never;
  assert.equal(judgeCertificate(true, null, cert, ['mx1.tls.test']).verified, true);
  assert.equal(judgeCertificate(true, null, cert, ['a.mail.tls.test']).verified, true, 'one-label wildcard');
  assert.equal(judgeCertificate(true, null, cert, ['b.a.mail.tls.test']).verified, false);
  assert.equal(judgeCertificate(true, null, cert, ['tls.test', '.tls.test']).verified, true, 'secure: a subdomain of the next hop');
  assert.equal(judgeCertificate(true, null, cert, ['other.test', '.other.test']).verified, false);
  const v = judgeCertificate(false, new Error('self-signed certificate'), cert, ['mx1.tls.test']);
  assert.deepEqual([v.verified, /not trusted: self-signed/.test(v.reason ?? '')], [false, true]);
});

test('verify: a certificate from a trusted CA naming the MX host is delivered and reported verified', async () => {
  await withPeer({ tls: good }, async (peer) => {
    const r = await viaMx(peer, { mode: 'verify', caFile: ca.file });
    assert.equal(r.outcome, 'delivered', r.diagnostic);
    assert.equal(r.tls?.verified, true);
    assert.match(r.tls?.version ?? '', /^TLSv1\.[23]$/);
    assert.equal(peer.sessions[0]!.servername, 'mx1.tls.test', 'SNI is the MX host name');
    assert.equal(peer.messages().length, 1);
  });
});

for (const [what, pair, reason] of [
  ['a name mismatch', () => wrongName, /certificate name mismatch: mx1\.tls\.test not in the certificate's names \(DNS:other\.test\)/],
  ['an unknown CA', () => untrusted, /certificate not trusted/],
  ['an expired certificate', () => expired, /certificate not trusted: certificate has expired/],
] as const) {
  test(`verify: ${what} defers 4.7.5 with a clear diagnostic, nothing is sent, no plaintext retry`, async () => {
    await withPeer({ tls: pair() }, async (peer) => {
      const r = await viaMx(peer, { mode: 'verify', caFile: ca.file });
      assert.deepEqual([r.outcome, r.dsnStatus], ['deferred', '4.7.5']);
      assert.match(r.diagnostic, /server certificate verification failed for mx1\.tls\.test\[127\.0\.0\.1\]:\d+ \(TLS policy: verify, from delivery\.tls\)/);
      assert.match(r.diagnostic, reason);
      assert.equal(peer.messages().length, 0);
      assert.equal(peer.sessions.length, 1, 'verification failures are never retried in plaintext');
      assert.ok(!peer.sessions[0]!.commands.some((c) => c.startsWith('MAIL')));
    });
  });
}

test('required: any certificate is accepted (verified false); no STARTTLS defers 4.7.4; opportunistic reports verified', async () => {
  await withPeer({ tls: untrusted }, async (peer) => {
    const r = await viaMx(peer, 'required');
    assert.equal(r.outcome, 'delivered');
    assert.deepEqual([r.tls?.verified, peer.sessions[0]!.tls], [false, true]);
  });
  await withPeer({}, async (peer) => {
    const r = await viaMx(peer, 'required');
    assert.deepEqual([r.outcome, r.dsnStatus], ['deferred', '4.7.4']);
    assert.match(r.diagnostic, /TLS is required \(policy required, from delivery\.tls\), but was not offered by host mx1\.tls\.test/);
  });
  await withPeer({ tls: good }, async (peer) => {
    const trusted = await viaMx(peer, { mode: 'opportunistic', caFile: ca.file });
    assert.deepEqual([trusted.outcome, trusted.tls?.verified], ['delivered', true]);
    const plainDefault = await viaMx(peer, 'opportunistic');
    assert.deepEqual([plainDefault.outcome, plainDefault.tls?.verified], ['delivered', false], 'the test CA is not in Node\'s store');
  });
});

test('secure: the certificate must name the next-hop domain or a subdomain of it', async () => {
  await withPeer({ tls: good }, async (peer) => {
    const r = await viaMx(peer, { mode: 'secure', caFile: ca.file });
    assert.deepEqual([r.outcome, r.tls?.verified], ['delivered', true], r.diagnostic);
  });
  await withPeer({ tls: wrongName }, async (peer) => {
    const r = await viaMx(peer, { mode: 'secure', caFile: ca.file });
    assert.deepEqual([r.outcome, r.dsnStatus], ['deferred', '4.7.5']);
    assert.match(r.diagnostic, /tls\.test, \.tls\.test not in/);
  });
});

test('tlsPolicies: a ".domain" rule raises one destination to verify while the default stays opportunistic', async () => {
  await withPeer({ tls: wrongName }, async (peer) => {
    const rules = { tlsPolicies: [{ match: '.tls.test', mode: 'verify', caFile: ca.file }] };
    const sub = await viaMx(peer, 'opportunistic', rules, 'sub.tls.test');
    assert.deepEqual([sub.outcome, sub.dsnStatus], ['deferred', '4.7.5']);
    assert.match(sub.diagnostic, /from delivery\.tlsPolicies \.tls\.test/);
    const parent = await viaMx(peer, 'opportunistic', rules, 'tls.test');
    assert.equal(parent.outcome, 'delivered', '".tls.test" does not match tls.test itself');
  });
});

test('relay host by address with servername: SNI and the check use the configured name; implicit TLS verifies too', async () => {
  await withPeer({ tls: relayCert }, async (peer) => {
    const tls = { mode: 'verify', servername: 'smtp.relay.test', caFile: ca.file };
    const cfg = config({ relayhost: { host: '127.0.0.1', port: peer.port, tls } });
    const agent = agentFor(cfg);
    try {
      const [r] = await agent.deliver(request({ kind: 'host', host: '127.0.0.1', port: peer.port, tls: cfg.delivery.relayhost!.tls }));
      assert.deepEqual([r!.outcome, r!.tls?.verified], ['delivered', true], r!.diagnostic);
      assert.equal(peer.sessions[0]!.servername, 'smtp.relay.test');
      const [bad] = await agent.deliver(request({ kind: 'host', host: '127.0.0.1', port: peer.port, tls: 'verify' }));
      assert.equal(bad!.dsnStatus, '4.7.5', 'without servername the address is checked, and the certificate does not name it');
    } finally {
      await agent.close();
    }
  });
  await withPeer({ tls: relayCert, implicitTls: true }, async (peer) => {
    const agent = agentFor(config({}));
    try {
      const hop: NextHop = { kind: 'host', host: '127.0.0.1', port: peer.port, tls: { mode: 'verify', servername: 'smtp.relay.test', caFile: ca.file, implicit: true } };
      const [r] = await agent.deliver(request(hop));
      assert.deepEqual([r!.outcome, r!.tls?.verified], ['delivered', true], r!.diagnostic);
      const [bad] = await agent.deliver(request({ ...hop, tls: { mode: 'verify', servername: 'wrong.relay.test', caFile: ca.file, implicit: true } }));
      assert.deepEqual([bad!.outcome, bad!.dsnStatus], ['deferred', '4.7.5']);
    } finally {
      await agent.close();
    }
  });
});

test('a pooled connection is not reused once the TLS policy of its destination changed', async () => {
  await withPeer({ tls: wrongName }, async (peer) => {
    const cfg = config({ mxPort: peer.port, tls: 'opportunistic', idleTimeoutMs: 5000 });
    const agent = agentFor(cfg);
    try {
      const hop: NextHop = { kind: 'mx', domain: 'tls.test', port: peer.port, tls: 'opportunistic' };
      assert.equal((await agent.deliver(request(hop)))[0]!.outcome, 'delivered');
      assert.equal((await agent.deliver(request(hop)))[0]!.outcome, 'delivered');
      assert.equal(peer.sessions.length, 1, 'same policy: the connection is reused');
      cfg.delivery.tlsPolicies.push({ match: 'tls.test', mode: 'verify', caFile: ca.file, implicit: false });
      const [r] = await agent.deliver(request(hop));
      assert.deepEqual([r!.outcome, r!.dsnStatus], ['deferred', '4.7.5']);
      assert.equal(peer.sessions.length, 2, 'a new connection under the new policy');
    } finally {
      await agent.close();
    }
  });
});
