#!/usr/bin/env node
// Connection reuse over many destinations (issue 14, "Tests and figures"): messages per
// connection and delivered msg/s to smtp-sink for M messages (default 10,000 of 2 KB) spread
// round-robin over N destination domains (default 1, 10, 100), with connection reuse on and off,
// Postline against a private Debian-default Postfix relaying the same load.
//
//   node bench/destinations.mjs [--messages 10000] [--dests 1,10,100] [--reuse on,off]
//        [--sessions 20] [--size 2048] [--only postline|postfix] [--out FILE] [--keep]
//
// Destination d{i}.test is its own next hop [127.0.0.{i+2}]:SINKPORT, served by its own smtp-sink
// (smtp-sink listens on one address; one per loopback address keeps everything on loopback):
// Postline gets delivery.routes, Postfix a transport_maps texthash. Reuse off: Postline
// delivery.messagesPerConnection 1, Postfix smtp_connection_cache_on_demand = no. Every run gets a
// fresh server (fresh queue, fresh slow-start state); the servers alternate. Connections:
// Postline's postline_outbound_connections_opened_total (GET /metrics), Postfix's maillog delivery
// lines without conn_use=, and the sinks' own session counters for both.
// Needs root (the private Postfix) and Postfix's smtp-sink. Every process started here is
// stopped and the temp dir removed on exit, error or signal.
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, readFileSync, chmodSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, resolve, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFileSync } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import { PostfixServer, ensurePostfix, postfixInstallHint } from './lib/postfix.mjs';
import { PostlineServer } from './lib/postline.mjs';
import { Sink, totalCount, totalSessions, waitForTotal } from './lib/sink.mjs';
import { cpuSnapshot, cpuDelta } from './lib/proc.mjs';
import { freePort, greets, sleep } from './lib/net.mjs';
import { ensureBuilt } from './lib/build.mjs';
import { fmt } from './lib/load.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..');
const SMTP_SINK = ['/usr/sbin/smtp-sink', '/usr/bin/smtp-sink'].find((p) => existsSync(p)) ?? '/usr/sbin/smtp-sink';
const t00 = Date.now();
const log = (...a) => console.log(`[${((Date.now() - t00) / 1000).toFixed(1).padStart(6)}s]`, ...a);

// ---------- arguments
const argv = process.argv.slice(2);
const opt = { messages: 10000, dests: [1, 10, 100], reuse: ['on', 'off'], sessions: 20, size: 2048, only: null, out: null, keep: false };
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  const num = () => { const v = Number(argv[++i]); if (!Number.isInteger(v) || v < 1) { console.error(`${a} wants a positive integer`); process.exit(2); } return v; };
  if (a === '--messages') opt.messages = num();
  else if (a === '--dests') opt.dests = argv[++i].split(',').map(Number);
  else if (a === '--reuse') opt.reuse = argv[++i].split(',');
  else if (a === '--sessions') opt.sessions = num();
  else if (a === '--size') opt.size = num();
  else if (a === '--only') opt.only = argv[++i];
  else if (a === '--out') opt.out = resolve(argv[++i]);
  else if (a === '--keep') opt.keep = true;
  else if (a === '-h' || a === '--help') {
    console.log(readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n').slice(1, 18).map((l) => l.replace(/^\/\/ ?/, '')).join('\n'));
    process.exit(0);
  } else { console.error(`unknown argument ${a}`); process.exit(2); }
}
if (opt.dests.some((n) => !Number.isInteger(n) || n < 1 || n > 250)) { console.error('--dests: integers 1..250 (127.0.0.2 .. 127.0.0.251)'); process.exit(2); }
if (opt.reuse.some((r) => r !== 'on' && r !== 'off')) { console.error('--reuse: on, off or on,off'); process.exit(2); }
if (opt.only && !['postline', 'postfix'].includes(opt.only)) { console.error('--only postline|postfix'); process.exit(2); }
const serverNames = opt.only ? [opt.only] : ['postline', 'postfix'];

