/**
 * Fault suite, signals (issue 3). SIGTERM under load: the server stops accepting, finishes or
 * safely abandons in-flight work, exits 0 within a bounded time, and after a restart every message
 * answered 250 is delivered. SIGHUP: the configuration's live keys (src/config/live.ts) and the TLS
 * certificate are reloaded without dropping an established session (its message is delivered)
 * and new TLS sessions get the new certificate.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { join } from 'node:path';
import { generate } from 'selfsigned';
import { PostlineProcess } from '../helpers/postline-process.js';
import { SmtpSink } from '../helpers/smtp-sink.js';
import { startReceivers } from './lib/receivers.js';
import { RawSmtp, dotStuff } from '../helpers/raw-smtp.js';
import { waitFor } from '../helpers/net.js';
import { LoadGenerator } from './lib/load.js';
import { LONG, report, sleep } from './lib/profile.js';
import { countByNumber, figures } from './lib/tally.js';

const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
});

const isBounce = (n: number): boolean => n % 10 === 7;

test('SIGTERM under load: exits 0 within the bound, nothing answered is lost', { timeout: 120_000 }, async () => {
  const rx = await startReceivers();
  const { sink, home } = rx;
  cleanups.push(() => rx.cleanup());
  const pl = new PostlineProcess({
    config: {
      log: { level: 'warn', format: 'json' },
      delivery: {
        routes: rx.routes,
        retry: { initialMs: 300, maxMs: 1000, multiplier: 1, jitter: 0 }, scanIntervalMs: 100,
      },
    },
  });
  cleanups.push(() => pl.cleanup());
  const load = new LoadGenerator({ port: () => pl.port(), concurrency: 4, maxMessages: 100_000 });
  const rounds = LONG ? 5 : 2;
  const exitMs: number[] = [];
  await pl.start();
  load.start();
  for (let r = 0; r < rounds; r++) {
    await sleep(1500);
    const t0 = Date.now();
    pl.signal('SIGTERM');
    const code = await pl.exited(35_000);
    exitMs.push(Date.now() - t0);
    assert.equal(code, 0, 'SIGTERM exits 0');
    await pl.stop();
    await pl.start();
  }
  await load.stop();
  const found = () => ({ delivered: countByNumber([sink], /<?m(\d+)@sink\.test/), dsns: countByNumber([home], /<?s(\d+)@origin\.test/) });
  const got = await waitFor('every answered message delivered', () => {
    const g = found();
    return [...load.answered].every((n) => (isBounce(n) ? g.dsns.has(n) : g.delivered.has(n))) ? g : undefined;
  }, 40_000, 250);
  const f = figures(load.answered, got.delivered, got.dsns, isBounce);
  report('sigterm', { ...f, stops: rounds, exitMsMax: Math.max(...exitMs), cut: load.cut.size });
  assert.equal(f.lost, 0);
  assert.ok(Math.max(...exitMs) < 15_000, `exit within the bound (${Math.max(...exitMs)} ms)`);
  await pl.stop();
});

/** A self-signed certificate and key for CN=`name`, written to `dir`; with its SHA-256 fingerprint. */
async function makeCert(dir: string, name: string): Promise<{ cert: string; key: string; fingerprint: string }> {
  const pems = await generate([{ name: 'commonName', value: name }], { keySize: 2048 });
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  writeFileSync(cert, pems.cert);
  writeFileSync(key, pems.private, { mode: 0o600 });
  return { cert, key, fingerprint: new X509Certificate(pems.cert).fingerprint256 };
}

