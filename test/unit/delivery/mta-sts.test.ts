/**
 * MTA-STS (RFC 8461) for outbound MX delivery, through the real SMTP agent: the `_mta-sts` TXT
 * record from a real DNS server on loopback, the policy from a real HTTPS server on 127.0.0.1
 * (certificate from a CA made in the test, `delivery.mtaSts.caFile` / `port`), enforce and testing
 * modes, the cache (max_age, TXT reuse, id change, a restart through dataDir/mta-sts.json), and the
 * fetch rules (no redirects, text/plain, size limit).
 */
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { createServer as createHttpsServer, type Server } from 'node:https';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { configSchema, type PostlineConfig } from '../../../src/config/schema.js';
import { createResolver } from '../../../src/dns/resolver.js';
import { SmtpDeliveryAgent } from '../../../src/delivery/smtp-agent.js';
import { mxAllowed, STS_CACHE_FILE } from '../../../src/delivery/mta-sts.js';
import { fetchPolicy, lookupPolicyId } from '../../../src/delivery/mta-sts-fetch.js';
import type { DeliveryRequest, RecipientResult } from '../../../src/delivery/types.js';
import type { Resolver } from '../../../src/dns/types.js';
import { startSmtpPeer, type PeerScript, type SmtpPeer } from '../../helpers/smtp-peer.js';
import { startDnsServer, type DnsServerHandle } from '../../helpers/dns-server.js';
import { makeTestCa, type KeyPair, type TestCa } from '../../helpers/test-ca.js';

let ca: TestCa;
let mxCert: KeyPair;
let wrongCert: KeyPair;
let dns: DnsServerHandle;
let resolver: Resolver;
let https: Server;
let httpsPort: number;
/** What the policy host answers, by Host name (without port). */
const answers = new Map<string, { status?: number; type?: string; body: string; location?: string }>();
const fetches: string[] = [];
const dirs: string[] = [];

const policy = (mode: string, mx: string[], maxAge = 86400) => `version: STSv1\r\nmode: ${mode}\r\n${mx.map((m) => `mx: ${m}\r\n`).join('')}max_age: ${maxAge}\r\n`;
const txt = (id: string) => ({ txt: [[`v=STSv1; id=${id};`]] });

before(async () => {
  ca = await makeTestCa();
  mxCert = await ca.issue(['mx1.sts.test', 'mx2.sts.test']);
  wrongCert = await ca.issue(['other.test']);
  const hostCert = await ca.issue(['mta-sts.sts.test']);
  https = createHttpsServer({ key: hostCert.key, cert: hostCert.cert }, (req, res) => {
    const host = String(req.headers.host ?? '').replace(/:\d+$/, '');
    fetches.push(`${host}${req.url ?? ''}`);
    const a = answers.get(host);
    if (!a || req.url !== '/.well-known/mta-sts.txt') { res.writeHead(404).end(); return; }
    res.writeHead(a.status ?? 200, { 'content-type': a.type ?? 'text/plain; charset=utf-8', ...(a.location ? { location: a.location } : {}) });
    res.end(a.body);
  });
  await new Promise<void>((r) => https.listen(0, '127.0.0.1', r));
  httpsPort = (https.address() as { port: number }).port;
  dns = await startDnsServer({
    'sts.test': { mx: [{ exchange: 'mx1.sts.test', priority: 10 }, { exchange: 'mx2.sts.test', priority: 20 }] },
    'mx1.sts.test': { a: ['127.0.0.1'] },
    'mx2.sts.test': { a: ['127.0.0.1'] },
    'mta-sts.sts.test': { a: ['127.0.0.1'] },
  });
  resolver = createResolver({ servers: [dns.server], timeoutMs: 1000, tries: 1 });
});
after(async () => {
  await dns.close();
  await new Promise<void>((r) => https.close(() => r()));
  ca.cleanup();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
beforeEach(() => {
  answers.clear();
  fetches.length = 0;
  dns.update('_mta-sts.sts.test', txt('1'));
});

function captureLogger(): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const dest = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) if (l.trim()) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { logger: pino({ level: 'info', base: undefined }, dest), lines };
}

function config(dataDir: string, peerPort: number, delivery: Record<string, unknown> = {}): PostlineConfig {
  return configSchema.parse({
    hostname: 'client.test', dataDir, listeners: [{ name: 'mx', port: 1 }],
    delivery: {
      mxPort: peerPort, tls: { mode: 'opportunistic', caFile: ca.file },
      connectTimeoutMs: 2000, commandTimeoutMs: 2000, dataDoneTimeoutMs: 2000, idleTimeoutMs: 0,
      mtaSts: { caFile: ca.file, port: httpsPort, dnsCacheMs: 60_000, fetchTimeoutMs: 2000 },
      ...delivery,
    },
  });
}

