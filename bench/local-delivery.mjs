#!/usr/bin/env node
// Local delivery rates (issue 10, "Figures for the note"): messages in over SMTP, delivered to
// mailboxes, end to end (until every file exists in the Maildirs), in one run on one machine:
//   postline-lmtp     Postline -> LMTP (local.routes, TCP) -> Dovecot -> Maildir
//   postfix-lmtp      Postfix  -> LMTP (transport_maps lmtp:inet:...) -> the same Dovecot
//   postline-maildir  Postline -> its maildir transport (when this build has one: probed with one
//                     message; otherwise the row says so)
//
//   node bench/local-delivery.mjs [--count 2000] [--size 2048] [--sessions 10] [--users 10]
//                                 [--min-seconds 5] [--reps 3] [--out bench/results/FILE.md]
//
// Both MTAs at their defaults except what the bench needs (printed with the results): Postline's
// connectionsPerDestination 10, Postfix's lmtp_destination_concurrency_limit 20 (its default
// destination concurrency). All servers run side by side; each gets a warm-up (count/10
// messages), which sets its run size (`--count`, raised so that a run lasts at least
// --min-seconds at the warm-up's rate), then --reps measured runs, the servers alternated rep by
// rep (the order reversed every other rep), so that a busy machine weighs on all of them alike.
// The load: --sessions SMTP sessions from 127.0.0.1 sending one message after another (MAIL,
// RCPT, DATA pipelined), message i to u{i % users}@local.test. Needs root (the private Postfix),
// Dovecot (dovecot-core, dovecot-lmtpd) and `npx tsc -p .` first (the Dovecot helper is the
// tests' own, dist/test/helpers/dovecot.js). Every process and temp dir is removed on exit.
import { spawn } from 'node:child_process';
import { chmodSync, closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startDovecot } from '../dist/test/helpers/dovecot.js';
import { freePort, greets, sleep } from './lib/net.mjs';
import { PostfixServer } from './lib/postfix.mjs';
import { cpuSnapshot, cpuDelta } from './lib/proc.mjs';
import { BenchSmtpClient } from './lib/smtp-client.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const opt = (name, dflt) => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1] : dflt; };
const COUNT = Number(opt('count', 2000));
const SIZE = Number(opt('size', 2048));
const SESSIONS = Number(opt('sessions', 10));
const USERS = Number(opt('users', 10));
const MIN_SECONDS = Number(opt('min-seconds', 5));
const REPS = Number(opt('reps', 3));
const OUT = opt('out', '');
const DOMAIN = 'local.test';
const lines = [];
const say = (s = '') => { console.log(s); lines.push(s); };

if (process.getuid?.() !== 0) { console.error('run as root (the private Postfix instance needs it)'); process.exit(2); }
const tmp = mkdtempSync(join(tmpdir(), 'pl-localbench-'));
chmodSync(tmp, 0o755); // Postfix's daemons (user postfix) must reach their queue and data dirs
const stoppers = [];
let cleaned = false;
const cleanup = async () => {
  if (cleaned) return;
  cleaned = true;
  for (const s of stoppers.reverse()) await s().catch(() => {});
  rmSync(tmp, { recursive: true, force: true });
};
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => { void cleanup().then(() => process.exit(130)); });
process.on('uncaughtException', (err) => { console.error(err); void cleanup().then(() => process.exit(1)); });
process.on('unhandledRejection', (err) => { console.error(err); void cleanup().then(() => process.exit(1)); });

const users = Array.from({ length: USERS }, (_, k) => `u${k}`);
const dc = await startDovecot({ users: users.map((name) => ({ name })) });
stoppers.push(() => dc.stop());
const maildirRoot = join(tmp, 'maildir');

/** Files delivered so far: Dovecot's Maildirs, or the maildir transport's (`where`). */
function delivered(where) {
  let n = 0;
  for (const u of users) {
    const d = where === 'dovecot' ? join(dc.maildir(u), 'new') : join(maildirRoot, u, 'new');
    try { n += readdirSync(d).length; } catch { /* not made yet */ }
  }
  return n;
}

const filler = 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-abcdefghijkl\r\n';
function message(i) {
  const head = `From: <bench@source.test>\r\nTo: <u${i % USERS}@${DOMAIN}>\r\nSubject: local delivery bench ${i}\r\nMessage-ID: <${i}.${Date.now()}@source.test>\r\nDate: Sun, 06 Dec 2026 12:00:00 +0000\r\n\r\n`;
  return Buffer.from(head + filler.repeat(Math.max(1, Math.round((SIZE - head.length) / filler.length))) + '.\r\n', 'latin1');
}