/** STARTTLS on a fresh session; resolves with the fingerprint of the certificate the server showed. */
async function servedFingerprint(port: number): Promise<string> {
  const plain = connect(port, '127.0.0.1');
  let buf = '';
  const waitLine = (re: RegExp) => waitFor(`reply ${re}`, () => re.test(buf), 10_000, 10);
  plain.on('data', (d: Buffer) => { buf += d.toString('latin1'); });
  plain.on('error', () => {});
  try {
    await waitLine(/^220 /m);
    plain.write('EHLO client.test\r\n');
    await waitLine(/^250 /m);
    buf = '';
    plain.write('STARTTLS\r\n');
    await waitLine(/^220 /m);
    plain.removeAllListeners('data');
    const t = await new Promise<import('node:tls').TLSSocket>((resolve, reject) => {
      const s = tlsConnect({ socket: plain, rejectUnauthorized: false }, () => resolve(s));
      s.once('error', reject);
    });
    const fp = t.getPeerX509Certificate()?.fingerprint256 ?? '';
    t.destroy();
    return fp;
  } finally {
    plain.destroy();
  }
}

test('SIGHUP: live keys and the certificate reload; an open session goes on and its message is delivered', { timeout: 120_000 }, async () => {
  const sink = await new SmtpSink().start();
  cleanups.push(() => sink.cleanup());
  const pl = new PostlineProcess({
    listeners: [{ name: 'mx', role: 'mx', tls: 'starttls' }],
    config: {
      log: { level: 'info', format: 'json' },
      delivery: { relayhost: { host: '127.0.0.1', port: sink.port, tls: 'none' }, scanIntervalMs: 100 },
    },
  });
  cleanups.push(() => pl.cleanup());
  const one = await makeCert(pl.dir, 'one.test');
  const two = await makeCert(pl.dir, 'two.test');
  pl.configOverride = { tls: { cert: one.cert, key: one.key }, limits: { minFreeBytes: 0, maxRecipients: 10 } };
  await pl.writeConfig();
  await pl.start();
  assert.equal(await servedFingerprint(pl.port()), one.fingerprint);

  // A session open across the reload.
  const { c } = await RawSmtp.open(pl.port());
  await c.ehlo();
  assert.equal((await c.cmd('MAIL FROM:<sender@origin.test>')).code, 250);
  assert.equal((await c.cmd('RCPT TO:<m1@sink.test>')).code, 250);

  pl.configOverride = { tls: { cert: two.cert, key: two.key }, limits: { minFreeBytes: 0, maxRecipients: 1 } };
  await pl.writeConfig();
  const before = pl.logs().filter((l) => l.msg === 'configuration reloaded').length;
  pl.signal('SIGHUP');
  await waitFor('the reload log line', () => pl.logs().filter((l) => l.msg === 'configuration reloaded').length > before, 10_000);

  assert.equal((await c.cmd('DATA')).code, 354, 'the open session continues');
  c.write(dotStuff(Buffer.from('Subject: across SIGHUP\r\nMessage-ID: <hup-1@origin.test>\r\n\r\nbody\r\n')));
  assert.equal((await c.read()).code, 250, 'its message is accepted');
  await c.quit();
  assert.equal(await servedFingerprint(pl.port()), two.fingerprint, 'new TLS sessions get the new certificate');

  // A live key took effect: one recipient per transaction now.
  const s2 = (await RawSmtp.open(pl.port())).c;
  await s2.ehlo();
  await s2.cmd('MAIL FROM:<sender@origin.test>');
  assert.equal((await s2.cmd('RCPT TO:<m2@sink.test>')).code, 250);
  assert.equal((await s2.cmd('RCPT TO:<m3@sink.test>')).code, 452, 'limits.maxRecipients is live');
  await s2.quit();

  const delivered = await waitFor('the message of the open session delivered', () => {
    const got = countByNumber([sink], /<?m(\d+)@sink\.test/);
    return got.has(1) ? got : undefined;
  }, 20_000);
  const f = figures(new Set([1]), delivered, new Map(), () => false);
  const reload = pl.logs().filter((l) => l.msg === 'configuration reloaded').pop();
  report('sighup', { ...f, certificateChanged: 'yes', applied: JSON.stringify(reload?.applied ?? []) });
  assert.equal(f.lost, 0);
  assert.equal(await pl.stop(), 0);
});
