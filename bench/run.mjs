#!/usr/bin/env node
// Postline vs Postfix, side by side in one run (issue 4).
//
//   node bench/run.mjs [quick|full] [--reps N] [--points 2k:50:many,50k:10:one] [--scale F]
//                      [--out DIR] [--no-memtests] [--only postline]
//
// Needs root (the private Postfix instance) and Postfix's smtp-source/smtp-sink. Everything
// listens on and connects to 127.0.0.1 only; every process started here is stopped and the temp
// dir removed on exit, error or signal.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, existsSync, readFileSync, chmodSync, readdirSync, statSync } from 'node:fs';
import { tmpdir, cpus, totalmem, release, hostname } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import net from 'node:net';
import { PostfixServer, ensurePostfix, postfixInstallHint } from './lib/postfix.mjs';
import { PostlineServer } from './lib/postline.mjs';
import { Sink } from './lib/sink.mjs';
import { cpuSnapshot, cpuDelta, startMemSampler, MiB } from './lib/proc.mjs';
import { idleConnections, bigMessage } from './lib/memtests.mjs';
import { renderMarkdown, summarize } from './lib/report.mjs';
import { PROFILES, pointKey, parsePoints } from './lib/profiles.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..');
const SMTP_SOURCE = '/usr/sbin/smtp-source';
const SMTP_SINK = '/usr/sbin/smtp-sink';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const t00 = Date.now();
const log = (...a) => console.log(`[${((Date.now() - t00) / 1000).toFixed(1).padStart(6)}s]`, ...a);

// ---------- arguments
const argv = process.argv.slice(2);
const opt = { profile: 'full', reps: null, points: null, scale: 1, out: join(here, 'results'), memtests: true, only: null };
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  if (a === 'quick' || a === 'full') opt.profile = a;
  else if (a === '--reps') opt.reps = Number(argv[++i]);
  else if (a === '--points') opt.points = argv[++i];
  else if (a === '--scale') opt.scale = Number(argv[++i]);
  else if (a === '--out') opt.out = resolve(argv[++i]);
  else if (a === '--no-memtests') opt.memtests = false;
  else if (a === '--only') opt.only = argv[++i];
  else if (a === '-h' || a === '--help') {
    console.log(readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n').slice(1, 6).map((l) => l.replace(/^\/\/ ?/, '')).join('\n'));
    process.exit(0);
  } else { console.error(`unknown argument ${a}`); process.exit(2); }
}
const profile = PROFILES[opt.profile];
const reps = opt.reps ?? profile.reps;
let points = profile.points.map((p) => ({ ...p, count: Math.max(10, Math.round(p.count * opt.scale)) }));
if (opt.points) {
  const wanted = parsePoints(opt.points);
  points = points.filter((p) => wanted.has(pointKey(p)));
  if (!points.length) { console.error(`no point of the ${opt.profile} profile matches ${opt.points}`); process.exit(2); }
}

// ---------- preconditions
if (process.platform !== 'linux') { console.error('the bench reads /proc: Linux only'); process.exit(2); }
if (!ensurePostfix(log)) { console.error(postfixInstallHint()); process.exit(2); }
if (opt.only !== 'postline' && process.getuid?.() !== 0) {
  console.error('The private Postfix peer needs root (postfix -c DIR start). Run as root, or pass --only postline.');
  process.exit(2);
}
ensureBuilt();

/** Builds Postline (tsc) when dist/ is missing or older than a file under src/. */
function ensureBuilt() {
  const newest = (dir) => {
    let t = 0;
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
    }
    return t;
  };
  const built = join(root, 'dist', 'src', 'main.js');
  if (existsSync(built) && statSync(built).mtimeMs >= newest(join(root, 'src'))) return;
  log('dist/ is missing or older than src/: building (tsc -p tsconfig.json)');
  try {
    execFileSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(root, 'tsconfig.json')], { stdio: 'inherit', cwd: root });
  } catch {
    console.error('build failed; fix it or run the bench on a tree that compiles');
    process.exit(2);
  }
}

