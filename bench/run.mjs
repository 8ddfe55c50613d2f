#!/usr/bin/env node
// Postline vs Postfix (and the Node ceiling), side by side in one run (issues 4 and 16).
//
//   node bench/run.mjs [quick|full] [--disk normal|slow|slow-serial|both|all] [--min-seconds 5]
//        [--warmup-seconds 1.5] [--reps N] [--points 2k:50:many,50k:10:one] [--slow-delay-us 2000]
//        [--sustain] [--sustain-only] [--sustain-seconds 40] [--sustain-points ...] [--sustain-disk normal]
//        [--calibrate] [--calibrate-only] [--no-grid] [--no-memtests] [--no-ceiling]
//        [--idle-connections N] [--big-mb N] [--label NAME] [--out DIR] [--only postline]
//        [--no-api] [--webhooks|--no-webhooks] [--webhook-outage-seconds N] [--webhook-rate 200] [--webhook-batch N]
//
// --api (on by default): POST /api/v1/messages with autocannon beside the SMTP 2k:50:many rate.
// --webhooks (on in full, opt-in in quick): webhook throughput and catch-up after an outage.
//
// Needs root (the private Postfix instance), cc, strace (for --calibrate) and Postfix's
// smtp-source/smtp-sink. Everything listens on and connects to 127.0.0.1 only; every process
// started here is stopped and the temp dir removed on exit, error or signal.
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, readFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import net from 'node:net';
import { PostfixServer, ensurePostfix, postfixInstallHint } from './lib/postfix.mjs';
import { PostlineServer } from './lib/postline.mjs';
import { CeilingServer } from './lib/ceiling.mjs';
import { Sink } from './lib/sink.mjs';
import { MiB } from './lib/proc.mjs';
import { idleConnections, bigMessage } from './lib/memtests.mjs';
import { renderMarkdown, summarize, sustainMetrics, median as summarizeMedian, spreadOf } from './lib/report.mjs';
import { createApiKey, apiSection } from './lib/api.mjs';
import { webhookSection } from './lib/webhooks.mjs';
import { PROFILES, SUSTAIN_POINTS, pointKey, parsePoints } from './lib/profiles.mjs';
import { SlowSync } from './lib/slowsync.mjs';
import { runOnce, calibrateRate, countFor, fmt } from './lib/load.mjs';
import { machineFacts, fsyncLatency, ddBandwidth, shimSelfTest, diskOf } from './lib/machine.mjs';
import { calibrateServer } from './lib/calibrate.mjs';
import { ensureBuilt } from './lib/build.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..');
const SMTP_SINK = '/usr/sbin/smtp-sink';
const t00 = Date.now();
const log = (...a) => console.log(`[${((Date.now() - t00) / 1000).toFixed(1).padStart(6)}s]`, ...a);