const newDir = () => { const d = mkdtempSync(join(tmpdir(), 'postline-sts-')); dirs.push(d); return d; };
const BODY = Buffer.from('From: a@src.test\r\nTo: b@sts.test\r\nSubject: sts\r\n\r\nhello\r\n');

async function deliver(agent: SmtpDeliveryAgent, port: number): Promise<RecipientResult> {
  const req: DeliveryRequest = {
    queueId: 'QSTS', mailFrom: 'a@src.test', bodyType: '7BIT', smtputf8: false, size: BODY.length,
    recipients: [{ idx: 0, address: 'b@sts.test' }], nextHop: { kind: 'mx', domain: 'sts.test', port, tls: 'opportunistic' },
    openBody: () => Readable.from([BODY]),
  };
  return (await agent.deliver(req))[0]!;
}

async function withPeer(script: PeerScript, fn: (peer: SmtpPeer) => Promise<void>): Promise<void> {
  const peer = await startSmtpPeer(script);
  try { await fn(peer); } finally { await peer.close(); }
}

async function withAgent(cfg: PostlineConfig, fn: (agent: SmtpDeliveryAgent) => Promise<void>, logger: Logger = captureLogger().logger): Promise<void> {
  const agent = new SmtpDeliveryAgent({ config: cfg, resolver, logger, ownListeners: [] });
  try { await fn(agent); } finally { await agent.close(); }
}

test('mxAllowed: exact names and "*." patterns of one label (RFC 8461 4.1)', () => {
  const p = { mode: 'enforce' as const, mx: ['mx.example.test', '*.mail.example.test'] };
  assert.equal(mxAllowed('MX.example.test.', p), true);
  assert.equal(mxAllowed('a.mail.example.test', p), true);
  assert.equal(mxAllowed('b.a.mail.example.test', p), false, 'a wildcard covers one label only');
  assert.equal(mxAllowed('mail.example.test', p), false);
  assert.equal(mxAllowed('other.test', p), false);
});

test('enforce: only the MX hosts the policy names are tried, with a verified certificate; TLS facts in the result', async () => {
  answers.set('mta-sts.sts.test', { body: policy('enforce', ['mx2.sts.test']) });
  await withPeer({ tls: mxCert }, async (peer) => {
    const cap = captureLogger();
    await withAgent(config(newDir(), peer.port), async (agent) => {
      const r = await deliver(agent, peer.port);
      assert.equal(r.outcome, 'delivered', r.diagnostic);
      assert.equal(r.tls?.verified, true);
      assert.deepEqual(peer.sessions.map((s) => s.servername), ['mx2.sts.test'], 'mx1 (preference 10) is not in the policy: never contacted');
      assert.deepEqual(fetches, ['mta-sts.sts.test/.well-known/mta-sts.txt']);
    }, cap.logger);
    assert.ok(cap.lines.some((l) => /MTA-STS policy of sts\.test \(enforce, mx: mx2\.sts\.test\): skipping MX mx1\.sts\.test/.test(String(l.msg))));
  });
});

test('enforce: a certificate not naming the MX defers 4.7.5 (the default opportunistic is raised); no MX allowed defers 4.7.0; no STARTTLS 4.7.4', async () => {
  answers.set('mta-sts.sts.test', { body: policy('enforce', ['mx1.sts.test', 'mx2.sts.test']) });
  await withPeer({ tls: wrongCert }, async (peer) => {
    await withAgent(config(newDir(), peer.port), async (agent) => {
      const r = await deliver(agent, peer.port);
      assert.deepEqual([r.outcome, r.dsnStatus], ['deferred', '4.7.5']);
      assert.match(r.diagnostic, /TLS policy: verify, from MTA-STS policy of sts\.test \(enforce, id 1\)\): certificate name mismatch/);
      assert.equal(peer.messages().length, 0);
      assert.equal(peer.sessions.length, 2, 'both MX hosts tried, no plaintext retry');
    });
  });
  await withPeer({}, async (peer) => {
    await withAgent(config(newDir(), peer.port), async (agent) => {
      const r = await deliver(agent, peer.port);
      assert.deepEqual([r.outcome, r.dsnStatus], ['deferred', '4.7.4']);
      assert.equal(peer.messages().length, 0);
    });
  });
  answers.set('mta-sts.sts.test', { body: policy('enforce', ['mx.elsewhere.test']) });
  await withPeer({ tls: mxCert }, async (peer) => {
    await withAgent(config(newDir(), peer.port), async (agent) => {
      const r = await deliver(agent, peer.port);
      assert.deepEqual([r.outcome, r.dsnStatus], ['deferred', '4.7.0']);
      assert.match(r.diagnostic, /MTA-STS policy of sts\.test \(enforce, mx: mx\.elsewhere\.test\) allows none of the MX hosts mx1\.sts\.test, mx2\.sts\.test/);
      assert.equal(peer.sessions.length, 0);
    });
  });
});

