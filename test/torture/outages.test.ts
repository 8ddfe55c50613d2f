/**
 * Fault suite, outages (issue 3): the next hop refuses connections, or is blackholed (accepts TCP,
 * never answers), and the DNS server is down or answers SERVFAIL. Mail is deferred, never bounced
 * early, and delivered once the peer returns; connection and command timeouts free the delivery
 * slots (the blackhole keeps seeing new attempts while earlier ones time out).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { PostlineProcess } from '../helpers/postline-process.js';
import { SmtpSink } from '../helpers/smtp-sink.js';
import { RawSmtp } from '../helpers/raw-smtp.js';
import { freePort, waitFor } from '../helpers/net.js';
import { startDnsServer, type DnsServerHandle } from '../helpers/dns-server.js';
import { decidingCode } from './lib/load.js';
import { HostilePeer } from './lib/peer.js';
import { LONG, report, sleep } from './lib/profile.js';
import { countByNumber, figures } from './lib/tally.js';

const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
});

const DOMAINS = ['refused.test', 'blackhole.test', 'dnsdown.test', 'servfail.test'] as const;

test('outages: refused, blackholed, DNS down and SERVFAIL defer (never bounce) and deliver when the peer returns', { timeout: 120_000 }, async () => {
  const [refusedPort, blackholePort, dnsPort] = [await freePort(), await freePort(), await freePort()];
  const mxSink = await new SmtpSink().start();
  cleanups.push(() => mxSink.cleanup());
  const blackhole = await new HostilePeer('blackhole').start(blackholePort);
  cleanups.push(() => blackhole.stop());
  const pl = new PostlineProcess({
    config: {
      log: { level: 'info', format: 'json' },
      delivery: {
        routes: [
          { domain: 'refused.test', host: '127.0.0.1', port: refusedPort, tls: 'none' },
          { domain: 'blackhole.test', host: '127.0.0.1', port: blackholePort, tls: 'none' },
        ],
        dns: { servers: [`127.0.0.1:${dnsPort}`], timeoutMs: 500, tries: 1 },
        mxPort: mxSink.port,
        tls: 'none',
        retry: { initialMs: 500, maxMs: 1000, multiplier: 1, jitter: 0 },
        scanIntervalMs: 100,
        connectTimeoutMs: 1000,
        commandTimeoutMs: 1000,
        connectionsPerDestination: 2,
        maxQueueLifetimeMs: 3_600_000,
      },
    },
  });
  cleanups.push(() => pl.cleanup());
  await pl.start();

  const perDomain = LONG ? 25 : 6;
  const answered = new Set<number>();
  const { c } = await RawSmtp.open(pl.port());
  await c.ehlo();
  let n = 0;
  for (const d of DOMAINS) {
    for (let k = 0; k < perDomain; k++, n++) {
      const r = await c.send('sender@origin.test', [`m${n}@${d}`], Buffer.from(`Subject: outage ${n}\r\nMessage-ID: <outage-${n}@origin.test>\r\n\r\nbody\r\n`));
      if (decidingCode(r) === 250) answered.add(n);
    }
  }
  await c.quit();
  assert.equal(answered.size, n);

  // Phase 1: everything down (nothing on the refused port or the DNS port; the blackhole answers nothing).
  const outageMs = LONG ? 20_000 : 5000;
  await sleep(outageMs / 2);
  // Phase 2: the DNS server comes back answering SERVFAIL for both names.
  let dns: DnsServerHandle = await startDnsServer({ 'dnsdown.test': { servfail: true }, 'servfail.test': { servfail: true } }, dnsPort);
  cleanups.push(() => dns.close());
  await sleep(outageMs / 2);
  const logs = pl.logs();
  const deferredIds = new Set(logs.filter((l) => l.status === 'deferred').map((l) => String(l.to)));
  const bouncedEarly = logs.filter((l) => l.status === 'bounced' || l.status === 'expired').length;
  assert.equal(bouncedEarly, 0, 'nothing bounced during the outage');
  for (const d of DOMAINS) assert.ok([...deferredIds].some((t) => t.endsWith(`@${d}`)), `deferrals logged for ${d}`);
  const blackholeConns = blackhole.connections;
  assert.ok(blackholeConns > 2, `timeouts free the slots: the blackhole saw ${blackholeConns} connections with 2 slots`);
  assert.ok(blackhole.open() <= 2, 'no more connections than slots are held');

  // Phase 3: every peer returns.
  await dns.close();
  dns = await startDnsServer({
    'dnsdown.test': { mx: [{ exchange: 'mail.mx.test', priority: 10 }] },
    'servfail.test': { mx: [{ exchange: 'mail.mx.test', priority: 10 }] },
    'mail.mx.test': { a: ['127.0.0.1'] },
  }, dnsPort);
  const refusedSink = await new SmtpSink().start(refusedPort);
  cleanups.push(() => refusedSink.cleanup());
  await blackhole.stop();
  const blackholeSink = await new SmtpSink().start(blackholePort);
  cleanups.push(() => blackholeSink.cleanup());
  const sinks = [mxSink, refusedSink, blackholeSink];
  const t0 = Date.now();
  const delivered = await waitFor('every message delivered after the outage', () => {
    const got = countByNumber(sinks, /<?m(\d+)@/);
    return [...answered].every((x) => got.has(x)) ? got : undefined;
  }, 40_000, 200);
  const f = figures(answered, delivered, new Map(), () => false);
  report('outages', {
    ...f, outageMs, deferrals: logs.filter((l) => l.status === 'deferred').length, bouncedEarly,
    blackholeConnections: blackholeConns, recoveryMs: Date.now() - t0,
  });
  assert.equal(f.lost, 0);
  await pl.stop();
});
