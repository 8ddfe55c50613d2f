// The HTTP API section (issue 7, "Figures for the note"): POST /api/v1/messages driven by
// autocannon (programmatic, in the bench process) against the bench's running Postline, beside the
// SMTP 2k:50:many figure of the same run.
//
// Each run is a fixed number of requests (autocannon `amount`), sized from a warm-up's rate to last
// at least --min-seconds, so the count the sink must reach is exact: every 2xx is one queued
// message (one recipient), delivered through the relayhost to the server's smtp-sink.
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { cpuSnapshot, cpuDelta, startMemSampler } from './proc.mjs';
import { readCounts, countsDelta } from './slowsync.mjs';
import { fmt } from './load.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Creates an API key with the send scope through the CLI (`postline apikey create NAME --scope send
 * --config FILE`); its last stdout line is the key. @returns { key, command } @throws on CLI failure.
 */
export function createApiKey(server, name = 'bench') {
  const out = server.cli(['apikey', 'create', name, '--scope', 'send']);
  const key = out.trim().split('\n').pop().trim();
  if (!key || /\s/.test(key)) throw new Error(`apikey create printed no key: ${out.slice(0, 200)}`);
  return { key, command: `node bin/postline.js apikey create ${name} --scope send --config ${server.configFile}` };
}

/** The JSON body: one recipient at the sink's domain and `size` bytes of text (76-character lines). */
export function apiBody(size) {
  const line = 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-abcdefghijkl\r\n';
  const text = line.repeat(Math.max(1, Math.round(size / line.length)));
  return JSON.stringify({ from: 'bench@source.test', to: ['rcpt@sink.test'], subject: 'postline bench api', text });
}

function autocannonOf(root) {
  return createRequire(join(root, 'package.json'))('autocannon');
}

/**
 * One autocannon run of `amount` requests over `connections` connections; waits until the sink has
 * every accepted message. @returns one run record: rates in msg/s, times in s, latency ms (autocannon's
 * histogram), CPU ms, fsync-family calls.
 */
export async function apiRunOnce(ctx, server, sink, { key, size, connections, amount, tag }) {
  const autocannon = autocannonOf(server.root);
  const url = `http://127.0.0.1:${server.httpPort}/api/v1/messages`;
  const body = apiBody(size);
  const base = sink.count;
  const cdir = ctx.counterDir(server);
  const sync0 = cdir ? readCounts(cdir) : null;
  const cpu0 = cpuSnapshot(server.rootPid);
  const mem = startMemSampler(server.rootPid, 200);
  const statuses = {};
  const client0 = process.cpuUsage(); // the bench process: autocannon (and the sink reader, idle meanwhile)
  const t0 = Date.now();
  const inst = autocannon({
    url, method: 'POST', connections, amount, timeout: 60, body,
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
  });
  // autocannon reports 'done' only at its next sample tick (every second), so a run would last a
  // whole number of seconds: the accept time is when the last answer arrived.
  let tLast = t0;
  inst.on('response', (_client, statusCode) => { statuses[statusCode] = (statuses[statusCode] ?? 0) + 1; tLast = Date.now(); });
  const res = await new Promise((resolve, reject) => {
    const t = setTimeout(() => { inst.stop(); }, 180000 + amount * 60);
    inst.once('done', (r) => { clearTimeout(t); resolve(r); });
    inst.once('error', (e) => { clearTimeout(t); reject(e); });
  });
  const tAcc = tLast;
  const client = process.cpuUsage(client0);
  const ok = res['2xx'];
  let error = null;
  if (res.errors || res.timeouts) error = `autocannon: ${res.errors} errors, ${res.timeouts} timeouts`;
  const tE2e = await sink.waitFor(base + ok, 300000);
  if (tE2e === null) error = [error, `the sink got ${sink.count - base} of ${ok} messages within 300 s`].filter(Boolean).join('; ');
  await sleep(300);
  const cpu = cpuDelta(cpu0, cpuSnapshot(server.rootPid));
  const sync = cdir ? countsDelta(sync0, readCounts(cdir)) : null;
  const m = await mem.stop();
  const acceptSeconds = (tAcc - t0) / 1000;
  const r = {
    server: server.name, tag, error, requests: res.requests.total, amount, connections, bodyBytes: Buffer.byteLength(body), textBytes: size,
    ok, non2xx: res.non2xx, statuses, errors: res.errors, timeouts: res.timeouts,
    acceptSeconds, e2eSeconds: tE2e ? (tE2e - t0) / 1000 : null,
    acceptedPerSec: ok / acceptSeconds, e2ePerSec: tE2e ? ok / ((tE2e - t0) / 1000) : null,
    p50Ms: res.latency.p50, p99Ms: res.latency.p99, maxMs: res.latency.max, meanMs: res.latency.average,
    cpuMs: cpu.ms, cpuMsPerMsg: ok ? cpu.ms / ok : null, cpuByProcess: cpu.byName,
    clientCpuMsPerMsg: ok ? (client.user + client.system) / 1000 / ok : null,
    syncCalls: sync?.total ?? null, fsyncsPerMsg: sync && ok ? sync.total / ok : null, syncByCall: sync?.byCall,
    peakRssBytes: m.peak.rss, loadavg: readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' '),
  };
  ctx.log(`  ${tag.padEnd(10)} api      ${String(ok).padStart(6)} msgs ${fmt(acceptSeconds, 1).padStart(5)} s  acc ${fmt(r.acceptedPerSec, 0).padStart(6)}/s  e2e ${fmt(r.e2ePerSec, 0).padStart(6)}/s  ` +
    `non2xx ${r.non2xx}  p50 ${fmt(r.p50Ms, 1)} p99 ${fmt(r.p99Ms, 1)} ms  fsync/msg ${fmt(r.fsyncsPerMsg, 2)}  cpu ${fmt(r.cpuMsPerMsg, 2)} ms/msg${error ? '  ERROR ' + error : ''}`);
  return r;
}