test('testing: delivered anyway; what enforce would refuse is logged (MX not named, certificate not verified)', async () => {
  answers.set('mta-sts.sts.test', { body: policy('testing', ['mx2.sts.test']) });
  await withPeer({ tls: wrongCert }, async (peer) => {
    const cap = captureLogger();
    await withAgent(config(newDir(), peer.port), async (agent) => {
      const r = await deliver(agent, peer.port);
      assert.equal(r.outcome, 'delivered');
      assert.equal(r.tls?.verified, false);
    }, cap.logger);
    const warn = cap.lines.filter((l) => l.level === 40).map((l) => String(l.msg));
    assert.ok(warn.some((m) => /\(testing, mx: mx2\.sts\.test\): would refuse MX mx1\.sts\.test/.test(m)), warn.join('\n'));
    assert.ok(warn.some((m) => /MTA-STS policy of sts\.test \(testing, id 1\): would refuse mx1\.sts\.test\[127\.0\.0\.1\]:\d+: certificate name mismatch/.test(m)), warn.join('\n'));
  });
});

test('cache: TXT reused for dnsCacheMs, no refetch while the id is the same, refetch when it changes', async () => {
  answers.set('mta-sts.sts.test', { body: policy('enforce', ['mx2.sts.test']) });
  await withPeer({ tls: mxCert }, async (peer) => {
    const cfg = config(newDir(), peer.port);
    await withAgent(cfg, async (agent) => {
      const q0 = dns.queries.filter((q) => q === '_mta-sts.sts.test TXT').length;
      for (let i = 0; i < 3; i++) assert.equal((await deliver(agent, peer.port)).outcome, 'delivered');
      assert.equal(dns.queries.filter((q) => q === '_mta-sts.sts.test TXT').length - q0, 1, 'one TXT query in dnsCacheMs');
      assert.equal(fetches.length, 1);
      cfg.delivery.mtaSts.dnsCacheMs = 0; // live: every delivery asks DNS
      assert.equal((await deliver(agent, peer.port)).outcome, 'delivered');
      assert.equal(fetches.length, 1, 'same id: the cached policy, no fetch');
      answers.set('mta-sts.sts.test', { body: policy('enforce', ['mx.elsewhere.test']) });
      dns.update('_mta-sts.sts.test', txt('2'));
      const r = await deliver(agent, peer.port);
      assert.deepEqual([fetches.length, r.dsnStatus], [2, '4.7.0'], 'a new id: fetched, and the new policy applies');
    });
  });
});

