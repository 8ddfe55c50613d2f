#!/usr/bin/env node
// API beside SMTP on one Postline, alternated run by run (issue 7, "Figures for the note"): an SMTP
// run at 2k:50:many (smtp-source) then an API run (autocannon, the bench's 2 KB body, 50
// connections), N pairs, each run sized to last about --seconds. run.mjs measures all its SMTP
// runs first and the API runs after them; on a machine shared with other work the load moves in
// between, so here the ratio is taken per pair (both runs of a pair seconds apart) and the median
// of those is reported. Same measuring code as run.mjs (lib/load.mjs runOnce, lib/api.mjs
// apiRunOnce); Postline at the bench's defaults, no fsync shim.
// Usage: node bench/api-interleave.mjs [--pairs 5] [--seconds 5] [--out FILE]
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PostlineServer } from './lib/postline.mjs';
import { Sink } from './lib/sink.mjs';
import { freePort } from './lib/net.mjs';
import { runOnce, calibrateRate, countFor, fmt } from './lib/load.mjs';
import { apiRunOnce, createApiKey } from './lib/api.mjs';
import { parsePoints } from './lib/profiles.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const opt = (name, dflt) => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1] : dflt; };
const PAIRS = Number(opt('pairs', 5));
const SECONDS = Number(opt('seconds', 5));
const out = opt('out', '');
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length ? (s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : NaN; };
const lines = [];
const say = (s) => { console.log(s); lines.push(s); };

const tmp = mkdtempSync(join(tmpdir(), 'pl-api-interleave-'));
const ctx = { tmp, children: new Set(), log: () => {}, counterDir: () => null };
const sink = new Sink({ bin: '/usr/sbin/smtp-sink', port: await freePort(), name: 'postline' });
const server = new PostlineServer({ root, dir: join(tmp, 'postline'), port: await freePort(), sinkPort: sink.port, httpPort: await freePort() });
const cleanup = () => { server.stopSync(); sink.proc?.kill('SIGKILL'); rmSync(tmp, { recursive: true, force: true }); };
process.on('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));

try {
  await sink.start();
  await server.start();
  const { key, command: keyCommand } = createApiKey(server, 'interleave');
  const point = parsePoints('2k:50:many')[0];
  const cal = await calibrateRate(ctx, server, sink, point, 1.5);
  if (!cal.rate) throw new Error('the SMTP warm-up failed');
  let smtpCount = countFor(cal.rate, SECONDS, point);
  let amount = 1000;
  for (let i = 0; i < 3; i++) { // API warm-up, sized up to about SECONDS
    const w = await apiRunOnce(ctx, server, sink, { key, size: 2048, connections: 50, amount, tag: 'warmup' });
    if (w.error) throw new Error(`API warm-up: ${w.error}`);
    amount = Math.max(100, Math.ceil(w.acceptedPerSec * SECONDS * 1.15));
  }
  say(`# API beside SMTP, alternated (${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC)`);
  say('');
  say(`\`node bench/api-interleave.mjs --pairs ${PAIRS} --seconds ${SECONDS}\`: one Postline, SMTP 2k:50:many (smtp-source -s 50 -l 2048 -d) and POST /api/v1/messages (autocannon, 50 connections, 2 KB text) alternated; ratio per pair. Key: \`${keyCommand.replace(/ --config .*/, ' --config <bench>')}\`.`);
  say('');
  say('| pair | SMTP msg/s | SMTP s | SMTP CPU ms/msg | API msg/s | API s | API CPU ms/msg | API/SMTP | load |');
  say('|--:|--:|--:|--:|--:|--:|--:|--:|---|');
  const rows = [];
  for (let i = 0; i < PAIRS; i++) {
    const s = await runOnce(ctx, server, sink, { ...point, count: smtpCount }, `smtp ${i + 1}`);
    const a = await apiRunOnce(ctx, server, sink, { key, size: 2048, connections: 50, amount, tag: `api ${i + 1}` });
    if (s.error || a.error) { say(`| ${i + 1} | error: ${s.error ?? a.error} | | | | | | | |`); continue; }
    const r = { smtp: s.acceptedPerSec, api: a.acceptedPerSec, ratio: a.acceptedPerSec / s.acceptedPerSec, smtpCpu: s.cpuMsPerMsg, apiCpu: a.cpuMsPerMsg };
    rows.push(r);
    say(`| ${i + 1} | ${fmt(r.smtp, 0)} | ${fmt(s.acceptSeconds, 1)} | ${fmt(r.smtpCpu, 2)} | ${fmt(r.api, 0)} | ${fmt(a.acceptSeconds, 1)} | ${fmt(r.apiCpu, 2)} | ${fmt(r.ratio, 2)} | ${a.loadavg} |`);
    smtpCount = countFor(s.acceptedPerSec, SECONDS, point);
    amount = Math.max(100, Math.ceil(a.acceptedPerSec * SECONDS * 1.15));
  }
  const m = (k) => median(rows.map((r) => r[k]));
  say(`| **median** | **${fmt(m('smtp'), 0)}** | | ${fmt(m('smtpCpu'), 2)} | **${fmt(m('api'), 0)}** | | ${fmt(m('apiCpu'), 2)} | **${fmt(m('ratio'), 2)}** | |`);
  say('');
  say(`CPU ms/msg: the server's user + system time until the sink had every message. Machine: ${readFileSync('/proc/cpuinfo', 'utf8').match(/model name\s*:\s*(.*)/)?.[1] ?? '?'}, Node ${process.version}.`);
  if (out) writeFileSync(out, lines.join('\n') + '\n');
  await server.stop();
  await sink.stop();
} catch (e) {
  console.error('api-interleave failed:', e?.stack ?? e);
  process.exitCode = 1;
}