// ---------- arguments
const DISKS = { normal: { delayUs: 0, mode: 'parallel' }, slow: { mode: 'parallel' }, 'slow-serial': { mode: 'serialized' } };
const DISK_ALIASES = { both: ['normal', 'slow'], all: ['normal', 'slow', 'slow-serial'] };
const argv = process.argv.slice(2);
const opt = {
  profile: 'full', reps: null, points: null, out: join(here, 'results'), only: null, label: null,
  disks: ['normal'], slowDelayUs: 2000, minSeconds: 5, warmupSeconds: 1.5,
  grid: true, memtests: true, ceiling: true, calibrate: false,
  sustain: false, sustainSeconds: 40, sustainPoints: null, sustainDisk: 'normal', sustainReps: 1,
  idleConnections: null, bigMb: null,
  api: true, webhooks: null, webhookOutageSeconds: null, webhookRate: 200, webhookBatch: null,
};
const parseDisks = (s) => s.split(',').flatMap((d) => DISK_ALIASES[d] ?? [d]).map((d) => {
  if (!DISKS[d]) { console.error(`unknown disk profile ${d} (normal, slow, slow-serial, both, all)`); process.exit(2); }
  return d;
});
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  const num = () => { const v = Number(argv[++i]); if (!Number.isFinite(v)) { console.error(`${a} wants a number`); process.exit(2); } return v; };
  if (a === 'quick' || a === 'full') opt.profile = a;
  else if (a === '--reps') opt.reps = num();
  else if (a === '--points') opt.points = argv[++i];
  else if (a === '--out') opt.out = resolve(argv[++i]);
  else if (a === '--label') opt.label = argv[++i];
  else if (a === '--disk') opt.disks = [...new Set(parseDisks(argv[++i]))];
  else if (a === '--slow-delay-us') opt.slowDelayUs = num();
  else if (a === '--min-seconds') opt.minSeconds = num();
  else if (a === '--warmup-seconds') opt.warmupSeconds = num();
  else if (a === '--sustain') opt.sustain = true;
  else if (a === '--sustain-only') { opt.sustain = true; opt.grid = false; opt.memtests = false; }
  else if (a === '--sustain-seconds') opt.sustainSeconds = num();
  else if (a === '--sustain-points') opt.sustainPoints = argv[++i];
  else if (a === '--sustain-disk') opt.sustainDisk = parseDisks(argv[++i])[0];
  else if (a === '--sustain-reps') opt.sustainReps = num();
  else if (a === '--calibrate') opt.calibrate = true;
  else if (a === '--calibrate-only') { opt.calibrate = true; opt.grid = false; opt.memtests = false; }
  else if (a === '--no-grid') opt.grid = false;
  else if (a === '--no-memtests') opt.memtests = false;
  else if (a === '--no-ceiling') opt.ceiling = false;
  else if (a === '--idle-connections') opt.idleConnections = num();
  else if (a === '--big-mb') opt.bigMb = num();
  else if (a === '--only') opt.only = argv[++i];
  else if (a === '--api') opt.api = true;
  else if (a === '--no-api') opt.api = false;
  else if (a === '--webhooks') opt.webhooks = true;
  else if (a === '--no-webhooks') opt.webhooks = false;
  else if (a === '--webhook-outage-seconds') opt.webhookOutageSeconds = num();
  else if (a === '--webhook-rate') opt.webhookRate = num();
  else if (a === '--webhook-batch') opt.webhookBatch = num();
  else if (a === '-h' || a === '--help') {
    console.log(readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n').slice(1, 16).map((l) => l.replace(/^\/\/ ?/, '')).join('\n'));
    process.exit(0);
  } else { console.error(`unknown argument ${a}`); process.exit(2); }
}
const profile = PROFILES[opt.profile];
const reps = opt.reps ?? profile.reps;
let points = profile.points;
try { if (opt.points) points = parsePoints(opt.points); } catch (e) { console.error(e.message); process.exit(2); }
let sustainPoints = SUSTAIN_POINTS;
try { if (opt.sustainPoints) sustainPoints = parsePoints(opt.sustainPoints); } catch (e) { console.error(e.message); process.exit(2); }
const idleCount = opt.idleConnections ?? profile.idleConnections;
opt.webhooks ??= opt.profile === 'full';
opt.webhookOutageSeconds ??= opt.profile === 'full' ? 600 : 60;
if (opt.only && opt.only !== 'postline') { opt.api = false; opt.webhooks = false; } // both drive Postline
const bigBytes = opt.bigMb ? opt.bigMb * MiB : profile.bigMessageBytes;

// ---------- preconditions
if (process.platform !== 'linux') { console.error('the bench reads /proc: Linux only'); process.exit(2); }
if (!ensurePostfix(log)) { console.error(postfixInstallHint()); process.exit(2); }
if (opt.only !== 'postline' && process.getuid?.() !== 0) {
  console.error('The private Postfix peer needs root (postfix -c DIR start). Run as root, or pass --only postline.');
  process.exit(2);
}
ensureBuilt(root, log);

// ---------- cleanup, whatever happens
const tmp = mkdtempSync(join(process.env.BENCH_TMPDIR || tmpdir(), 'postline-bench-'));
chmodSync(tmp, 0o755); // Postfix's daemons (user postfix) must reach their queue and data dirs
const owned = []; // servers and sinks, stopped in reverse order
const children = new Set(); // smtp-source and strace processes in flight
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

/** Rough wall time of the grid: warm-ups + reps x (min run + drain) per server, point and disk. */
function estimateGridSeconds(nServersByDisk) {
  const perRun = opt.minSeconds * 1.25 + 1.5;
  return points.length * nServersByDisk.reduce((a, n) => a + n * (2 * opt.warmupSeconds + 1 + reps * perRun), 0);
}

