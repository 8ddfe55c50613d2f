// One measured run of one server at one point (smtp-source + the latency probe), and the sizing
// of runs so that each lasts at least a minimum time at the rate a warm-up run measured.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { cpuSnapshot, cpuDelta, startMemSampler, MiB } from './proc.mjs';
import { readCounts, countsDelta } from './slowsync.mjs';

export const SMTP_SOURCE = '/usr/sbin/smtp-source';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const fmt = (v, d) => (v === null || v === undefined || Number.isNaN(v) ? '-' : Number(v).toFixed(d));

/** Whole-machine CPU jiffies from /proc/stat: total and busy (not idle, not iowait). */
function systemCpu() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  return { total, busy: total - f[3] - f[4] };
}

/** After a failed run: wait until the sink count stops moving (bounded). */
async function settleSink(sink) {
  let last = -1;
  for (let i = 0; i < 60 && sink.count !== last; i++) { last = sink.count; await sleep(2000); }
}

/** Least-squares slope of ys over xs (units of y per unit of x); null with fewer than 2 points. */
export function slope(xs, ys) {
  const n = xs.length;
  if (n < 2) return null;
  const mx = xs.reduce((a, b) => a + b, 0) / n, my = ys.reduce((a, b) => a + b, 0) / n;
  let sxy = 0, sxx = 0;
  for (let i = 0; i < n; i++) { sxy += (xs[i] - mx) * (ys[i] - my); sxx += (xs[i] - mx) ** 2; }
  return sxx ? sxy / sxx : null;
}

/**
 * Runs smtp-source once against `server` (and the probe beside it) and waits until the sink has
 * every message (no sink: the ceiling, accepted = end to end).
 * ctx: { children: Set, log, counterDir(server) -> dir|null }. opts.sampleMs: sample the sink
 * count and the server's queue depth every sampleMs (the sustain section).
 * @returns one run record (rates in msg/s, times in s, CPU in ms, bytes, fsync-family calls).
 */