test('the policy survives a restart (dataDir/mta-sts.json) and stays in force when the TXT record and the policy host are gone', async () => {
  answers.set('mta-sts.sts.test', { body: policy('enforce', ['mx2.sts.test']) });
  const dir = newDir();
  await withPeer({ tls: wrongCert }, async (peer) => {
    await withAgent(config(dir, peer.port), async (agent) => {
      assert.equal((await deliver(agent, peer.port)).dsnStatus, '4.7.5');
    });
    const saved = JSON.parse(readFileSync(join(dir, STS_CACHE_FILE), 'utf8')) as { policies: Record<string, { id: string; mode: string; mx: string[] }> };
    assert.deepEqual([saved.policies['sts.test']?.id, saved.policies['sts.test']?.mode, saved.policies['sts.test']?.mx], ['1', 'enforce', ['mx2.sts.test']]);
    answers.clear();
    dns.update('_mta-sts.sts.test', undefined);
    await withAgent(config(dir, peer.port), async (agent) => {
      const r = await deliver(agent, peer.port);
      assert.deepEqual([r.outcome, r.dsnStatus], ['deferred', '4.7.5'], 'still enforced after the restart (RFC 8461 5.1: no TXT record keeps the cached policy)');
      assert.match(r.diagnostic, /verification failed for mx2\.sts\.test\[/, 'only mx2, the policy\'s MX, was tried');
      assert.equal(peer.sessions.length, 2, 'one session per agent');
    });
    assert.equal(fetches.length, 1, 'the second agent did not fetch');
  });
});

test('a policy expires after max_age; then, with no policy to be had, delivery is as without MTA-STS', async () => {
  answers.set('mta-sts.sts.test', { body: policy('enforce', ['mx2.sts.test'], 1) });
  await withPeer({ tls: wrongCert }, async (peer) => {
    const cfg = config(newDir(), peer.port, {});
    cfg.delivery.mtaSts.dnsCacheMs = 0;
    await withAgent(cfg, async (agent) => {
      assert.equal((await deliver(agent, peer.port)).dsnStatus, '4.7.5');
      answers.set('mta-sts.sts.test', { status: 500, body: 'down' });
      await new Promise((r) => setTimeout(r, 1100));
      const r = await deliver(agent, peer.port);
      assert.equal(r.outcome, 'delivered', 'expired, and the fetch of a new one failed: no policy');
      assert.equal(fetches.length, 2);
    });
  });
});

test('fetch rules: redirects not followed, text/plain required, size limit, invalid policy, bad certificate', async () => {
  const o = { resolver, port: httpsPort, ca: [ca.cert], timeoutMs: 2000, maxBytes: 200 };
  answers.set('mta-sts.sts.test', { status: 301, location: 'https://elsewhere.test/', body: '' });
  await assert.rejects(fetchPolicy('sts.test', '1', o), /HTTP status 301 \(redirects are not followed/);
  answers.set('mta-sts.sts.test', { type: 'text/html', body: policy('enforce', ['mx2.sts.test']) });
  await assert.rejects(fetchPolicy('sts.test', '1', o), /media type "text\/html" is not text\/plain/);
  answers.set('mta-sts.sts.test', { body: policy('enforce', ['mx2.sts.test']) + '#'.repeat(300) });
  await assert.rejects(fetchPolicy('sts.test', '1', o), /policy larger than 200 bytes/);
  answers.set('mta-sts.sts.test', { body: 'version: STSv1\r\nmode: sometimes\r\nmax_age: 10\r\n' });
  await assert.rejects(fetchPolicy('sts.test', '1', o), /policy of sts\.test is invalid: Invalid mode field/);
  answers.set('mta-sts.sts.test', { body: policy('testing', ['*.sts.test']) });
  assert.deepEqual(await fetchPolicy('sts.test', '7', o), { id: '7', mode: 'testing', mx: ['*.sts.test'], maxAge: 86400 });
  await assert.rejects(fetchPolicy('sts.test', '1', { ...o, ca: undefined }), /fetch of https:\/\/mta-sts\.sts\.test:\d+\/\.well-known\/mta-sts\.txt failed: .*certificate/);
  await assert.rejects(fetchPolicy('nohost.test', '1', o), /policy host mta-sts\.nohost\.test does not resolve/);
});

test('TXT discovery: one STSv1 record gives its id; none or two give no policy', async () => {
  assert.equal(await lookupPolicyId(resolver, 'sts.test'), '1');
  assert.equal(await lookupPolicyId(resolver, 'nothing.test'), false);
  dns.update('_mta-sts.two.test', { txt: [['v=STSv1; id=a;'], ['v=STSv1; id=b;'], ['unrelated']] });
  assert.equal(await lookupPolicyId(resolver, 'two.test'), false);
  dns.update('_mta-sts.broken.test', { servfail: true });
  await assert.rejects(lookupPolicyId(resolver, 'broken.test'), /TXT lookup of _mta-sts\.broken\.test failed/);
});

test('not consulted when off, or when a tlsPolicies rule names the destination', async () => {
  answers.set('mta-sts.sts.test', { body: policy('enforce', ['mx.elsewhere.test']) });
  await withPeer({ tls: mxCert }, async (peer) => {
    const q0 = dns.queries.filter((q) => q.startsWith('_mta-sts.')).length;
    const dir = newDir();
    await withAgent(config(dir, peer.port, { mtaSts: { enabled: false } }), async (agent) => {
      assert.equal((await deliver(agent, peer.port)).outcome, 'delivered');
    });
    await withAgent(config(dir, peer.port, { tlsPolicies: [{ match: 'sts.test', mode: 'required' }] }), async (agent) => {
      assert.equal((await deliver(agent, peer.port)).outcome, 'delivered');
    });
    assert.equal(dns.queries.filter((q) => q.startsWith('_mta-sts.')).length, q0);
    assert.equal(fetches.length, 0);
    assert.equal(existsSync(join(dir, STS_CACHE_FILE)), false);
  });
});
