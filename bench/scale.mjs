#!/usr/bin/env node
// Outbound at scale (issue 14): the figures of its "Measured today" list, on loopback, at
// Postline's defaults except the routes the scenario needs (printed). Scenarios:
//   backlog   N messages (default 100,000; 2.3 KB) injected with the relay host dead (a peer
//             that hangs up at once): accept rate, connections made to the dead host, bytes on
//             disk per message; the same injection with the relay up, for the ratio.
//   restart   the server stopped and started again with N queued: time until the SMTP
//             listener answers, RSS peak during the first 30 s.
//   flush     the relay comes back; `postline queue flush`: the CLI's wall time, then the drain
//             rate to smtp-sink until the queue is empty; queue.db size after the drain.
//   hol       H messages (default 50,000) for a host that accepts and never greets, then 1,000
//             for a healthy one: time to deliver those 1,000 against an empty queue.
//   shutdown  SIGTERM with those stalled deliveries running: time to exit; nothing lost.
//   million   --million: 1,000,000 queued (written straight through the store, the relay
//             dead), restart: time to listener, RSS peak over 60 s, delivery rate per 5 s to
//             smtp-sink after the relay comes up (time to full speed).
// Usage: node bench/scale.mjs [--n 100000] [--hol 50000] [--million] [--only a,b] [--out FILE]
import { spawn, execFileSync } from 'node:child_process';
import { openSync, closeSync, mkdtempSync, mkdirSync, rmSync, writeFileSync, readFileSync, statSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { Sink } from './lib/sink.mjs';
import { freePort, greets, sleep } from './lib/net.mjs';
import { SMTP_SOURCE } from './lib/load.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const Database = require('better-sqlite3');
const SINK_BIN = ['/usr/sbin/smtp-sink', '/usr/bin/smtp-sink'].find((p) => existsSync(p));
const args = process.argv.slice(2);
const opt = (name, dflt) => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1] : dflt; };
const N = Number(opt('n', 100_000));
const HOL = Number(opt('hol', 50_000));
const only = opt('only', 'backlog,restart,flush,hol,shutdown').split(',');
const out = opt('out', '');
const SIZE = 2300;
const lines = [];
const say = (s) => { console.log(s); lines.push(s); };


/** A TCP peer: 'hangup' closes at once (a dead host that still counts its connections), 'stall' never greets. */
async function peer(kind, port) {
  const socks = new Set();
  let n = 0;
  const srv = createServer((s) => { n++; s.on('error', () => {}); if (kind === 'hangup') return s.destroy(); socks.add(s); s.on('close', () => socks.delete(s)); });
  await new Promise((r) => srv.listen(port ?? 0, '127.0.0.1', r));
  return { port: srv.address().port, count: () => n, close: () => new Promise((r) => { for (const s of socks) s.destroy(); srv.close(() => r()); }) };
}