/**
 * Warm-up (not recorded) until a run lasts ~warmupSeconds (at most 4 runs), then `reps` runs of at
 * least minSeconds each (a run that ended early is rescaled and run again once).
 * @returns { warmup: [records], runs: [records], discarded: [records] }
 */
export async function apiSection(ctx, server, sink, { key, size = 2048, connections = 50, warmupSeconds, minSeconds, reps }) {
  const warmup = [];
  let n = connections * 10;
  for (let i = 0; i < 4; i++) {
    const r = await apiRunOnce(ctx, server, sink, { key, size, connections, amount: n, tag: 'warmup' });
    warmup.push(r);
    if (r.error || !r.ok) break;
    if (r.acceptSeconds >= warmupSeconds * 0.8) break;
    n = Math.ceil(n * Math.min(10, (1.2 * warmupSeconds) / Math.max(r.acceptSeconds, 0.05)));
  }
  const last = warmup[warmup.length - 1];
  if (last.error || !last.ok) return { warmup, runs: [], discarded: [], error: `warm-up failed: ${last.error ?? 'no 2xx'} (statuses ${JSON.stringify(last.statuses)})` };
  let amount = Math.max(connections * 2, Math.ceil(last.acceptedPerSec * minSeconds * 1.15));
  const runs = [], discarded = [];
  for (let rep = 0; rep < reps; rep++) {
    let r = await apiRunOnce(ctx, server, sink, { key, size, connections, amount, tag: `rep ${rep + 1}` });
    if (!r.error && r.acceptSeconds < minSeconds) {
      discarded.push({ rep, reason: `lasted ${fmt(r.acceptSeconds, 2)} s < ${minSeconds} s`, ...r });
      amount = Math.ceil(amount * (minSeconds / Math.max(r.acceptSeconds, 0.05)) * 1.15);
      r = await apiRunOnce(ctx, server, sink, { key, size, connections, amount, tag: `rep ${rep + 1}b` });
    }
    runs.push({ rep, ...r });
  }
  return { warmup, runs, discarded };
}
