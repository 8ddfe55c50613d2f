#!/usr/bin/env node
// DKIM signing cost (issue 8, "Figures for the note"): accepted and delivered msg/s with no
// signing, RSA-2048, Ed25519 and both (dual signing), at 2 KB and 50 KB, 50 sessions, in one run,
// alternating the variants rep by rep. Postline at its defaults plus the dkim keys (made with
// `postline dkim keygen`) and a relay host (smtp-sink). The load comes from smtp-source on
// 127.0.0.1 (a trusted network, so its mail is signed: the From domain is the key's domain).
// Usage: node bench/dkim-sign.mjs [--reps 2] [--seconds 8] [--out FILE]
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, openSync, closeSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Sink } from './lib/sink.mjs';
import { freePort, greets, sleep } from './lib/net.mjs';
import { SMTP_SOURCE } from './lib/load.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const SINK_BIN = ['/usr/sbin/smtp-sink', '/usr/bin/smtp-sink'].find((p) => existsSync(p));
const args = process.argv.slice(2);
const opt = (name, dflt) => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1] : dflt; };
const REPS = Number(opt('reps', 2));
const SECONDS = Number(opt('seconds', 8));
const out = opt('out', '');
const lines = [];
const say = (s) => { console.log(s); lines.push(s); };
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length ? (s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : NaN; };


const tmp = mkdtempSync(join(tmpdir(), 'pl-dkimbench-'));
const dataDir = join(tmp, 'var');
mkdirSync(dataDir, { recursive: true });
const bin = join(root, 'bin', 'postline.js');
const keyConf = join(tmp, 'keygen.yaml');
writeFileSync(keyConf, `dataDir: ${dataDir}\n`);
for (const [sel, alg] of [['rsa', 'rsa'], ['ed', 'ed25519']]) {
  execFileSync(process.execPath, [bin, 'dkim', 'keygen', 'bench.test', sel, '--algorithm', alg, '-c', keyConf], { stdio: 'ignore' });
}
const KEYS = {
  none: [],
  rsa: [{ selector: 'rsa', algorithm: 'rsa-sha256' }],
  ed25519: [{ selector: 'ed', algorithm: 'ed25519-sha256' }],
  both: [{ selector: 'rsa', algorithm: 'rsa-sha256' }, { selector: 'ed', algorithm: 'ed25519-sha256' }],
};

async function runOne(variant, size, sinkPort, sink) {
  const port = await freePort();
  const dir = join(tmp, `run-${variant}-${size}-${Date.now()}`);
  mkdirSync(dir);
  const keys = KEYS[variant].map((k) => `    - { domain: bench.test, selector: ${k.selector}, algorithm: ${k.algorithm}, privateKey: ${join(dataDir, 'dkim', 'bench.test', `${k.selector}.pem`)} }`).join('\n');
  const conf = join(dir, 'postline.yaml');
  writeFileSync(conf, `hostname: dkim-bench.test\ndataDir: ${join(dir, 'var')}\nlisteners:\n  - { name: mx, address: 127.0.0.1, port: ${port}, role: mx }\nhttp: null\n`
    + `delivery:\n  relayhost: { host: 127.0.0.1, port: ${sinkPort}, tls: none }\n${keys ? `dkim:\n  keys:\n${keys}\n` : ''}`);
  const log = openSync(join(dir, 'postline.log'), 'a');
  const proc = spawn(process.execPath, [bin, 'serve', '-c', conf], { stdio: ['ignore', log, log] });
  closeSync(log);
  const exit = new Promise((r) => proc.once('exit', r));
  for (let i = 0; i < 500 && !(await greets(port)); i++) await sleep(20);
  // Warm-up, then a timed run of about SECONDS (count from a rough rate: 2 KB ~1,500/s, 50 KB ~600/s).
  const count = Math.round((size > 10_000 ? 500 : 1300) * SECONDS);
  const send = (n) => new Promise((res) => {
    const p = spawn(SMTP_SOURCE, ['-s', '50', '-m', String(n), '-l', String(size), '-d', '-M', 'bench.test', '-f', 'sender@bench.test', '-t', 'rcpt@sink.test', `127.0.0.1:${port}`], { stdio: 'ignore' });
    p.once('exit', res);
  });
  await send(500);
  await sink.waitFor(sink.count + 0, 1);
  const base = sink.count;
  const t0 = Date.now();
  await send(count);
  const acceptedMs = Date.now() - t0;
  await sink.waitFor(base + count, 300_000);
  const deliveredMs = Date.now() - t0;
  proc.kill('SIGTERM');
  await Promise.race([exit, sleep(15_000)]);
  return { accepted: count / (acceptedMs / 1000), delivered: count / (deliveredMs / 1000) };
}

try {
  const sinkPort = await freePort();
  const sink = new Sink({ bin: SINK_BIN, port: sinkPort, name: 'sink' });
  await sink.start();
  say(`# DKIM signing cost ${new Date().toISOString()}; node ${process.version}; smtp-source 50 sessions, many messages per session; ${REPS} reps of ~${SECONDS} s, variants alternated`);
  for (const size of [2048, 51200]) {
    const res = {};
    for (let r = 0; r < REPS; r++) {
      for (const v of Object.keys(KEYS)) (res[v] ??= []).push(await runOne(v, size, sinkPort, sink));
    }
    const base = median(res.none.map((x) => x.accepted));
    say(`\n## ${size / 1024} KB\n| signing | accepted msg/s (median) | delivered msg/s | accepted vs none |\n|---|---|---|---|`);
    for (const v of Object.keys(KEYS)) {
      const a = median(res[v].map((x) => x.accepted));
      const d = median(res[v].map((x) => x.delivered));
      say(`| ${v} | ${a.toFixed(0)} (${res[v].map((x) => x.accepted.toFixed(0)).join(', ')}) | ${d.toFixed(0)} | ${(100 * (a / base - 1)).toFixed(0)}% |`);
    }
  }
  await sink.stop();
} finally {
  if (out) writeFileSync(out, lines.join('\n') + '\n');
  rmSync(tmp, { recursive: true, force: true });
}