// ---------- preconditions
if (process.platform !== 'linux') { console.error('the bench reads /proc: Linux only'); process.exit(2); }
if (!ensurePostfix(log)) { console.error(postfixInstallHint()); process.exit(2); }
if (serverNames.includes('postfix') && process.getuid?.() !== 0) {
  console.error('The private Postfix peer needs root (postfix -c DIR start). Run as root, or pass --only postline.');
  process.exit(2);
}
ensureBuilt(root, log);

// ---------- cleanup, whatever happens (as bench/run.mjs)
const tmp = mkdtempSync(join(process.env.BENCH_TMPDIR || tmpdir(), 'postline-destbench-'));
chmodSync(tmp, 0o755); // Postfix's daemons (user postfix) must reach their queue and data dirs
const owned = new Set(); // servers and sinks; stopped newest first
const workers = new Set();
let cleaned = false;
async function cleanup() {
  if (cleaned) return;
  cleaned = true;
  for (const w of workers) await w.terminate().catch(() => {});
  for (const o of [...owned].reverse()) { try { await o.stop(); } catch (e) { console.error('cleanup:', e.message); } }
  if (!opt.keep) rmSync(tmp, { recursive: true, force: true });
}
function cleanupSync() {
  if (cleaned) return;
  cleaned = true;
  for (const o of [...owned].reverse()) { try { (o.stopSync ?? (() => o.proc?.kill('SIGKILL')))(); } catch { /* ignore */ } }
  if (!opt.keep) { try { rmSync(tmp, { recursive: true, force: true }); } catch { /* ignore */ } }
}
process.on('exit', cleanupSync);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => { log(`${sig}: cleaning up`); cleanup().finally(() => process.exit(130)); });

const hostOf = (i) => `127.0.0.${i + 2}`;
const domainOf = (i) => `d${i}.test`;
const loadavg = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

/** N smtp-sinks on 127.0.0.2 .. 127.0.0.{N+1}, all on one port (a fresh one when a bind fails). */
async function startSinks(n) {
  for (let attempt = 0; attempt < 4; attempt++) {
    const port = await freePort();
    const sinks = Array.from({ length: n }, (_, i) => new Sink({ bin: SMTP_SINK, host: hostOf(i), port, name: `${hostOf(i)}:${port}` }));
    for (const s of sinks) owned.add(s);
    const res = await Promise.allSettled(sinks.map((s) => s.start()));
    if (res.every((r) => r.status === 'fulfilled')) return { port, sinks };
    for (const s of sinks) { await s.stop(); owned.delete(s); }
    log(`  smtp-sink could not bind port ${port} on every address (${res.find((r) => r.status === 'rejected').reason.message.trim()}); another port`);
  }
  throw new Error('no port free on every destination address for the sinks');
}

/** A fresh server of `name` for N destinations at sinkPort, reuse on or off. */
async function makeServer(name, n, reuse, sinkPort, dir) {
  const port = await freePort();
  if (name === 'postline') {
    const routes = Array.from({ length: n }, (_, i) => ({ domain: domainOf(i), host: hostOf(i), port: sinkPort, tls: 'none' }));
    const delivery = reuse === 'off' ? [{ key: 'messagesPerConnection', value: 1, default: '100', reason: 'connection reuse off: one message per connection' }] : [];
    return new PostlineServer({ root, dir, port, sinkPort, httpPort: await freePort(), routes, delivery });
  }
  const transport = Array.from({ length: n }, (_, i) => ({ domain: domainOf(i), nexthop: `smtp:[${hostOf(i)}]:${sinkPort}` }));
  const main = reuse === 'off' ? [{ key: 'smtp_connection_cache_on_demand', value: 'no', default: 'yes', reason: 'connection reuse off (smtp_connection_cache_destinations stays empty, its default)' }] : [];
  return new PostfixServer({ dir, port, sinkPort, transport, main });
}

/** Runs the load generator (bench/lib/spread-load-worker.mjs) to completion. */
function runLoad(port, n) {
  const w = new Worker(new URL('./lib/spread-load-worker.mjs', import.meta.url), {
    workerData: { port, count: opt.messages, sessions: opt.sessions, domains: n, size: opt.size, timeoutMs: 600000 },
  });
  workers.add(w);
  return new Promise((res, rej) => {
    w.once('message', (m) => { workers.delete(w); w.terminate().finally(() => res(m)); });
    w.once('error', (e) => { workers.delete(w); rej(e); });
  });
}