// ---------- main
async function main() {
  const shim = new SlowSync({ src: join(here, 'shim', 'slowsync.c'), dir: join(tmp, 'slowsync') });
  shim.build();
  const counterDirs = { postline: join(tmp, 'slowsync', 'postline'), postfix: join(tmp, 'slowsync', 'postfix') };
  const ctx = { tmp, children, log, counterDir: (s) => counterDirs[s.name] ?? null };
  const [plPort, pfPort, ceilPort, plSinkPort, pfSinkPort, plHttpPort] = [await freePort(), await freePort(), await freePort(), await freePort(), await freePort(), await freePort()];
  const sinks = { postline: new Sink({ bin: SMTP_SINK, port: plSinkPort, name: 'postline' }), postfix: new Sink({ bin: SMTP_SINK, port: pfSinkPort, name: 'postfix' }), ceiling: null };
  const servers = {
    postline: new PostlineServer({ root, dir: join(tmp, 'postline'), port: plPort, sinkPort: plSinkPort, httpPort: plHttpPort, env: shim.env(counterDirs.postline) }),
    postfix: new PostfixServer({ dir: join(tmp, 'postfix'), port: pfPort, sinkPort: pfSinkPort, env: shim.env(counterDirs.postfix) }),
    ceiling: new CeilingServer({ port: ceilPort }),
  };
  const order = opt.only ? [opt.only] : ['postline', 'postfix'];
  const withCeiling = opt.ceiling && opt.grid;
  for (const name of [...order, ...(withCeiling ? ['ceiling'] : [])]) {
    if (sinks[name]) { owned.push(sinks[name]); await sinks[name].start(); }
    owned.push(servers[name]); await servers[name].start();
    log(`${name} up on 127.0.0.1:${servers[name].port} (pid ${servers[name].rootPid})${sinks[name] ? `, sink on ${sinks[name].port}` : ''}`);
  }
  const disk = diskOf(tmp);
  const facts = machineFacts({ root, tmp, postfixVersion: order.includes('postfix') ? servers.postfix.version() : null });
  facts.disk = disk;
  log('machine: fsync latency, dd, shim self-test');
  facts.fsyncLatency = fsyncLatency(tmp, 2);
  facts.dd = ddBandwidth(tmp, 128);
  facts.shimSelfTest = await shimSelfTest(shim, join(tmp, 'slowsync'), { delayUs: opt.slowDelayUs });
  log(`  fsync after 4 KB: median ${fmt(facts.fsyncLatency.medianMs, 3)} ms, p99 ${fmt(facts.fsyncLatency.p99Ms, 3)} ms; dd oflag=dsync ${fmt(facts.dd.dsync.mbPerSec, 0)} MB/s, conv=fdatasync ${fmt(facts.dd.fdatasync.mbPerSec, 0)} MB/s`);
  const describe = Object.fromEntries(Object.entries(servers).map(([k, s]) => [k, s.describe()]));
  const sections = {};

  if (opt.calibrate) {
    const t = Date.now();
    log('calibration: shim counts vs strace -f -c vs /proc/diskstats (untimed)');
    shim.set(0, 'parallel');
    const cal = [];
    for (const p of [{ ...parsePoints('2k:10:many')[0], count: 1000 }, { ...parsePoints('1M:1:many')[0], count: 30 }]) {
      for (const name of order) {
        const c = await calibrateServer(ctx, servers[name], sinks[name], p, { disk });
        log(`  ${name.padEnd(8)} ${c.messages} msgs: shim ${c.shim.total}, strace ${c.strace.total}, disk flushes ${c.disk?.flushes ?? '-'}${c.strace.error ? ' strace: ' + c.strace.error : ''}`);
        cal.push({ ...c, command: c.point, point: pointKey(p) });
      }
    }
    sections.calibration = { runs: cal, seconds: (Date.now() - t) / 1000 };
  }

  const runs = [];
  const discarded = [];
  if (opt.grid) {
    const nByDisk = opt.disks.map((d, i) => order.length + (withCeiling && i === 0 ? 1 : 0));
    log(`grid: ${points.length} points x ${reps} reps x disk ${opt.disks.join(', ')}; runs of >= ${opt.minSeconds} s; estimated ${fmt(estimateGridSeconds(nByDisk) / 60, 0)} min`);
    const t = Date.now();
    for (const [di, d] of opt.disks.entries()) {
      const delayUs = d === 'normal' ? 0 : opt.slowDelayUs;
      shim.set(delayUs, DISKS[d].mode);
      const names = [...order, ...(withCeiling && di === 0 ? ['ceiling'] : [])];
      for (const p of points) {
        const key = pointKey(p);
        log(`[${d}] point ${key}: ${p.size} bytes, ${p.sessions} sessions, ${p.reuse ? 'many per connection' : 'one per connection'}`);
        const counts = {};
        for (const name of names) {
          const cal = await calibrateRate(ctx, servers[name], sinks[name], p, opt.warmupSeconds);
          counts[name] = cal.rate ? countFor(cal.rate, opt.minSeconds, p) : null;
        }
        for (let rep = 0; rep < reps; rep++) {
          for (const name of names) { // A B C A B C ...
            if (!counts[name]) continue;
            let r = await runOnce(ctx, servers[name], sinks[name], { ...p, count: counts[name] }, `rep ${rep + 1}`);
            if (!r.error && r.acceptSeconds < opt.minSeconds) { // faster than the warm-up: rescale, run again (once)
              discarded.push({ disk: d, point: key, rep, reason: `lasted ${fmt(r.acceptSeconds, 2)} s < ${opt.minSeconds} s`, ...r });
              counts[name] = Math.ceil(counts[name] * (opt.minSeconds / Math.max(r.acceptSeconds, 0.05)) * 1.15);
              r = await runOnce(ctx, servers[name], sinks[name], { ...p, count: counts[name] }, `rep ${rep + 1}b`);
            }
            runs.push({ disk: d, delayUs, point: key, rep, ...r });
          }
        }
      }
    }
    shim.set(0, 'parallel');
    sections.grid = { seconds: (Date.now() - t) / 1000 };
  }

  const sustain = [];
  if (opt.sustain) {
    const t = Date.now();
    const d = opt.sustainDisk;
    shim.set(d === 'normal' ? 0 : opt.slowDelayUs, DISKS[d].mode);
    log(`sustain: ${sustainPoints.map(pointKey).join(', ')} for ~${opt.sustainSeconds} s each, disk ${d}`);
    for (const p of sustainPoints) {
      const counts = {};
      for (const name of order) {
        const cal = await calibrateRate(ctx, servers[name], sinks[name], p, opt.warmupSeconds);
        counts[name] = cal.rate ? countFor(cal.rate, opt.sustainSeconds, p) : null;
      }
      for (let rep = 0; rep < opt.sustainReps; rep++) {
        for (const name of order) {
          if (!counts[name]) continue;
          let r = await runOnce(ctx, servers[name], sinks[name], { ...p, count: counts[name] }, `sustain ${rep + 1}`, { sampleMs: 1000 });
          if (!r.error && r.acceptSeconds < 0.9 * opt.sustainSeconds) { // faster than its warm-up: rescale and run again (once)
            discarded.push({ disk: d, point: pointKey(p), rep, reason: `sustain run lasted ${fmt(r.acceptSeconds, 1)} s < ${opt.sustainSeconds} s`, ...r, samples: undefined });
            counts[name] = Math.ceil(counts[name] * (opt.sustainSeconds / Math.max(r.acceptSeconds, 0.05)) * 1.1);
            r = await runOnce(ctx, servers[name], sinks[name], { ...p, count: counts[name] }, `sustain ${rep + 1}b`, { sampleMs: 1000 });
          }
          const m = sustainMetrics(r);
          log(`    delivered ${fmt(m.deliveredPerSec, 0)}/s during load (${fmt(m.deliveredPct, 0)}% of accepted), steady ${fmt(m.steadyDeliveredPerSec, 0)}/s, queue slope ${fmt(m.queueSlopePerSec, 1)} msg/s, max depth ${m.maxDepth}, drain ${fmt(m.drainSeconds, 1)} s`);
          sustain.push({ disk: d, point: pointKey(p), rep, ...r, sustain: m });
        }
      }
    }
    shim.set(0, 'parallel');
    sections.sustain = { seconds: (Date.now() - t) / 1000, disk: d };
  }

  let api = null;
  if (opt.api && order.includes('postline')) {
    const t = Date.now();
    shim.set(0, 'parallel');
    const s = servers.postline;
    log(`api: POST /api/v1/messages on 127.0.0.1:${s.httpPort}, 2 KB text, 50 connections (autocannon), runs of >= ${opt.minSeconds} s`);
    let keyCommand = null, sec;
    try { // a failure here is reported, not fatal: the grid before it still gets its report
      const k = createApiKey(s, 'bench');
      keyCommand = k.command;
      sec = await apiSection(ctx, s, sinks.postline, { key: k.key, size: 2048, connections: 50, warmupSeconds: opt.warmupSeconds, minSeconds: opt.minSeconds, reps });
    } catch (e) {
      log(`api: FAILED ${e.message}`);
      sec = { warmup: [], runs: [], discarded: [], error: String(e.message).slice(0, 500) };
    }
    const refKey = '2k:50:many';
    let smtp = runs.filter((r) => r.point === refKey && r.disk === 'normal' && !r.error);
    let smtpSource = 'grid';
    if (!smtp.some((r) => r.server === 'postline')) { // same run, always: measure it here
      smtpSource = 'api section';
      const p = parsePoints(refKey)[0];
      log(`api: the grid did not run ${refKey} on the normal disk; measuring Postline over SMTP there now`);
      const cal = await calibrateRate(ctx, s, sinks.postline, p, opt.warmupSeconds);
      smtp = [];
      if (cal.rate) {
        for (let rep = 0; rep < reps; rep++) smtp.push({ disk: 'normal', point: refKey, rep, ...(await runOnce(ctx, s, sinks.postline, { ...p, count: countFor(cal.rate, opt.minSeconds, p) }, `smtp ${rep + 1}`)) });
      }
    }
    const med = (xs) => summarizeMedian(xs);
    const plSmtp = smtp.filter((r) => r.server === 'postline' && !r.error);
    const pfSmtp = smtp.filter((r) => r.server === 'postfix' && !r.error);
    const ok = sec.runs.filter((r) => !r.error);
    const m = (rs, k) => med(rs.map((r) => r[k]));
    api = {
      keyCommand, url: `http://127.0.0.1:${s.httpPort}/api/v1/messages`,
      command: `autocannon (programmatic, bench/lib/api.mjs): POST ${'http://127.0.0.1:' + s.httpPort}/api/v1/messages, 50 connections, amount = warm-up rate x ${opt.minSeconds} s x 1.15, body ${sec.runs[0]?.bodyBytes ?? '?'} bytes JSON {from, to: [rcpt@sink.test], subject, text: 2 KB}, Authorization: Bearer KEY`,
      ...sec, error: sec.error ?? (ok.length ? null : 'no API run succeeded'),
      summary: {
        runs: sec.runs.length, errors: sec.runs.length - ok.length,
        acceptedPerSec: m(ok, 'acceptedPerSec'), acceptedSpread: spreadOf(ok.map((r) => r.acceptedPerSec)), e2ePerSec: m(ok, 'e2ePerSec'),
        non2xx: sec.runs.reduce((a, r) => a + (r.non2xx ?? 0), 0), p50Ms: m(ok, 'p50Ms'), p99Ms: m(ok, 'p99Ms'),
        cpuMsPerMsg: m(ok, 'cpuMsPerMsg'), clientCpuMsPerMsg: m(ok, 'clientCpuMsPerMsg'), fsyncsPerMsg: m(ok, 'fsyncsPerMsg'), acceptSeconds: m(ok, 'acceptSeconds'),
        smtpPoint: refKey, smtpSource, smtpRuns: plSmtp.length,
        smtpAcceptedPerSec: m(plSmtp, 'acceptedPerSec'), smtpE2ePerSec: m(plSmtp, 'e2ePerSec'), smtpCpuMsPerMsg: m(plSmtp, 'cpuMsPerMsg'), smtpFsyncsPerMsg: m(plSmtp, 'fsyncsPerMsg'),
        smtpP50Ms: m(plSmtp, 'p50Ms'), smtpP99Ms: m(plSmtp, 'p99Ms'),
        postfixAcceptedPerSec: m(pfSmtp, 'acceptedPerSec'),
      },
      smtpRuns: smtpSource === 'api section' ? smtp : undefined,
    };
    const S = api.summary;
    S.ratio = S.acceptedPerSec != null && S.smtpAcceptedPerSec ? S.acceptedPerSec / S.smtpAcceptedPerSec : null;
    S.targetMet = S.ratio != null ? S.ratio >= 0.7 : null;
    log(`api: ${fmt(S.acceptedPerSec, 0)} msg/s accepted vs SMTP ${refKey} ${fmt(S.smtpAcceptedPerSec, 0)} msg/s: ratio ${fmt(S.ratio, 2)} (target >= 0.70)`);
    sections.api = { seconds: (Date.now() - t) / 1000 };
  }

  let webhooks = null;
  if (opt.webhooks && order.includes('postline')) {
    const t = Date.now();
    shim.set(0, 'parallel');
    log(`webhooks: throughput (2k:10:many over SMTP, >= ${opt.minSeconds} s) and catch-up after a ${opt.webhookOutageSeconds} s outage at ~${opt.webhookRate} msg/s`);
    try {
      webhooks = await webhookSection(ctx, servers.postline, sinks.postline, {
        outageSeconds: opt.webhookOutageSeconds, minSeconds: opt.minSeconds, warmupSeconds: opt.warmupSeconds,
        paceRate: opt.webhookRate, batch: opt.webhookBatch, owned,
      });
    } catch (e) { // reported, not fatal; Postline goes back to the plain configuration
      log(`webhooks: FAILED ${e.message}`);
      webhooks = { error: String(e.message).slice(0, 500), receiver: '-', config: '', deviation: null };
      servers.postline.webhooks = [];
      await servers.postline.restart().catch((err) => log(`postline restart failed: ${err.message}`));
    }
    sections.webhooks = { seconds: (Date.now() - t) / 1000 };
  }

  const memtests = {};
  if (opt.memtests) {
    const t = Date.now();
    shim.set(0, 'parallel');
    for (const name of order) {
      const s = servers[name];
      // Fresh servers with the memory-test limits, so earlier load does not set the baseline.
      await s.restart('memtests');
      log(`${name} restarted for the memory tests (pid ${s.rootPid})`);
      // A 1 MB message first (not recorded) so first-use allocations are not charged to the big
      // one; then 10 MB and the big one: growth must not follow the size.
      await bigMessage(s, sinks[name], { bytes: MiB });
      memtests[name] = {};
      for (const [label, bytes] of [['big10', Math.min(10 * MiB, bigBytes)], ['big', bigBytes]]) {
        log(`${name}: one ${bytes / MiB} MB message through`);
        const big = await bigMessage(s, sinks[name], { bytes });
        log(`  accepted in ${big.acceptMs} ms, at the sink in ${big.e2eMs} ms; RSS ${fmt(big.rssBefore / MiB, 1)} -> peak ${fmt(big.rssPeak / MiB, 1)} MB${big.error ? '  ERROR ' + big.error : ''}`);
        memtests[name][label] = big;
      }
    }
    if (order.includes('postline')) {
      log(`postline: ${idleCount} idle connections`);
      const idle = await idleConnections(servers.postline, { count: idleCount, log });
      log(`  RSS ${fmt(idle.rssBefore / MiB, 1)} MB -> ${fmt(idle.rssHeld / MiB, 1)} MB with ${idle.greeted} idle connections`);
      memtests.postline.idle = idle;
    }
    sections.memtests = { seconds: (Date.now() - t) / 1000 };
  }

  for (const name of [...order, 'ceiling'].reverse()) { await servers[name].stop(); await sinks[name]?.stop(); }

  const commands = {
    bench: `node bench/run.mjs ${argv.join(' ')}`.trim(),
    postline: describe.postline, postfix: describe.postfix, ceiling: describe.ceiling,
    sink: Object.fromEntries(order.map((n) => [n, sinks[n].command])),
    shim: shim.command,
    probe: 'bench/lib/probe-worker.mjs: one session beside smtp-source, same size and mode, paced by probeIntervalMs; latency = final ".\\r\\n" written -> 250 read',
  };
  const result = {
    date: new Date().toISOString(), profile: opt.profile, label: opt.label, reps, durationSeconds: (Date.now() - t00) / 1000,
    options: { ...opt, out: undefined }, machine: facts, commands, points, sustainPoints: opt.sustain ? sustainPoints : [],
    sections, runs, discardedRuns: discarded, summary: summarize(points, runs, opt.disks, order), sustain, api, webhooks, memtests,
  };
  mkdirSync(opt.out, { recursive: true });
  const stamp = result.date.slice(0, 10);
  const what = [opt.grid ? `${opt.profile}-${opt.disks.join('+')}` : null, opt.sustain ? 'sustain' : null, opt.calibrate ? 'calibrate' : null,
    !opt.grid && api ? 'api' : null, !opt.grid && webhooks ? 'webhooks' : null].filter(Boolean).join('-') || 'memtests';
  const base = join(opt.out, `${stamp}-${what}${opt.label ? '-' + opt.label : ''}`);
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
