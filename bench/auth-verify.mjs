#!/usr/bin/env node
// Verification cost on the mx listener (issue 8 section 3): accepted msg/s of `postline serve`
// with inbound verification off and on, in one run, same machine, same load.
//
//   node bench/auth-verify.mjs [--sessions 20] [--size 2048] [--seconds 10] [--warmup 2] [--seal]
//
// The load: N sessions from 127.0.0.1 (not in relay.trustedNetworks, so verification applies),
// each sending messages one after another on its connection, MAIL FROM and From: in a domain with
// an SPF record (ip4:127.0.0.1) and a DMARC record (p=reject), every message DKIM-signed
// (RSA-2048, relaxed/relaxed) and carrying one ARC set, so all four checks do their full work:
// SPF (MAIL FROM and HELO), DKIM, ARC, DMARC. DNS from a loopback dns2 server (answers cached by
// TTL in Postline). Delivery goes to Postfix's smtp-sink. --seal also adds ARC sealing (a third
// run). Nothing from src/ is imported; every process and temp file is removed on exit.
import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import net from 'node:net';
import dns2 from 'dns2';
import { dkimSign, sealMessage } from 'mailauth';
import { BenchSmtpClient } from './lib/smtp-client.mjs';
import { Sink } from './lib/sink.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const arg = (name, def) => { const i = process.argv.indexOf(`--${name}`); return i > 0 ? Number(process.argv[i + 1]) : def; };
const opt = { sessions: arg('sessions', 20), size: arg('size', 2048), seconds: arg('seconds', 10), warmup: arg('warmup', 2), seal: process.argv.includes('--seal') };
const dir = mkdtempSync(join(tmpdir(), 'postline-bench-auth-'));
const children = new Set();
const cleanup = () => { for (const c of children) c.kill('SIGKILL'); rmSync(dir, { recursive: true, force: true }); };
process.on('exit', cleanup);
for (const s of ['SIGINT', 'SIGTERM']) process.on(s, () => process.exit(130));

const freePort = () => new Promise((res) => { const s = net.createServer(); s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => res(p)); }); });
const keyPair = () => generateKeyPairSync('rsa', { modulusLength: 2048 });
const pem = (k) => k.export({ type: 'pkcs8', format: 'pem' });
const txt = (k) => `v=DKIM1; k=rsa; p=${k.export({ type: 'spki', format: 'der' }).toString('base64')}`;
const dkim = keyPair();
const arcUp = keyPair();
const arcOurs = keyPair();

// ---- DNS: SPF, DMARC, DKIM and ARC keys
const zone = {
  'bench.test': [['v=spf1 ip4:127.0.0.1 -all']], 'helo.bench.test': [['v=spf1 ip4:127.0.0.1 -all']],
  '_dmarc.bench.test': [['v=DMARC1; p=reject']],
  'k1._domainkey.bench.test': [txt(dkim.publicKey).match(/.{1,255}/g)],
  'up._domainkey.upstream.test': [txt(arcUp.publicKey).match(/.{1,255}/g)],
  'arc._domainkey.seal.test': [txt(arcOurs.publicKey).match(/.{1,255}/g)],
};
const { Packet } = dns2;
const dns = dns2.createUDPServer((req, send) => {
  const res = Packet.createResponseFromRequest(req);
  const q = req.questions[0];
  const name = q?.name.toLowerCase().replace(/\.$/, '');
  if (!q || !(name in zone)) res.header.rcode = 3;
  else if (q.type === Packet.TYPE.TXT) res.answers.push(...zone[name].map((data) => ({ name: q.name, type: q.type, class: 1, ttl: 300, data })));
  send(res);
});
await dns.listen(0, '127.0.0.1');
const dnsServer = `127.0.0.1:${dns.address().port}`;

// ---- the message: DKIM-signed, with one ARC set from "upstream"
const body = 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-abcdefghijkl\r\n'.repeat(Math.max(1, Math.round((opt.size - 600) / 78)));
let msg = Buffer.from(`From: <bench@bench.test>\r\nTo: <rcpt@rcpt.test>\r\nSubject: auth bench\r\nDate: Thu, 03 Dec 2026 10:00:00 +0000\r\nMessage-ID: <auth.bench@bench.test>\r\n\r\n${body}`);
const signed = await dkimSign(msg, { signatureData: [{ signingDomain: 'bench.test', selector: 'k1', privateKey: pem(dkim.privateKey) }] });
msg = Buffer.concat([Buffer.from(signed.signatures), msg]);
msg = Buffer.concat([await sealMessage(msg, { signingDomain: 'upstream.test', selector: 'up', privateKey: pem(arcUp.privateKey), authResults: 'upstream.test; spf=pass smtp.mailfrom=bench.test', cv: 'none' }), msg]);
const wire = Buffer.from(msg.toString('latin1').replace(/\r\n\./g, '\r\n..') + '.\r\n', 'latin1');
writeFileSync(join(dir, 'arc.pem'), pem(arcOurs.privateKey));

