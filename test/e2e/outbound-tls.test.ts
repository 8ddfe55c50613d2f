/**
 * Outbound TLS policy, MTA-STS and connection handling end to end: the real `postline serve`
 * delivers by MX (a real DNS server on loopback) to a private Postfix (real smtpd: STARTTLS with a
 * certificate from a CA made in the test, PIPELINING, CHUNKING), which relays to smtp-sink; an
 * MTA-STS policy comes from a real HTTPS server on 127.0.0.1; an smtp-sink with `-Q DATA` answers
 * 421. The recipient.* events carry the TLS facts (version, cipher, verified).
 * Skips the Postfix part when a private Postfix cannot run here (not root, postfix missing).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer as createHttpsServer, type Server } from 'node:https';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { StoredEvent } from '../../src/events/record.js';
import { PostlineProcess } from '../helpers/postline-process.js';
import { SmtpSink } from '../helpers/smtp-sink.js';
import { RawSmtp } from '../helpers/raw-smtp.js';
import { freePort, waitFor } from '../helpers/net.js';
import { startDnsServer, type DnsServerHandle } from '../helpers/dns-server.js';
import { makeTestCa, type TestCa } from '../helpers/test-ca.js';
import { PostfixInstance, postfixAvailable } from '../helpers/postfix.js';

const canRun = postfixAvailable();
const cleanups: Array<() => Promise<void> | void> = [];
let ca: TestCa;
let dns: DnsServerHandle;
let sink: SmtpSink;
let postfix: PostfixInstance;
let https: Server;
let quitPort: number;
let quitSink: SmtpSink;
let pl: PostlineProcess;

const policy = (mx: string[]) => `version: STSv1\r\nmode: enforce\r\n${mx.map((m) => `mx: ${m}\r\n`).join('')}max_age: 86400\r\n`;

before(async () => {
  if (!canRun) return;
  ca = await makeTestCa();
  cleanups.push(() => ca.cleanup());
  sink = await new SmtpSink().start();
  cleanups.push(() => sink.cleanup());
  quitPort = await freePort();
  quitSink = await new SmtpSink(['-Q', 'DATA']).start(quitPort);
  cleanups.push(() => quitSink.cleanup());
  const pfPort = await freePort();
  postfix = new PostfixInstance({ port: pfPort, relayPort: sink.port, tls: await ca.issue(['mx.pf.test', 'mx.sts.test']) });
  cleanups.push(() => postfix.cleanup());
  await postfix.start();
  const host = await ca.issue(['mta-sts.sts.test', 'mta-sts.stsbad.test']);
  https = createHttpsServer({ key: host.key, cert: host.cert }, (req, res) => {
    const name = String(req.headers.host ?? '').replace(/:\d+$/, '');
    const body = name === 'mta-sts.sts.test' || name === 'mta-sts.stsbad.test' ? policy(['mx.sts.test']) : undefined;
    if (!body) { res.writeHead(404).end(); return; }
    res.writeHead(200, { 'content-type': 'text/plain' }).end(body);
  });
  await new Promise<void>((r) => https.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise<void>((r) => https.close(() => r())));
  dns = await startDnsServer({
    'pf.test': { mx: [{ exchange: 'mx.pf.test', priority: 10 }] },
    'origin.test': { mx: [{ exchange: 'mx.pf.test', priority: 10 }] },
    'mx.pf.test': { a: ['127.0.0.1'] },
    'sts.test': { mx: [{ exchange: 'mx.sts.test', priority: 10 }] },
    'mx.sts.test': { a: ['127.0.0.1'] },
    '_mta-sts.sts.test': { txt: [['v=STSv1; id=20240101;']] },
    'mta-sts.sts.test': { a: ['127.0.0.1'] },
    'stsbad.test': { mx: [{ exchange: 'mx.pf.test', priority: 10 }] },
    '_mta-sts.stsbad.test': { txt: [['v=STSv1; id=1;']] },
    'mta-sts.stsbad.test': { a: ['127.0.0.1'] },
  });
  cleanups.push(() => dns.close());
  pl = new PostlineProcess({
    config: {
      relay: { trustedNetworks: ['127.0.0.0/8'] },
      delivery: {
        dns: { servers: [dns.server], timeoutMs: 2000, tries: 1 }, mxPort: pfPort,
        tls: { mode: 'verify', caFile: ca.file },
        mtaSts: { caFile: ca.file, port: (https.address() as { port: number }).port },
        routes: [{ domain: 'q.test', host: '127.0.0.1', port: quitPort, tls: 'none' }],
        retry: { initialMs: 500, maxMs: 1000, jitter: 0 }, scanIntervalMs: 100,
      },
    },
  });
  cleanups.push(() => pl.cleanup());
  await pl.start();
});

after(async () => {
  for (const c of cleanups.reverse()) await Promise.resolve(c()).catch(() => {});
});

async function send(to: string, subject: string, body = 'hello\r\n'): Promise<string> {
  const { c } = await RawSmtp.open(pl.port());
  await c.ehlo();
  const r = await c.send('sender@origin.test', [to], Buffer.from(`From: sender@origin.test\r\nTo: ${to}\r\nSubject: ${subject}\r\n\r\n${body}`, 'latin1'));
  await c.quit();
  assert.equal(r.final?.code, 250, JSON.stringify(r));
  return /queued as (\S+)/.exec(r.final!.text)![1]!;
}

async function events(queueId: string): Promise<StoredEvent[]> {
  const r = await pl.cli(['events', '--json', '--queue-id', queueId]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as StoredEvent);
}

const eventOf = (queueId: string, type: string) => async () => (await events(queueId)).find((e) => e.type === type);
const sunkAll = (tag: string) => sink.messages().filter((m) => m.data.toString('latin1').includes(`Subject: ${tag}\n`));
const sunk = (tag: string) => () => sunkAll(tag)[0];

test('verify against Postfix: TLS verified, BDAT, byte-identical; recipient.delivered carries version, cipher, verified', { skip: !canRun && 'needs root and postfix' }, async (t) => {
  const big = Array.from({ length: 14_000 }, (_, i) => `.line ${i} ${'x'.repeat(30)}\r\n`).join('');
  const id = await send('alice@pf.test', 'tls-small');
  const idBig = await send('bob@pf.test', 'tls-big', big);
  await waitFor('the small message at the sink', sunk('tls-small'), 30_000, 100);
  const large = await waitFor('the large message at the sink', sunk('tls-big'), 30_000, 100);
  assert.ok(large.data.toString('latin1').endsWith(big.replace(/\r\n/g, '\n')), 'the body arrived unchanged (smtp-sink writes LF)');
  const ev = await waitFor('recipient.delivered', eventOf(id, 'recipient.delivered'), 10_000, 100);
  assert.equal(ev.tls?.verified, true, JSON.stringify(ev));
  assert.match(ev.tls?.version ?? '', /^TLSv1\.[23]$/);
  assert.ok(ev.tls?.cipher);
  assert.match(ev.remoteHost ?? '', /^mx\.pf\.test\[127\.0\.0\.1\]:\d+$/);
  assert.equal((await waitFor('recipient.delivered (big)', eventOf(idBig, 'recipient.delivered'), 10_000, 100)).tls?.verified, true);
  // Postfix logs the command counts when a session ends (ours idle in the pool for idleTimeoutMs first).
  const bdatTotal = (log: string) => [...log.matchAll(/disconnect from .*bdat=(\d+)/g)].reduce((n, m) => n + Number(m[1]), 0);
  const log = await waitFor('Postfix logs both messages\' BDAT commands', () => (bdatTotal(postfix.log()) >= 4 ? postfix.log() : ''), 20_000, 100);
  assert.match(log, /TLS connection established from \S+\[127\.0\.0\.1\]: TLSv1\.[23]/);
  for (const l of log.split('\n').filter((x) => /TLS connection established|disconnect from/.test(x))) t.diagnostic(l.replace(/^.*?postfix\//, 'postfix/'));
  assert.ok(bdatTotal(log) >= 4, 'BDAT used: one chunk for the small message, several for the big one');
  assert.ok(!/\bdata=\d/.test(log), 'no DATA command');
});

test('MTA-STS enforce: an allowed MX is delivered verified; an MX the policy does not name defers 4.7.0; the policy is written to dataDir', { skip: !canRun && 'needs root and postfix' }, async () => {
  const ok = await send('carol@sts.test', 'sts-ok');
  const bad = await send('dave@stsbad.test', 'sts-bad');
  await waitFor('the allowed one at the sink', sunk('sts-ok'), 30_000, 100);
  assert.equal((await waitFor('recipient.delivered', eventOf(ok, 'recipient.delivered'), 10_000, 100)).tls?.verified, true);
  const d = await waitFor('recipient.deferred', eventOf(bad, 'recipient.deferred'), 20_000, 100);
  assert.equal(d.dsn, '4.7.0');
  assert.match(d.reply ?? '', /MTA-STS policy of stsbad\.test \(enforce, mx: mx\.sts\.test\) allows none of the MX hosts mx\.pf\.test/);
  assert.equal(sunkAll('sts-bad').length, 0);
  const file = join(pl.dir, 'var', 'mta-sts.json');
  const saved = await waitFor('mta-sts.json', () => (existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) as { policies: Record<string, { mode: string }> } : undefined), 5000, 100);
  assert.deepEqual(Object.keys(saved.policies).sort(), ['sts.test', 'stsbad.test']);
});

test('a 421 from smtp-sink (-Q DATA) defers; the next attempt against a working server delivers exactly once', { skip: !canRun && 'needs root and postfix' }, async () => {
  const id = await send('erin@q.test', 'quit-421');
  const d = await waitFor('recipient.deferred', eventOf(id, 'recipient.deferred'), 20_000, 100);
  assert.match(d.reply ?? '', /^421 /);
  await quitSink.stop();
  const fine = await new SmtpSink().start(quitPort);
  cleanups.push(() => fine.cleanup());
  await waitFor('delivered after the 421', eventOf(id, 'recipient.delivered'), 30_000, 100);
  await new Promise((r) => setTimeout(r, 1500)); // a duplicate would arrive now
  assert.equal(fine.messages().filter((m) => m.data.toString('latin1').includes('Subject: quit-421')).length, 1);
});