/** Polls f() until it returns the same value twice 500 ms apart (at most maxMs); returns it. */
async function settled(f, maxMs) {
  const deadline = Date.now() + maxMs;
  let last = f();
  while (Date.now() < deadline) { await sleep(500); const v = f(); if (v === last) return v; last = v; }
  return last;
}

/** One measured run: a fresh server, the load, every message at the sinks, the connection counts. */
async function runOne(name, n, reuse, group) {
  const dir = join(tmp, `${name}-${n}-${reuse}`);
  const s = await makeServer(name, n, reuse, group.port, dir);
  owned.add(s);
  await s.start();
  for (let i = 0; i < 100 && !(await greets(s.port)); i++) await sleep(100);
  const describe = s.describe();
  const base = totalCount(group.sinks);
  const sess0 = totalSessions(group.sinks);
  const cpu0 = cpuSnapshot(s.rootPid);
  const load0 = loadavg();
  const ld = await runLoad(s.port, n);
  let error = ld.errors.length ? `load: ${ld.accepted} of ${opt.messages} accepted; ${ld.errors.slice(0, 2).join(' / ')}` : null;
  const tEnd = ld.accepted ? await waitForTotal(group.sinks, base + ld.accepted, 300000) : null;
  const delivered = totalCount(group.sinks) - base;
  if (ld.accepted && tEnd === null) error = `${error ? error + '; ' : ''}the sinks got ${delivered} of ${ld.accepted} within 300 s`;
  await sleep(300);
  const cpu = cpuDelta(cpu0, cpuSnapshot(s.rootPid));
  let connections = null, detail = {};
  if (name === 'postline') {
    connections = await s.metric('postline_outbound_connections_opened_total').catch((e) => { error ??= `metrics: ${e.message}`; return null; });
  } else {
    detail = await (async () => { // postlogd may write the last lines a moment after the sink got the message
      for (let i = 0; i < 40; i++) { const c = s.deliveryConnections(); if (c.deliveries >= ld.accepted) return c; await sleep(250); }
      return s.deliveryConnections();
    })();
    connections = detail.opened;
    if (detail.sent !== delivered) error ??= `maillog: ${detail.sent} status=sent lines for ${delivered} messages at the sinks`;
  }
  await s.stop();
  owned.delete(s);
  // A session is counted by smtp-sink when it ends; the server's stop closes its cached ones.
  const sinkSessions = (await settled(() => totalSessions(group.sinks), 10000)) - sess0;
  if (!opt.keep) rmSync(dir, { recursive: true, force: true });
  const accSec = ld.firstAcceptAt && ld.lastAcceptAt > ld.firstAcceptAt ? (ld.lastAcceptAt - ld.firstAcceptAt) / 1000 : null;
  const e2eSec = tEnd && ld.firstAcceptAt ? (tEnd - ld.firstAcceptAt) / 1000 : null;
  const r = {
    server: name, dests: n, reuse, error, accepted: ld.accepted, delivered, bodyBytes: ld.bodyBytes,
    acceptSeconds: accSec, e2eSeconds: e2eSec,
    acceptedPerSec: accSec ? ld.accepted / accSec : null, deliveredPerSec: e2eSec ? delivered / e2eSec : null,
    connections, sinkSessions, msgsPerConnection: connections ? delivered / connections : null,
    maxConnUse: detail.maxConnUse ?? null, cpuMs: cpu.ms, cpuMsPerMsg: delivered ? cpu.ms / delivered : null,
    loadavgBefore: load0, loadavgAfter: loadavg(), describe,
  };
  log(`  N=${String(n).padStart(3)} reuse ${reuse.padEnd(3)} ${name.padEnd(8)} acc ${fmt(r.acceptedPerSec, 0).padStart(5)}/s  delivered ${fmt(r.deliveredPerSec, 0).padStart(5)}/s  ` +
    `connections ${connections ?? '-'} (sinks ${sinkSessions})  msgs/conn ${fmt(r.msgsPerConnection, 1)}  cpu ${fmt(r.cpuMsPerMsg, 2)} ms/msg  load ${r.loadavgAfter}${error ? '  ERROR ' + error : ''}`);
  return r;
}