// ---------- cleanup, whatever happens
const tmp = mkdtempSync(join(process.env.BENCH_TMPDIR || tmpdir(), 'postline-bench-'));
chmodSync(tmp, 0o755); // Postfix's daemons (user postfix) must reach their queue and data dirs
const owned = []; // servers and sinks, stopped in reverse order
const children = new Set(); // smtp-source processes in flight
let cleaned = false;
async function cleanup() {
  if (cleaned) return;
  cleaned = true;
  for (const c of children) c.kill('SIGKILL');
  for (const o of owned.slice().reverse()) { try { await o.stop(); } catch (e) { console.error('cleanup:', e.message); } }
  rmSync(tmp, { recursive: true, force: true });
}
function cleanupSync() {
  if (cleaned) return;
  cleaned = true;
  for (const c of children) { try { c.kill('SIGKILL'); } catch { /* gone */ } }
  for (const o of owned.slice().reverse()) { try { (o.stopSync ?? (() => o.proc?.kill('SIGKILL')))(); } catch { /* ignore */ } }
  try { rmSync(tmp, { recursive: true, force: true }); } catch { /* ignore */ }
}
process.on('exit', cleanupSync);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => { log(`${sig}: cleaning up`); cleanup().finally(() => process.exit(130)); });

async function freePort() {
  return new Promise((res, rej) => {
    const s = net.createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => res(p)); });
  });
}

// ---------- one measured run of one server at one point
async function runOnce(server, sink, point, tag) {
  const { size, sessions, reuse, count } = point;
  const args = ['-s', String(sessions), '-m', String(count), '-l', String(size), ...(reuse ? ['-d'] : []),
    '-M', 'source.test', '-f', 'bench@source.test', '-t', 'rcpt@sink.test', `127.0.0.1:${server.port}`];
  const command = [SMTP_SOURCE, ...args].join(' ');
  const base = sink.count;
  const cpu0 = cpuSnapshot(server.rootPid);
  const sys0 = systemCpu();
  const mem = startMemSampler(server.rootPid, 100);
  const probe = new Worker(new URL('./lib/probe-worker.mjs', import.meta.url), {
    workerData: { port: server.port, size, intervalMs: point.probeIntervalMs, reuse, maxSamples: 5000, maxMs: 600000 },
  });
  const probeDone = new Promise((res) => {
    probe.once('message', res);
    probe.once('error', (e) => res({ latenciesMs: [], accepted: 0, errors: [String(e)] }));
  });
  const t0 = Date.now();
  const src = spawn(SMTP_SOURCE, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  children.add(src);
  src.once('exit', () => children.delete(src));
  let srcErr = '';
  src.stderr.on('data', (d) => { srcErr = (srcErr + d).slice(-2000); });
  const limitMs = 120000 + count * 60;
  const code = await new Promise((res) => {
    const t = setTimeout(() => { src.kill('SIGKILL'); res('timeout'); }, limitMs);
    src.once('exit', (c) => { clearTimeout(t); res(c); });
  });
  const tAcc = Date.now();
  probe.postMessage('stop');
  const pr = await Promise.race([probeDone, sleep(90000).then(() => ({ latenciesMs: [], accepted: 0, errors: ['probe did not stop'] }))]);
  await probe.terminate();
  let error = code === 0 ? null : `smtp-source ${code === 'timeout' ? 'timed out' : 'exited ' + code}: ${srcErr.trim().split('\n').slice(-2).join(' / ')}`;
  const messages = count + pr.accepted;
  let tE2e = null;
  if (!error) {
    tE2e = await sink.waitFor(base + messages, 180000);
    if (tE2e === null) error = `the sink got ${sink.count - base} of ${messages} messages within 180 s`;
  } else {
    await settleSink(sink);
  }
  await sleep(300); // let the server finish its post-delivery bookkeeping before the CPU snapshot
  const cpu = cpuDelta(cpu0, cpuSnapshot(server.rootPid));
  const sys1 = systemCpu();
  const sysTotal = sys1.total - sys0.total;
  // Share of the machine busy during the run, and how much of it was neither this server nor
  // the bench's own load: other people's work on the same machine shows up here.
  const machineBusyPct = sysTotal ? 100 * (sys1.busy - sys0.busy) / sysTotal : null;
  const m = await mem.stop();
  const lat = pr.latenciesMs.slice().sort((a, b) => a - b);
  const q = (p) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] : null);
  const r = {
    server: server.name, tag, command, error,
    messages, sourceMessages: count, probeMessages: pr.accepted, probeErrors: pr.errors.slice(0, 3),
    acceptSeconds: (tAcc - t0) / 1000, e2eSeconds: tE2e ? (tE2e - t0) / 1000 : null,
    acceptedPerSec: error ? null : messages / ((tAcc - t0) / 1000),
    e2ePerSec: tE2e ? messages / ((tE2e - t0) / 1000) : null,
    latencySamples: lat.length, p50Ms: q(0.5), p99Ms: q(0.99), maxMs: lat.length ? lat[lat.length - 1] : null,
    cpuMs: cpu.ms, cpuMsPerMsg: cpu.ms / messages, cpuByProcess: cpu.byName,
    machineBusyPct, loadavg: readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' '),
    peakRssBytes: m.peak.rss, peakPssBytes: m.peak.pss, peakProcesses: m.peak.processes,
  };
  log(`  ${tag.padEnd(9)} ${server.name.padEnd(8)} acc ${fmt(r.acceptedPerSec, 0).padStart(6)}/s  e2e ${fmt(r.e2ePerSec, 0).padStart(6)}/s  ` +
    `p50 ${fmt(r.p50Ms, 1)} p99 ${fmt(r.p99Ms, 1)} ms  cpu ${fmt(r.cpuMsPerMsg, 2)} ms/msg  rss ${fmt(r.peakRssBytes / MiB, 0)} MB  busy ${fmt(machineBusyPct, 0)}%  load ${r.loadavg}${error ? '  ERROR ' + error : ''}`);
  return r;
}