class Server {
  constructor(dir, { routes = [], relay }) {
    this.dir = dir; this.routes = routes; this.relay = relay; this.proc = null;
    mkdirSync(dir, { recursive: true });
    this.dataDir = join(dir, 'var');
    this.conf = join(dir, 'postline.yaml');
  }
  async start() {
    this.port ??= await freePort();
    const r = this.routes.map((x) => `    - { domain: ${x.domain}, host: 127.0.0.1, port: ${x.port}, tls: none }`).join('\n');
    writeFileSync(this.conf, `hostname: scale-bench.test\ndataDir: ${this.dataDir}\nlisteners:\n  - { name: mx, address: 127.0.0.1, port: ${this.port}, role: mx }\nhttp: null\n`
      + `log: { level: info }\ndelivery:\n${this.relay ? `  relayhost: { host: 127.0.0.1, port: ${this.relay}, tls: none }\n` : ''}${r ? `  routes:\n${r}\n` : ''}`);
    const t0 = Date.now();
    const log = openSync(join(this.dir, 'postline.log'), 'a');
    this.proc = spawn(process.execPath, [join(root, 'bin', 'postline.js'), 'serve', '-c', this.conf], { stdio: ['ignore', log, log] });
    closeSync(log);
    this.exit = new Promise((res) => this.proc.once('exit', (c, s) => res(c ?? s)));
    this.rss = 0;
    this.sampler = setInterval(() => { try { const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${this.proc.pid}/status`, 'utf8')); if (m) this.rss = Math.max(this.rss, Number(m[1]) * 1024); } catch { /* gone */ } }, 100);
    for (let i = 0; i < 6000; i++) {
      if (await greets(this.port)) return Date.now() - t0;
      await sleep(20);
    }
    throw new Error('postline did not open its listener');
  }
  async stop() {
    const t0 = Date.now();
    this.proc.kill('SIGTERM');
    await Promise.race([this.exit, sleep(20_000)]);
    clearInterval(this.sampler);
    return Date.now() - t0;
  }
  queued() {
    const db = new Database(join(this.dataDir, 'queue.db'), { readonly: true, fileMustExist: true });
    try { return db.prepare('SELECT count(*) AS n FROM messages WHERE quarantined_at IS NULL').get().n; } finally { db.close(); }
  }
  diskBytes() {
    let b = 0;
    for (const f of ['queue.db', 'queue.db-wal']) try { b += statSync(join(this.dataDir, f)).size; } catch { /* none */ }
    return b;
  }
  /** Runs a CLI command (async: the sink's counter must keep being read meanwhile). */
  async cli(argv) {
    const t0 = Date.now();
    const p = spawn(process.execPath, [join(root, 'bin', 'postline.js'), ...argv, '-c', this.conf], { stdio: ['ignore', 'pipe', 'inherit'] });
    let outp = '';
    p.stdout.on('data', (d) => { outp += d; });
    await new Promise((r) => p.once('exit', r));
    return { ms: Date.now() - t0, out: outp.trim() };
  }
}


/** smtp-source: `count` messages of SIZE bytes over `sessions` persistent sessions to `to`. @returns ms. */
async function inject(port, count, to, sessions = 50) {
  const t0 = Date.now();
  const p = spawn(SMTP_SOURCE, ['-s', String(sessions), '-m', String(count), '-l', String(SIZE), '-d', '-M', 'source.test', '-f', 'bench@source.test', '-t', to, `127.0.0.1:${port}`], { stdio: 'ignore' });
  const code = await new Promise((r) => p.once('exit', r));
  if (code !== 0) throw new Error(`smtp-source exited ${code}`);
  return Date.now() - t0;
}

async function waitQueue(server, pred, timeoutMs) {
  const t0 = Date.now();
  while (Date.now() - t0 < timeoutMs) { if (pred(server.queued())) return Date.now() - t0; await sleep(200); }
  return null;
}

const rate = (n, ms) => (n / (ms / 1000)).toFixed(0);
const mb = (b) => (b / 1024 / 1024).toFixed(1);
const tmp = mkdtempSync(join(tmpdir(), 'pl-scale-'));
try {
  say(`# Scale bench (issue 14) ${new Date().toISOString()}; node ${process.version}; ${SIZE}-byte messages, smtp-source 50 sessions; Postline defaults + routes below`);
  if (only.some((x) => ['backlog', 'restart', 'flush'].includes(x))) {
    // The relay up first: the accept rate to compare with.
    const sinkPort = await freePort();
    const upSink = new Sink({ bin: SINK_BIN, port: sinkPort, name: 'up' });
    await upSink.start();
    const up = new Server(join(tmp, 'up'), { relay: sinkPort });
    await up.start();
    const upMs = await inject(up.port, Math.min(N, 20_000), 'rcpt@sink.test');
    say(`- accept rate with the relay up: ${rate(Math.min(N, 20_000), upMs)} msg/s (${Math.min(N, 20_000)} messages)`);
    await up.stop();
    await upSink.stop();

    const deadPeer = await peer('hangup');
    const s = new Server(join(tmp, 'backlog'), { relay: deadPeer.port });
    await s.start();
    const ms = await inject(s.port, N, 'rcpt@sink.test');
    say(`- backlog: ${N} injected with the relay dead in ${(ms / 1000).toFixed(1)} s = ${rate(N, ms)} msg/s; connections to the dead host: ${deadPeer.count()}`);
    await sleep(3000);
    say(`- disk: ${mb(s.diskBytes())} MiB for ${s.queued()} queued = ${(s.diskBytes() / Math.max(1, s.queued()) / 1024).toFixed(2)} KiB per ${SIZE}-byte message (queue.db + WAL)`);
    const stopMs = await s.stop();
    say(`- stop with ${N} queued: ${stopMs} ms`);
    if (only.includes('restart') || only.includes('flush')) {
      const openMs = await s.start();
      await sleep(5000);
      say(`- restart with ${s.queued()} queued: listener answers after ${openMs} ms; RSS peak in the first 5 s ${mb(s.rss)} MiB`);
      await sleep(25_000);
      say(`- RSS peak in the first 30 s: ${mb(s.rss)} MiB; connections to the dead host so far: ${deadPeer.count()}`);
    }
    if (only.includes('flush')) {
      await deadPeer.close();
      const sink = new Sink({ bin: SINK_BIN, port: deadPeer.port, name: 'back' });
      await sink.start();
      const n0 = s.queued();
      const f = await s.cli(['queue', 'flush']);
      say(`- flush of ${n0}: \`postline queue flush\` answered in ${f.ms} ms ("${f.out}")`);
      const drainMs = await waitQueue(s, (q) => q === 0, 1_800_000);
      say(`- drain after the flush: ${n0} in ${(drainMs / 1000).toFixed(1)} s = ${rate(n0, drainMs)} msg/s (sink counted ${sink.count})`);
      await sleep(15_000);
      const at15 = s.diskBytes();
      await sleep(45_000);
      say(`- after the drain: queue.db + WAL ${mb(at15)} MiB at +15 s, ${mb(s.diskBytes())} MiB at +60 s (incremental vacuum)`);
      await s.stop();
      await sink.stop();
    }
  }
  if (only.includes('hol') || only.includes('shutdown')) {
    const sinkPort = await freePort();
    const sink = new Sink({ bin: SINK_BIN, port: sinkPort, name: 'ok' });
    await sink.start();
    const base = new Server(join(tmp, 'hol-base'), { routes: [{ domain: 'ok.test', port: sinkPort }] });
    await base.start();
    let t0 = Date.now();
    await inject(base.port, 1000, 'r@ok.test', 10);
    await sink.waitFor(1000, 120_000);
    const baseMs = Date.now() - t0;
    await base.stop();
    const stall = await peer('stall');
    const s = new Server(join(tmp, 'hol'), { routes: [{ domain: 'ok.test', port: sinkPort }, { domain: 'stall.test', port: stall.port }] });
    await s.start();
    await inject(s.port, HOL, 'r@stall.test');
    const c0 = sink.count;
    t0 = Date.now();
    await inject(s.port, 1000, 'r@ok.test', 10);
    const got = await sink.waitFor(c0 + 1000, 1_200_000);
    const holMs = got ? Date.now() - t0 : null;
    say(`- head-of-line: 1,000 to a healthy host took ${baseMs} ms with an empty queue, ${holMs ?? '>1200000'} ms behind ${HOL} for a silent host = ${holMs ? (holMs / baseMs).toFixed(2) : '-'}x; connections to the silent host: ${stall.count()}`);
    const stopMs = await s.stop();
    const left = s.queued();
    say(`- shutdown with stuck deliveries: exit after ${stopMs} ms; ${left} of ${HOL} still queued (none lost)`);
    await stall.close();
    await sink.stop();
  }
  if (args.includes('--million')) {
    // 1,000,000 queued (written through the store), then the server starts with its relay up:
    // time to the listener, RSS at every moment (sampled each 100 ms), delivered msg/s per 5 s.
    const sinkPort = await freePort();
    const s = new Server(join(tmp, 'million'), { relay: sinkPort });
    await s.start();
    await s.stop();
    const t0 = Date.now();
    execFileSync(process.execPath, [join(root, 'bench', 'lib', 'fill-queue.mjs'), s.dataDir, '1000000', String(SIZE)], { stdio: 'inherit', timeout: 3_600_000 });
    say(`- million: 1,000,000 written through the store in ${((Date.now() - t0) / 1000).toFixed(0)} s; disk ${mb(s.diskBytes())} MiB (${(s.diskBytes() / 1e6 / 1024).toFixed(2)} KiB per message)`);
    const sink = new Sink({ bin: SINK_BIN, port: sinkPort, name: 'm' });
    await sink.start();
    const t1 = Date.now();
    const openMs = await s.start();
    const per = [];
    for (let i = 0; i < 24; i++) { const a = sink.count; await sleep(5000); per.push(((sink.count - a) / 5).toFixed(0)); }
    say(`- restart with 1,000,000 queued, relay up: listener after ${openMs} ms; delivered msg/s per 5 s from the start: ${per.join(' ')} (${sink.count} in ${((Date.now() - t1) / 1000).toFixed(0)} s); RSS peak ${mb(s.rss)} MiB`);
    await s.stop();
    await sink.stop();
  }
} finally {
  if (out) writeFileSync(out, lines.join('\n') + '\n');
  if (args.includes('--keep')) console.log(`kept ${tmp}`);
  else rmSync(tmp, { recursive: true, force: true });
}