export async function runOnce(ctx, server, sink, point, tag, opts = {}) {
  const { size, sessions, reuse, count } = point;
  const args = ['-s', String(sessions), '-m', String(count), '-l', String(size), ...(reuse ? ['-d'] : []),
    '-M', 'source.test', '-f', 'bench@source.test', '-t', 'rcpt@sink.test', `127.0.0.1:${server.port}`];
  const command = [SMTP_SOURCE, ...args].join(' ');
  const base = sink?.count ?? 0;
  const cdir = ctx.counterDir(server);
  const sync0 = cdir ? readCounts(cdir) : null;
  const cpu0 = cpuSnapshot(server.rootPid);
  const sys0 = systemCpu();
  const mem = startMemSampler(server.rootPid, 100);
  const probe = new Worker(new URL('./probe-worker.mjs', import.meta.url), {
    workerData: { port: server.port, size, intervalMs: point.probeIntervalMs, reuse, maxSamples: 5000, maxMs: 600000 },
  });
  const probeDone = new Promise((res) => {
    probe.once('message', res);
    probe.once('error', (e) => res({ latenciesMs: [], accepted: 0, errors: [String(e)] }));
  });
  const t0 = Date.now();
  const samples = [];
  let sampler = null;
  if (opts.sampleMs) {
    const take = () => samples.push({ t: (Date.now() - t0) / 1000, delivered: (sink?.count ?? 0) - base, depth: server.queueDepth() });
    take();
    sampler = setInterval(take, opts.sampleMs);
  }
  const src = spawn(SMTP_SOURCE, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  ctx.children.add(src);
  src.once('exit', () => ctx.children.delete(src));
  let srcErr = '';
  src.stderr.on('data', (d) => { srcErr = (srcErr + d).slice(-2000); });
  const limitMs = 180000 + count * 60;
  const code = await new Promise((res) => {
    const t = setTimeout(() => { src.kill('SIGKILL'); res('timeout'); }, limitMs);
    src.once('exit', (c) => { clearTimeout(t); res(c); });
  });
  const tAcc = Date.now();
  if (sampler) samples.push({ t: (tAcc - t0) / 1000, delivered: (sink?.count ?? 0) - base, depth: server.queueDepth(), loadEnd: true });
  probe.postMessage('stop');
  const pr = await Promise.race([probeDone, sleep(90000).then(() => ({ latenciesMs: [], accepted: 0, errors: ['probe did not stop'] }))]);
  await probe.terminate();
  let error = code === 0 ? null : `smtp-source ${code === 'timeout' ? 'timed out' : 'exited ' + code}: ${srcErr.trim().split('\n').slice(-2).join(' / ')}`;
  const messages = count + pr.accepted;
  let tE2e = null;
  if (!sink) tE2e = tAcc;
  else if (!error) {
    tE2e = await sink.waitFor(base + messages, 300000);
    if (tE2e === null) error = `the sink got ${sink.count - base} of ${messages} messages within 300 s`;
  } else {
    await settleSink(sink);
  }
  if (sampler) clearInterval(sampler);
  await sleep(300); // let the server finish its post-delivery bookkeeping before the snapshots
  const cpu = cpuDelta(cpu0, cpuSnapshot(server.rootPid));
  const sync = cdir ? countsDelta(sync0, readCounts(cdir)) : null;
  const sys1 = systemCpu();
  const sysTotal = sys1.total - sys0.total;
  const machineBusyPct = sysTotal ? 100 * (sys1.busy - sys0.busy) / sysTotal : null;
  const m = await mem.stop();
  const lat = pr.latenciesMs.slice().sort((a, b) => a - b);
  const q = (p) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] : null);
  const r = {
    server: server.name, tag, command, error,
    messages, sourceMessages: count, probeMessages: pr.accepted, probeErrors: pr.errors.slice(0, 3),
    acceptSeconds: (tAcc - t0) / 1000, e2eSeconds: tE2e ? (tE2e - t0) / 1000 : null,
    acceptedPerSec: error ? null : messages / ((tAcc - t0) / 1000),
    e2ePerSec: tE2e && !error ? messages / ((tE2e - t0) / 1000) : null,
    latencySamples: lat.length, p50Ms: q(0.5), p99Ms: q(0.99), maxMs: lat.length ? lat[lat.length - 1] : null,
    cpuMs: cpu.ms, cpuMsPerMsg: cpu.ms / messages, cpuByProcess: cpu.byName,
    syncCalls: sync?.total ?? null, fsyncsPerMsg: sync ? sync.total / messages : (server.name === 'ceiling' ? 0 : null),
    syncByCall: sync?.byCall, syncByProcess: sync?.byComm, syncSleptMs: sync?.sleptMs, syncRealMs: sync?.realMs,
    machineBusyPct, loadavg: readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' '),
    peakRssBytes: m.peak.rss, peakPssBytes: m.peak.pss, peakProcesses: m.peak.processes,
    ...(opts.sampleMs ? { samples } : {}),
  };
  ctx.log(`  ${tag.padEnd(10)} ${server.name.padEnd(8)} ${String(messages).padStart(6)} msgs ${fmt(r.acceptSeconds, 1).padStart(5)} s  acc ${fmt(r.acceptedPerSec, 0).padStart(6)}/s  e2e ${fmt(r.e2ePerSec, 0).padStart(6)}/s  ` +
    `fsync/msg ${fmt(r.fsyncsPerMsg, 2)}  cpu ${fmt(r.cpuMsPerMsg, 2)} ms/msg  rss ${fmt(r.peakRssBytes / MiB, 0)} MB  busy ${fmt(machineBusyPct, 0)}%${error ? '  ERROR ' + error : ''}`);
  return r;
}

/** A first guess of the message count for a warm-up of `seconds` (rates far below any server's). */
function guessCount(point, seconds) {
  const perSec = point.size >= 1024 * 1024 ? 15 : point.size >= 50 * 1024 ? 100 : 150;
  return Math.max(point.sessions * 2, Math.round(perSec * Math.min(point.sessions, 10) ** 0.5 * seconds));
}

/**
 * Warm-up and rate calibration of one server at one point: runs until a run lasts warmupSeconds
 * (at most 4 runs, each count scaled by the last measured rate). Not recorded in the grid.
 * @returns { rate (msg/s accepted), runs: [run records] }
 */
export async function calibrateRate(ctx, server, sink, point, warmupSeconds) {
  let n = guessCount(point, warmupSeconds);
  const runs = [];
  for (let i = 0; i < 4; i++) {
    const r = await runOnce(ctx, server, sink, { ...point, count: n }, 'warmup');
    runs.push(r);
    if (r.error) break;
    if (r.acceptSeconds >= warmupSeconds * 0.8) break;
    n = Math.ceil(n * Math.min(10, (1.2 * warmupSeconds) / Math.max(r.acceptSeconds, 0.05)));
  }
  const last = runs[runs.length - 1];
  return { rate: last.error ? null : last.messages / last.acceptSeconds, runs };
}

/** smtp-source -m for a run of at least `seconds` at `rate` (15% margin, the probe's share ignored). */
export function countFor(rate, seconds, point) {
  return Math.max(point.sessions * 2, Math.ceil(rate * seconds * 1.15));
}