/** After a failed run: wait until the sink count stops moving (bounded). */
async function settleSink(sink) {
  let last = -1;
  for (let i = 0; i < 60 && sink.count !== last; i++) { last = sink.count; await sleep(2000); }
}

/** Whole-machine CPU jiffies from /proc/stat: total and busy (not idle, not iowait). */
function systemCpu() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  return { total, busy: total - f[3] - f[4] };
}

function fmt(v, d) { return v === null || v === undefined || Number.isNaN(v) ? '-' : Number(v).toFixed(d); }

function machineFacts(postfix) {
  const sh = (cmd, args) => { try { return execFileSync(cmd, args, { encoding: 'utf8', cwd: root }).trim(); } catch { return null; } };
  const c = cpus();
  return {
    hostname: hostname(),
    cpuModel: c[0]?.model ?? 'unknown', cores: c.length,
    memoryBytes: totalmem(), kernel: release(), node: process.version,
    postfix: postfix?.version() ?? sh('/usr/sbin/postconf', ['-dh', 'mail_version']),
    tmpFilesystem: sh('df', ['--output=fstype,source', tmp])?.split('\n').slice(-1)[0]?.trim() ?? null,
    openFilesLimit: sh('/bin/sh', ['-c', 'ulimit -n']),
    loadavgAtStart: readFileSync('/proc/loadavg', 'utf8').trim(),
    gitCommit: sh('git', ['rev-parse', 'HEAD']), gitDirty: (sh('git', ['status', '--porcelain', '--', 'src']) ?? '') !== '',
    sharedMachine: 'load generator (smtp-source + probe), server under test and smtp-sink all share these cores',
  };
}