// ---------- the report
function render(runs, meta) {
  const find = (n, reuse, server) => runs.find((r) => r.dests === n && r.reuse === reuse && r.server === server);
  const out = [];
  out.push(`# Connection reuse over 1, 10 and 100 destinations (issue 14)`, '');
  out.push(`${meta.date}; Postline commit \`${meta.commit}\`; node ${process.version}; Postfix ${meta.postfixVersion}; ${meta.cpus} CPUs; load average ${meta.loadStart} at the start, ${meta.loadEnd} at the end. Whole run ${fmt(meta.seconds, 0)} s.`, '');
  out.push('Command (as root, from the repository):', '', '```sh', meta.command, '```', '');
  out.push(`${opt.messages} messages of ${runs[0]?.bodyBytes ?? '?'} bytes (headers, 76-character lines and the final ".") from the bench's own load generator (bench/lib/spread-load-worker.mjs: ${opt.sessions} persistent inbound sessions, one message at a time each, message i to r{i}@d{i mod N}.test, one recipient; smtp-source cannot vary the recipient domain). ` +
    `Domain d{i}.test is its own next hop [127.0.0.{i+2}]:PORT, an smtp-sink of its own on that loopback address (Postline: delivery.routes with tls none; Postfix: transport_maps texthash, smtp:[127.0.0.{i+2}]:PORT). Every run gets a fresh server (fresh queue, no slow-start history); servers alternate. 1 run per cell.`, '');
  out.push('- **accepted msg/s**: messages / (last 250 after "." − first 250), at the load generator.');
  out.push('- **delivered msg/s**: messages at the sinks / (the moment the sinks had every accepted message − first 250): end to end.');
  out.push('- **connections**: outbound SMTP connections opened. Postline: `postline_outbound_connections_opened_total` from GET /metrics after the run. Postfix: the maillog\'s delivery lines (`postfix/smtp[...]: QUEUEID: to=<...>, ..., status=...`) without `conn_use=` (the smtp client adds `conn_use=N`, N ≥ 2, when the delivery went over a connection taken from its cache, so a line without it is the first delivery on a newly opened connection). **sinks**: the sessions the smtp-sinks counted (sess=, counted when a session ends; read after the server stopped): the same figure measured at the receiver.');
  out.push('- **msgs/connection**: delivered / connections. **PL/PF**: Postline ÷ Postfix delivered msg/s in the same cell (accepted msg/s in parentheses).', '');
  out.push('| N | reuse | server | accepted msg/s | delivered msg/s | connections | sinks | msgs/connection | PL/PF |');
  out.push('|---:|---|---|---:|---:|---:|---:|---:|---:|');
  for (const n of opt.dests) for (const reuse of opt.reuse) for (const server of serverNames) {
    const r = find(n, reuse, server);
    if (!r) continue;
    const pf = find(n, reuse, 'postfix');
    const ratio = server === 'postline' && pf && r.deliveredPerSec && pf.deliveredPerSec
      ? `${fmt(r.deliveredPerSec / pf.deliveredPerSec, 2)} (${fmt(r.acceptedPerSec / pf.acceptedPerSec, 2)})` : '';
    out.push(`| ${n} | ${reuse} | ${server} | ${fmt(r.acceptedPerSec, 0)} | ${fmt(r.deliveredPerSec, 0)} | ${r.connections ?? '-'} | ${r.sinkSessions} | ${fmt(r.msgsPerConnection, 1)} | ${ratio} |${r.error ? ` ERROR ${r.error}` : ''}`);
  }
  out.push('', '| N | reuse | server | accept s | end-to-end s | delivered | server CPU ms/msg | max conn_use | load avg before → after |');
  out.push('|---:|---|---|---:|---:|---:|---:|---:|---|');
  for (const r of runs) out.push(`| ${r.dests} | ${r.reuse} | ${r.server} | ${fmt(r.acceptSeconds, 2)} | ${fmt(r.e2eSeconds, 2)} | ${r.delivered} | ${fmt(r.cpuMsPerMsg, 2)} | ${r.maxConnUse ?? '-'} | ${r.loadavgBefore} → ${r.loadavgAfter} |`);
  out.push('', '## Configuration', '');
  for (const server of serverNames) {
    const r = runs.find((x) => x.server === server && x.dests === Math.max(...opt.dests) && x.reuse === 'off') ?? runs.find((x) => x.server === server);
    if (!r) continue;
    out.push(`### ${server}: changes from its defaults (the N=${r.dests}, reuse ${r.reuse} run)`, '');
    out.push('| key | value | default | why |', '|---|---|---|---|');
    for (const d of r.describe.deviations) out.push(`| ${d.key} | ${String(d.value).replace(/\|/g, '\\|')} | ${String(d.default).replace(/\|/g, '\\|')} | ${d.reason} |`);
    out.push('');
    if (server === 'postline') out.push('```yaml', r.describe.config.split('\n').slice(0, 14).join('\n') + (r.describe.config.split('\n').length > 14 ? '\n# ... one route per destination' : ''), '```', '', `Started with \`${r.describe.start}\`.`, '');
    else out.push('```', r.describe.mainCf.split('\n').filter((l) => !/^#/.test(l)).slice(-8).join('\n'), '```', '', `transport map (first lines):`, '', '```', (r.describe.transport ?? '').split('\n').slice(0, 3).join('\n'), '```', '', `Started with \`${r.describe.start}\`.`, '');
  }
  out.push('The relayhost rows are the bench classes\' defaults and unused here: every recipient domain has its route / transport entry.', '');
  out.push(`Sinks: \`${meta.sinkCommand}\` (one per destination address, 127.0.0.2 .. 127.0.0.{N+1}).`, '');
  return out.join('\n').replaceAll(tmp, '$TMP').replaceAll(root + '/', './') + '\n';
}

async function main() {
  const commit = (() => { try { return execFileSync('git', ['-C', root, 'rev-parse', '--short=12', 'HEAD'], { encoding: 'utf8' }).trim(); } catch { return 'unknown'; } })();
  const pfVersion = (() => { try { return execFileSync('/usr/sbin/postconf', ['-dh', 'mail_version'], { encoding: 'utf8' }).trim(); } catch { return 'unknown'; } })();
  const meta = { date: new Date().toISOString(), commit, postfixVersion: pfVersion, cpus: (await import('node:os')).cpus().length, loadStart: loadavg(), command: `node bench/destinations.mjs ${argv.join(' ')}`.trim() };
  log(`${opt.messages} messages x N in ${opt.dests.join(', ')} x reuse ${opt.reuse.join(', ')} x ${serverNames.join(', ')}; ${opt.sessions} inbound sessions; load average ${meta.loadStart}`);
  const runs = [];
  let k = 0;
  for (const n of opt.dests) {
    const group = await startSinks(n);
    meta.sinkCommand = group.sinks[0].command;
    log(`N=${n}: ${n} smtp-sink(s) on 127.0.0.2${n > 1 ? ` .. ${hostOf(n - 1)}` : ''} port ${group.port}`);
    for (const reuse of opt.reuse) {
      const order = k++ % 2 === 0 ? serverNames : serverNames.slice().reverse();
      for (const name of order) runs.push(await runOne(name, n, reuse, group));
    }
    for (const s of group.sinks) { await s.stop(); owned.delete(s); }
  }
  meta.loadEnd = loadavg();
  meta.seconds = (Date.now() - t00) / 1000;
  const md = render(runs, meta);
  const outFile = opt.out ?? join(here, 'results', `${meta.date.slice(0, 10)}-destinations.md`);
  mkdirSync(dirname(outFile), { recursive: true });
  writeFileSync(outFile, md);
  writeFileSync(outFile.replace(/\.md$/, '') + '.json', JSON.stringify({ meta, options: opt, runs: runs.map((r) => ({ ...r, describe: undefined })) }, null, 2) + '\n');
  console.log('\n' + md.split('\n').filter((l) => l.startsWith('|')).join('\n'));
  log(`wrote ${relative(process.cwd(), outFile)} (and .json)`);
}

try {
  await main();
  await cleanup();
} catch (e) {
  console.error('bench failed:', e?.stack ?? e);
  await cleanup();
  process.exit(1);
}