/** Sends messages [from, from + n) over SESSIONS sessions; resolves with the time all were accepted. */
async function load(port, from, n) {
  let next = from;
  let refused = 0;
  const session = async () => {
    const c = await BenchSmtpClient.connect({ port });
    await c.cmd('EHLO source.test');
    for (let i = next++; i < from + n; i = next++) {
      await c.write(`MAIL FROM:<bench@source.test>\r\nRCPT TO:<u${i % USERS}@${DOMAIN}>\r\nDATA\r\n`);
      const r = [await c.reply(), await c.reply(), await c.reply()];
      if (r[2].code !== 354) { refused++; await c.cmd('RSET'); continue; }
      await c.write(message(i));
      if ((await c.reply()).code !== 250) refused++;
    }
    await c.quit();
  };
  await Promise.all(Array.from({ length: SESSIONS }, session));
  if (refused) throw new Error(`${refused} messages refused`);
  return Date.now();
}

/** One timed run: n messages; end to end = until `n` more files are in the Maildirs. */
async function run(server, where, from, n) {
  const base = delivered(where);
  const cpu0 = cpuSnapshot(server.pid);
  const dcpu0 = cpuSnapshot(dc.pid);
  const t0 = Date.now();
  const tAcc = await load(server.port, from, n);
  const deadline = Date.now() + 120_000 + n * 20;
  let got = delivered(where) - base;
  while (got < n && Date.now() < deadline) { await sleep(50); got = delivered(where) - base; }
  const tEnd = Date.now();
  if (got < n) throw new Error(`${server.name}: ${got} of ${n} messages delivered in time`);
  const cpu = cpuDelta(cpu0, cpuSnapshot(server.pid));
  const dcpu = cpuDelta(dcpu0, cpuSnapshot(dc.pid));
  return { n, seconds: (tEnd - t0) / 1000, acceptSeconds: (tAcc - t0) / 1000, rate: n / ((tEnd - t0) / 1000), cpuMsPerMsg: cpu.ms / n, dovecotCpuMsPerMsg: dcpu.ms / n };
}

async function startPostline(name, route) {
  const port = await freePort();
  const dir = join(tmp, name);
  mkdirSync(dir);
  const conf = join(dir, 'postline.yaml');
  const yaml = `hostname: postline-bench.test\ndataDir: ${join(dir, 'var')}\nlisteners:\n  - { name: mx, address: 127.0.0.1, port: ${port}, role: mx }\nhttp: null\n`
    + `relay:\n  localDomains: [${DOMAIN}]\nlocal:\n  routes:\n    - { match: ${DOMAIN}, transport: ${route.transport}, target: '${route.target}' }\n`;
  writeFileSync(conf, yaml);
  const log = openSync(join(dir, 'postline.log'), 'a');
  const proc = spawn(process.execPath, [join(root, 'bin', 'postline.js'), 'serve', '-c', conf], { stdio: ['ignore', log, log] });
  closeSync(log);
  const exited = new Promise((r) => proc.once('exit', r));
  const stop = async () => { if (proc.exitCode === null && proc.signalCode === null) { proc.kill('SIGTERM'); await Promise.race([exited, sleep(15_000)]); } };
  stoppers.push(stop);
  for (let i = 0; i < 500 && !(await greets(port)); i++) await sleep(20);
  return { name, port, pid: proc.pid, config: yaml, stop };
}

const median = (xs) => { const v = [...xs].sort((a, b) => a - b); return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2; };
say(`local delivery: ${SIZE} B messages, ${SESSIONS} sessions in, ${USERS} mailboxes, end to end until every file is in its Maildir; ${REPS} reps, servers alternated (node ${process.version}, ${cpus().length} cores, load at start ${loadavg().map((x) => x.toFixed(2)).join(' ')})`);

// The servers, all running side by side (idle while another is measured).
const servers = [];
{
  const pl = await startPostline('postline-lmtp', { transport: 'lmtp', target: dc.tcpTarget });
  servers.push({ ...pl, label: 'Postline → LMTP → Dovecot', where: 'dovecot' });
  const port = await freePort();
  const pf = new PostfixServer({ dir: join(tmp, 'postfix'), port, sinkPort: 9, transport: [{ domain: DOMAIN, nexthop: `lmtp:inet:${dc.tcpTarget}` }] });
  stoppers.push(() => pf.stop());
  await pf.start();
  for (let i = 0; i < 500 && !(await greets(port)); i++) await sleep(20);
  servers.push({
    name: 'postfix-lmtp', label: `Postfix ${pf.version()} → LMTP → Dovecot`, where: 'dovecot', port, pid: pf.rootPid, postfix: true,
    config: pf.deviations().map((d) => `${d.key} = ${d.value}   # ${d.reason}`).join('\n'),
  });
  // The hook for the maildir transport: measured when this build delivers a probe message with it.
  const md = await startPostline('postline-maildir', { transport: 'maildir', target: join(maildirRoot, '{local}') });
  await load(md.port, 9_000_000, 1);
  let ok = false;
  for (let i = 0; i < 50 && !ok; i++) { await sleep(100); ok = delivered('maildir') > 0; }
  if (ok) servers.push({ ...md, label: 'Postline → Maildir', where: 'maildir' });
  else { say('  postline-maildir  not measured: this build has no maildir agent (the probe message was not delivered within 5 s)'); await md.stop(); }
}