// ---------- main
async function main() {
  log(`profile ${opt.profile}: ${points.length} points x ${reps} reps, temp dir ${tmp}`);
  const sizeLimit = 200 * MiB;
  const [plPort, pfPort, plSinkPort, pfSinkPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const sinks = { postline: new Sink({ bin: SMTP_SINK, port: plSinkPort, name: 'postline' }), postfix: new Sink({ bin: SMTP_SINK, port: pfSinkPort, name: 'postfix' }) };
  const servers = {
    postline: new PostlineServer({ root, dir: join(tmp, 'postline'), port: plPort, sinkPort: plSinkPort, messageSizeLimit: sizeLimit }),
    postfix: new PostfixServer({ dir: join(tmp, 'postfix'), port: pfPort, sinkPort: pfSinkPort, messageSizeLimit: sizeLimit }),
  };
  const order = opt.only ? [opt.only] : ['postline', 'postfix'];
  for (const name of order) {
    owned.push(sinks[name]); await sinks[name].start();
    owned.push(servers[name]); await servers[name].start();
    log(`${name} up on 127.0.0.1:${servers[name].port} (pid ${servers[name].rootPid}), sink on ${sinks[name].port}`);
  }
  const facts = machineFacts(order.includes('postfix') ? servers.postfix : null);

  // warm-up, not recorded: process pools, JIT, SQLite pages, outbound connections
  for (const name of order) {
    await runOnce(servers[name], sinks[name], { size: 2048, sessions: 10, reuse: true, count: profile.warmup, probeIntervalMs: 50 }, 'warmup');
  }

  const runs = [];
  for (const p of points) {
    log(`point ${pointKey(p)}: ${p.count} messages of ${p.size} bytes, ${p.sessions} sessions, ${p.reuse ? 'many per connection' : 'one per connection'}`);
    for (let rep = 0; rep < reps; rep++) {
      for (const name of order) { // A B A B ...
        const r = await runOnce(servers[name], sinks[name], p, `rep ${rep + 1}`);
        runs.push({ point: pointKey(p), rep, ...r });
      }
    }
  }

  const memtests = {};
  if (opt.memtests) {
    // Fresh Postline for the memory tests, so earlier load does not set the baseline.
    for (const name of order) {
      const s = servers[name];
      if (name === 'postline') { await s.stop(); await s.start(); log(`postline restarted for the memory tests (pid ${s.rootPid})`); }
      // A 1 MB message first (not recorded) so first-use allocations are not charged to the big
      // one; then 10 MB and the big one: growth must not follow the size.
      await bigMessage(s, sinks[name], { bytes: MiB });
      memtests[name] = {};
      for (const [label, bytes] of [['big10', 10 * MiB], ['big', profile.bigMessageBytes]]) {
        log(`${name}: one ${bytes / MiB} MB message through`);
        const big = await bigMessage(s, sinks[name], { bytes });
        log(`  accepted in ${big.acceptMs} ms, at the sink in ${big.e2eMs} ms; RSS ${fmt(big.rssBefore / MiB, 1)} -> peak ${fmt(big.rssPeak / MiB, 1)} MB${big.error ? '  ERROR ' + big.error : ''}`);
        memtests[name][label] = big;
      }
    }
    if (order.includes('postline')) {
      log(`postline: ${profile.idleConnections} idle connections`);
      const idle = await idleConnections(servers.postline, { count: profile.idleConnections, log });
      log(`  RSS ${fmt(idle.rssBefore / MiB, 1)} MB -> ${fmt(idle.rssHeld / MiB, 1)} MB with ${idle.greeted} idle connections`);
      memtests.postline.idle = idle;
    }
  }

  for (const name of order.slice().reverse()) { await servers[name].stop(); await sinks[name].stop(); }

  const commands = {
    bench: `npm run ${opt.profile === 'quick' ? 'bench:quick' : 'bench'}  (node bench/run.mjs ${argv.join(' ')})`.replace(/\s+\)/, ')'),
    postline: servers.postline.describe(), postfix: servers.postfix.describe(),
    sink: Object.fromEntries(order.map((n) => [n, sinks[n].command])),
    probe: 'bench/lib/probe-worker.mjs: one session beside smtp-source, same size and mode, paced by probeIntervalMs; latency = final ".\\r\\n" written -> 250 read',
  };
  const result = {
    date: new Date().toISOString(), profile: opt.profile, reps, durationSeconds: (Date.now() - t00) / 1000,
    machine: facts, commands, points, runs, summary: summarize(points, runs, order), memtests,
  };
  mkdirSync(opt.out, { recursive: true });
  const stamp = result.date.slice(0, 10);
  const base = join(opt.out, `${stamp}-${opt.profile}`);
  writeFileSync(`${base}.json`, JSON.stringify(result, null, 2) + '\n');
  writeFileSync(`${base}.md`, renderMarkdown(result));
  log(`wrote ${base}.md and ${base}.json`);
}

try {
  await main();
  await cleanup();
} catch (e) {
  console.error('bench failed:', e?.stack ?? e);
  await cleanup();
  process.exit(1);
}