async function runPostline(label, auth, arc) {
  const port = await freePort();
  const sinkPort = await freePort();
  const sink = new Sink({ bin: '/usr/sbin/smtp-sink', port: sinkPort, name: label });
  await sink.start();
  children.add(sink.proc);
  const d = join(dir, label);
  const cfg = {
    hostname: 'mx.bench.test', dataDir: join(d, 'var'), http: null, log: { level: 'warn', format: 'json' },
    listeners: [{ name: 'mx', address: '127.0.0.1', port, role: 'mx', tls: 'none' }],
    relay: { trustedNetworks: [], localDomains: ['rcpt.test'] },
    limits: { minFreeBytes: 0, maxConnectionsPerIp: 1000, maxMessagesPerSession: 1_000_000 }, // untrusted sessions are capped at 1000 by default
    delivery: { routes: [{ domain: 'rcpt.test', host: '127.0.0.1', port: sinkPort, tls: 'none' }], dns: { servers: [dnsServer], timeoutMs: 2000, tries: 1 } },
    auth, ...(arc ? { arc } : {}),
  };
  mkdirSync(d, { recursive: true });
  writeFileSync(join(d, 'postline.json'), JSON.stringify(cfg));
  const proc = spawn(process.execPath, [join(root, 'bin', 'postline.js'), 'serve', '--config', join(d, 'postline.json')], { stdio: ['ignore', 'ignore', 'pipe'] });
  children.add(proc);
  let err = '';
  proc.stderr.on('data', (x) => { err = (err + x).slice(-2000); });
  for (let i = 0; i < 300; i++) {
    if (await new Promise((r) => { const s = net.connect(port, '127.0.0.1'); s.once('connect', () => { s.destroy(); r(true); }); s.once('error', () => r(false)); })) break;
    if (proc.exitCode !== null) throw new Error(`postline exited: ${err}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  let accepted = 0, failed = 0, counting = false, stop = false;
  const session = async () => {
    while (!stop) {
      const c = await BenchSmtpClient.connect({ port });
      try {
        await c.cmd('EHLO helo.bench.test');
        while (!stop) {
          await c.write('MAIL FROM:<bench@bench.test>\r\nRCPT TO:<rcpt@rcpt.test>\r\nDATA\r\n');
          const r = [await c.reply(), await c.reply(), await c.reply()];
          if (r[2].code !== 354) { failed++; await c.cmd('RSET'); continue; }
          await c.write(wire);
          const f = await c.reply();
          if (f.code === 250) { if (counting) accepted++; } else failed++;
        }
        await c.quit();
      } catch { failed++; c.destroy(); } // closed by the server: count it and connect again
    }
  };
  const all = Array.from({ length: opt.sessions }, () => session());
  await new Promise((r) => setTimeout(r, opt.warmup * 1000));
  counting = true;
  const t0 = Date.now();
  await new Promise((r) => setTimeout(r, opt.seconds * 1000));
  const secs = (Date.now() - t0) / 1000;
  counting = false;
  const n = accepted;
  stop = true;
  await Promise.allSettled(all);
  proc.kill('SIGTERM');
  await new Promise((r) => proc.once('exit', r));
  children.delete(proc);
  await sink.stop();
  children.delete(sink.proc);
  return { label, rate: n / secs, accepted: n, failed };
}

const runs = [];
runs.push(await runPostline('off', { enabled: false }));
runs.push(await runPostline('verify', { enabled: true, dns: { servers: [dnsServer], timeoutMs: 2000, tries: 1 } }));
if (opt.seal) runs.push(await runPostline('verify+seal', { enabled: true, dns: { servers: [dnsServer], timeoutMs: 2000, tries: 1 } }, { domain: 'seal.test', selector: 'arc', privateKey: join(dir, 'arc.pem') }));
dns.close();
console.log(`accepted msg/s, ${opt.size} B signed messages with an ARC set, ${opt.sessions} sessions, ${opt.seconds} s each (node ${process.version})`);
for (const r of runs) console.log(`${r.label.padEnd(12)} ${r.rate.toFixed(1).padStart(8)} msg/s  (${r.accepted} accepted, ${r.failed} refused)  ${((r.rate / runs[0].rate - 1) * 100).toFixed(1)}% vs off`);
process.exit(0);