let block = 0;
const nextBlock = () => ++block * 10_000_000; // message numbers of each run stay distinct
for (const sv of servers) {
  const warm = await run(sv, sv.where, nextBlock(), Math.max(SESSIONS * 2, Math.round(COUNT / 10)));
  sv.count = Math.max(COUNT, Math.ceil(warm.rate * MIN_SECONDS * 1.2));
  sv.runs = [];
  say(`  ${sv.name.padEnd(17)} warm-up ${warm.rate.toFixed(0)} msg/s -> ${sv.count} messages per measured run`);
}
for (let rep = 0; rep < REPS; rep++) {
  for (const sv of rep % 2 ? [...servers].reverse() : servers) {
    const load0 = loadavg()[0];
    const before = dc.connections();
    const r = await run(sv, sv.where, nextBlock(), sv.count);
    r.sessions = sv.where === 'dovecot' ? dc.connections() - before : null;
    r.load = load0;
    sv.runs.push(r);
    say(`  rep ${rep + 1} ${sv.name.padEnd(17)} ${r.n} msgs: accepted after ${r.acceptSeconds.toFixed(2)} s, in the Maildirs after ${r.seconds.toFixed(2)} s = ${r.rate.toFixed(0)} msg/s (load ${load0.toFixed(1)}, new LMTP sessions ${r.sessions ?? '-'})`);
  }
}
const dcVersion = readFileSync(join(dc.dir, 'dovecot.log'), 'utf8').match(/Dovecot v([\d.]+)/)?.[1] ?? '?';
const configs = Object.fromEntries(servers.map((sv) => [sv.name, sv.config]));
await cleanup();

const pf = servers.find((sv) => sv.postfix);
say('');
say(`| path | msgs/run | delivered msg/s, median (min-max) | vs Postfix LMTP (median of per-rep ratios) | accept msg/s | server CPU ms/msg | Dovecot CPU ms/msg | new LMTP sessions/run |`);
say(`|---|---:|---:|---:|---:|---:|---:|---:|`);
for (const sv of servers) {
  const rates = sv.runs.map((r) => r.rate);
  const ratio = median(sv.runs.map((r, i) => r.rate / pf.runs[i].rate));
  const f = (k, d = 2) => median(sv.runs.map((r) => r[k])).toFixed(d);
  say(`| ${sv.label} | ${sv.count} | ${median(rates).toFixed(0)} (${Math.min(...rates).toFixed(0)}-${Math.max(...rates).toFixed(0)}) | ${ratio.toFixed(2)} | ${median(sv.runs.map((r) => r.n / r.acceptSeconds)).toFixed(0)} | ${f('cpuMsPerMsg')} | ${f('dovecotCpuMsPerMsg')} | ${sv.where === 'dovecot' ? f('sessions', 0) : '-'} |`);
}
if (!servers.some((sv) => sv.where === 'maildir')) say('| Postline → Maildir | - | not measured: no maildir agent in this build | - | - | - | - | - |');
say('');
say(`Dovecot ${dcVersion}, one private instance for all rows (its own dovecot.conf: LMTP on 127.0.0.1, Maildir, mail_save_crlf, no quota, no SSL). Load average (1 min) at the start of the measured runs: ${servers.flatMap((sv) => sv.runs.map((r) => r.load)).map((x) => x.toFixed(1)).join(', ')}.`);
if (OUT) {
  const cmd = `node bench/local-delivery.mjs ${args.join(' ')}`.trim();
  // Temp dirs and free ports differ every run: named, not printed as this machine's paths.
  const cfg = Object.entries(configs).map(([k, v]) => `### ${k}\n\n\`\`\`\n${v.trim().split(tmp).join('$TMP')}\n\`\`\``).join('\n\n');
  writeFileSync(OUT, `# Local delivery: Postline and Postfix to Dovecot over LMTP\n\nCommand (from the project folder, as root, after \`npx tsc -p .\`): \`${cmd}\`\n\n${lines.join('\n')}\n\n## Configurations\n\n$TMP is the bench's temp dir.\n\n${cfg}\n`);
  console.log(`written: ${relative(process.cwd(), OUT)}`);
}
process.exit(0);
