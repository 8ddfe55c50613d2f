/**
 * Direct MX delivery end to end: a real DNS server on a loopback UDP port (dns2) serves MX, implicit MX
 * (A only), null MX, NXDOMAIN, SERVFAIL and self-pointing cases; `delivery.mxPort` points MX delivery
 * at Postfix's smtp-sink on loopback.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { PostlineProcess } from '../helpers/postline-process.js';
import { SmtpSink } from '../helpers/smtp-sink.js';
import { RawSmtp } from '../helpers/raw-smtp.js';
import { waitFor } from '../helpers/net.js';
import { startDnsServer, type DnsServerHandle } from '../helpers/dns-server.js';

let dns: DnsServerHandle;
let sink: SmtpSink;
let pl: PostlineProcess;

before(async () => {
  sink = await new SmtpSink().start();
  dns = await startDnsServer({
    'mx.test': { mx: [{ exchange: 'mail.mx.test', priority: 10 }] },
    'mail.mx.test': { a: ['127.0.0.1'] },
    'aonly.test': { a: ['127.0.0.1'] },
    'twomx.test': { mx: [{ exchange: 'down.twomx.test', priority: 5 }, { exchange: 'up.twomx.test', priority: 20 }] },
    'down.twomx.test': { a: ['127.0.0.2'] }, // nothing listens on 127.0.0.2:port: connection refused
    'up.twomx.test': { a: ['127.0.0.1'] },
    'nullmx.test': { mx: [{ exchange: '', priority: 0 }] },
    'servfail.test': { servfail: true },
    'origin.test': { mx: [{ exchange: 'mail.mx.test', priority: 10 }] },
    'deadmx.test': { mx: [{ exchange: 'no-such-host.deadmx.test', priority: 10 }] },
    'halfmx.test': { mx: [{ exchange: 'no-such-host.halfmx.test', priority: 5 }, { exchange: 'mail.mx.test', priority: 10 }] },
  });
  pl = new PostlineProcess({
    config: {
      delivery: { dns: { servers: [dns.server], timeoutMs: 2000, tries: 1 }, mxPort: sink.port, tls: 'none', retry: { initialMs: 60_000, maxMs: 60_000, jitter: 0 }, scanIntervalMs: 100 },
    },
  });
  await pl.start();
});

after(async () => {
  await pl?.cleanup();
  await sink?.cleanup();
  await dns?.close();
});

async function send(to: string, subject: string): Promise<string> {
  const { c } = await RawSmtp.open(pl.port());
  await c.ehlo();
  const r = await c.send('sender@origin.test', [to], Buffer.from(`From: sender@origin.test\r\nTo: ${to}\r\nSubject: ${subject}\r\n\r\nbody\r\n`));
  await c.quit();
  assert.equal(r.final?.code, 250, JSON.stringify(r));
  return /queued as (\S+)/.exec(r.final!.text)![1]!;
}

const at = (rcpt: string) => () => sink.messages().find((m) => m.rcptArgs.some((r) => r.includes(rcpt)));
const dsnFor = (rcpt: string) => () => sink.messages().find((m) => m.mailArgs.startsWith('<>') && m.data.toString('latin1').includes(rcpt));

test('MX by preference', async () => {
  await send('a@mx.test', 'via-mx');
  await waitFor('delivery via MX', at('a@mx.test'), 20_000);
});

test('implicit MX: a domain with only an A record', async () => {
  await send('b@aonly.test', 'via-a');
  await waitFor('delivery via A', at('b@aonly.test'), 20_000);
});

test('moves on to the next MX host when the first refuses the connection', async () => {
  await send('c@twomx.test', 'second-mx');
  await waitFor('delivery via the second MX', at('c@twomx.test'), 20_000);
});

test('null MX (RFC 7505) bounces with 5.1.10', async () => {
  await send('d@nullmx.test', 'null-mx');
  const dsn = await waitFor('a DSN for the null MX domain', dsnFor('d@nullmx.test'), 20_000);
  assert.match(dsn.data.toString('latin1'), /Status: 5\.1\.10/);
});

test('NXDOMAIN bounces with 5.1.2', async () => {
  await send('e@no-such-domain.test', 'nxdomain');
  const dsn = await waitFor('a DSN for the missing domain', dsnFor('e@no-such-domain.test'), 20_000);
  assert.match(dsn.data.toString('latin1'), /Status: 5\.1\.2/);
});

test('issue 15 item 6: an MX host name that does not exist bounces with 5.4.4 (not deferred until expiry)', async () => {
  await send('g@deadmx.test', 'dead-mx-host');
  const dsn = await waitFor('a DSN for the domain whose MX host does not exist', dsnFor('g@deadmx.test'), 20_000);
  assert.match(dsn.data.toString('latin1'), /Status: 5\.4\.4/);
});

test('issue 15 item 6: an MX host that does not exist is skipped when another resolves', async () => {
  await send('h@halfmx.test', 'half-mx');
  await waitFor('delivery via the MX host that resolves', at('h@halfmx.test'), 20_000);
});

test('SERVFAIL defers and never bounces', async () => {
  const id = await send('f@servfail.test', 'servfail');
  await waitFor('a deferral', () => pl.logs().some((l) => l.queueId === id && l.status === 'deferred'), 20_000);
  const list = await pl.cli(['queue', 'list']);
  assert.match(list.stdout, new RegExp(id));
  assert.equal(dsnFor('f@servfail.test')(), undefined);
});

test('an MX that points back at our own listener is not looped into', async () => {
  const self = new PostlineProcess({ config: { delivery: { dns: { servers: [dns.server], timeoutMs: 2000, tries: 1 }, tls: 'none', retry: { initialMs: 60_000, maxMs: 60_000 }, scanIntervalMs: 100 } } });
  await self.writeConfig();
  // Point MX delivery at this instance's own port: mail.mx.test resolves to 127.0.0.1.
  const selfPort = self.port();
  const cfg = new PostlineProcess({ config: { delivery: { dns: { servers: [dns.server], timeoutMs: 2000, tries: 1 }, tls: 'none', mxPort: selfPort, retry: { initialMs: 60_000, maxMs: 60_000 }, scanIntervalMs: 100 } } }, self.dir);
  cfg.ports.set('mx', selfPort);
  await cfg.writeConfig();
  try {
    await cfg.start();
    const { c } = await RawSmtp.open(selfPort);
    await c.ehlo();
    const r = await c.send('sender@origin.test', ['loop@mx.test'], Buffer.from('Subject: loop\r\n\r\nx\r\n'));
    await c.quit();
    assert.equal(r.final?.code, 250);
    const id = /queued as (\S+)/.exec(r.final!.text)![1]!;
    const line = await waitFor('a deferral naming the loop', () => cfg.logs().find((l) => l.queueId === id && l.status === 'deferred'), 20_000);
    assert.match(JSON.stringify(line), /loops back to myself/i);
    // Our own listener must not have received a second copy.
    assert.equal(cfg.logs().filter((l) => l.msg !== undefined && /queued/i.test(String(l.msg)) && l.from === 'sender@origin.test').length <= 1, true);
  } finally {
    await cfg.cleanup();
  }
});
