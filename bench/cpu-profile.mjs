#!/usr/bin/env node
// Profiles Postline under one bench point with `node --cpu-prof` and summarises self time.
//
//   node bench/cpu-profile.mjs [--size 2048] [--sessions 50] [--count 4000] [--one] [--out DIR]
//   node bench/cpu-profile.mjs --summarize FILE.cpuprofile
//   node bench/cpu-profile.mjs --strace [...]   (syscall counts per message instead, strace -c -f)
//   node bench/cpu-profile.mjs --api [--count 6000] [--sessions 50]
//        (POST /api/v1/messages with autocannon instead of smtp-source, the bench's 2 KB body)
//   --keep-profile FILE copies the raw .cpuprofile there (it is removed with the temp dir otherwise)
//
// Writes bench/results/<date>-cpuprofile-<size>x<sessions>.md (top self-time functions, time by
// file) and keeps the raw .cpuprofile in the temp dir only (it is large).
import { spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, chmodSync, readdirSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, resolve, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import net from 'node:net';
import { PostlineServer } from './lib/postline.mjs';
import { Sink } from './lib/sink.mjs';
import { apiBody, createApiKey } from './lib/api.mjs';
import { createRequire } from 'node:module';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..');
const argv = process.argv.slice(2);
const opt = { size: 2048, sessions: 50, count: 4000, reuse: true, out: join(here, 'results'), summarize: null, top: 30, strace: false, api: false, keep: null };
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  if (a === '--size') opt.size = Number(argv[++i]);
  else if (a === '--sessions') opt.sessions = Number(argv[++i]);
  else if (a === '--count') opt.count = Number(argv[++i]);
  else if (a === '--one') opt.reuse = false;
  else if (a === '--out') opt.out = resolve(argv[++i]);
  else if (a === '--summarize') opt.summarize = argv[++i];
  else if (a === '--top') opt.top = Number(argv[++i]);
  else if (a === '--strace') opt.strace = true;
  else if (a === '--api') opt.api = true;
  else if (a === '--keep-profile') opt.keep = resolve(argv[++i]);
  else { console.error(`unknown argument ${a}`); process.exit(2); }
}

/** Self time per function (and per file) from a .cpuprofile. */
export function summarize(profile, top = 30) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map();
  let total = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const dt = (profile.timeDeltas[i] ?? 0) / 1000;
    total += dt;
    self.set(profile.samples[i], (self.get(profile.samples[i]) ?? 0) + dt);
  }
  const shortUrl = (u) => {
    if (!u) return '';
    const p = u.startsWith('file://') ? fileURLToPath(u) : u;
    return p.startsWith(root) ? relative(root, p) : p;
  };
  const fn = new Map(), file = new Map();
  for (const [id, ms] of self) {
    const cf = byId.get(id).callFrame;
    const name = cf.functionName || '(anonymous)';
    const url = shortUrl(cf.url);
    const key = `${name}  ${url ? `${url}:${cf.lineNumber + 1}` : ''}`.trim();
    fn.set(key, (fn.get(key) ?? 0) + ms);
    let group = url || name; // (garbage collector), (program), (idle) have no url
    if (group.includes('node_modules/')) group = 'node_modules/' + group.split('node_modules/')[1].split('/')[0];
    else if (group.startsWith('node:')) group = 'node: ' + group.slice(5).split('/')[0];
    file.set(group, (file.get(group) ?? 0) + ms);
  }
  const sort = (m) => [...m.entries()].sort((a, b) => b[1] - a[1]);
  return { totalMs: total, functions: sort(fn).slice(0, top), files: sort(file).slice(0, top) };
}

function render(s, title, facts) {
  const busy = s.totalMs - (s.files.find(([k]) => k === '(idle)')?.[1] ?? 0);
  const L = [`# ${title}`, '', ...facts, '',
    `Sampled ${(s.totalMs / 1000).toFixed(1)} s of wall time, ${(busy / 1000).toFixed(1)} s not idle (main thread only; fsync and other libuv pool work do not show).`, '',
    '## Top self time by function', '', '| self ms | % of busy | function  location |', '|--:|--:|---|'];
  for (const [k, ms] of s.functions) if (k !== '(idle)') L.push(`| ${ms.toFixed(0)} | ${(100 * ms / busy).toFixed(1)} | \`${k}\` |`);
  L.push('', '## Self time by file / package', '', '| self ms | % of busy | file |', '|--:|--:|---|');
  for (const [k, ms] of s.files) if (k !== '(idle)') L.push(`| ${ms.toFixed(0)} | ${(100 * ms / busy).toFixed(1)} | \`${k}\` |`);
  return L.join('\n') + '\n';
}

if (opt.summarize) {
  const s = summarize(JSON.parse(readFileSync(opt.summarize, 'utf8')), opt.top);
  process.stdout.write(render(s, `CPU profile ${opt.summarize}`, []));
  process.exit(0);
}

const tmp = mkdtempSync(join(process.env.BENCH_TMPDIR || tmpdir(), 'postline-cpuprof-'));
chmodSync(tmp, 0o755);
const freePort = () => new Promise((res, rej) => {
  const s = net.createServer(); s.once('error', rej);
  s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => res(p)); });
});
const profDir = join(tmp, 'prof');
const sink = new Sink({ bin: '/usr/sbin/smtp-sink', port: await freePort(), name: 'postline' });
const server = new PostlineServer({ root, dir: join(tmp, 'postline'), port: await freePort(), sinkPort: sink.port, httpPort: await freePort(),
  messageSizeLimit: 200 * 1024 * 1024, nodeArgs: opt.strace ? [] : ['--cpu-prof', '--cpu-prof-dir', profDir] });
process.on('exit', () => { server.stopSync(); sink.proc?.kill('SIGKILL'); rmSync(tmp, { recursive: true, force: true }); });
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));
try {
  await sink.start();
  await server.start();
  const args = ['-s', String(opt.sessions), '-m', String(opt.count), '-l', String(opt.size), ...(opt.reuse ? ['-d'] : []),
    '-M', 'source.test', '-f', 'bench@source.test', '-t', 'rcpt@sink.test', `127.0.0.1:${server.port}`];
  /** --api: `opt.count` POSTs of the bench's 2 KB body over `opt.sessions` connections; 0 when all got 202. */
  const apiLoad = async () => {
    const { key } = createApiKey(server, 'profile');
    const autocannon = createRequire(join(root, 'package.json'))('autocannon');
    const res = await autocannon({
      url: `http://127.0.0.1:${server.httpPort}/api/v1/messages`, method: 'POST', connections: opt.sessions, amount: opt.count, timeout: 60,
      body: apiBody(opt.size), headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    });
    return res['2xx'] === opt.count ? 0 : `${res['2xx']} of ${opt.count} got 2xx (${res.non2xx} non-2xx, ${res.errors} errors)`;
  };
  if (opt.api) args.splice(0, args.length, 'POST', `/api/v1/messages`, `${opt.count} requests`, `${opt.sessions} connections (autocannon)`, `${opt.size}-byte text`);
  let tracer = null;
  const traceFile = join(tmp, 'strace.txt');
  if (opt.strace) {
    tracer = spawn('strace', ['-f', '-c', '-o', traceFile, '-p', String(server.rootPid)], { stdio: 'ignore' });
    await new Promise((r) => setTimeout(r, 1000));
  }
  const t0 = Date.now();
  const code = opt.api ? await apiLoad() : await new Promise((res) => {
    const p = spawn('/usr/sbin/smtp-source', args, { stdio: 'inherit' });
    const t = setTimeout(() => { p.kill('SIGKILL'); res('timeout'); }, 300000);
    p.once('exit', (c) => { clearTimeout(t); res(c); });
  });
  const tAcc = Date.now();
  if (code !== 0) throw new Error(`${opt.api ? 'autocannon' : 'smtp-source'}: ${code}`);
  if ((await sink.waitFor(opt.count, 180000)) === null) throw new Error('sink did not get every message');
  const tE2e = Date.now();
  if (tracer) {
    tracer.kill('SIGINT');
    await new Promise((r) => { const t = setTimeout(r, 10000); tracer.once('exit', () => { clearTimeout(t); r(); }); });
    const table = readFileSync(traceFile, 'utf8');
    const lines = [`# Postline system calls per message (strace -c -f)`, '',
      `Postline under \`smtp-source ${args.join(' ')}\`, ${opt.count} messages, accepted and relayed to smtp-sink; strace slows it, so only the counts matter.`, '',
      '| syscall | calls | per message |', '|---|--:|--:|'];
    for (const l of table.split('\n')) {
      const m = /^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$/.exec(l);
      if (m && m[2] !== 'total') lines.push(`| ${m[2]} | ${m[1]} | ${(Number(m[1]) / opt.count).toFixed(2)} |`);
    }
    lines.push('', '```', table.trim(), '```', '');
    await server.stop();
    await sink.stop();
    mkdirSync(opt.out, { recursive: true });
    const out = join(opt.out, `${new Date().toISOString().slice(0, 10)}-strace-${opt.size}x${opt.sessions}${opt.reuse ? '' : '-one'}.md`);
    writeFileSync(out, lines.join('\n'));
    console.log(`wrote ${out}`);
    process.exit(0);
  }
  await server.stop(); // the profile is written at exit
  await sink.stop();
  const file = readdirSync(profDir).find((f) => f.endsWith('.cpuprofile'));
  if (!file) throw new Error('no .cpuprofile written');
  if (opt.keep) copyFileSync(join(profDir, file), opt.keep);
  const s = summarize(JSON.parse(readFileSync(join(profDir, file), 'utf8')), opt.top);
  const facts = [
    `Postline under \`${opt.api ? '' : 'smtp-source '}${args.join(' ')}\` (accepted ${(opt.count / ((tAcc - t0) / 1000)).toFixed(0)} msg/s, end to end ${(opt.count / ((tE2e - t0) / 1000)).toFixed(0)} msg/s while profiled).`,
    `Server started as: \`${server.command}\`; the profiler itself slows it.`,
  ];
  mkdirSync(opt.out, { recursive: true });
  const out = join(opt.out, `${new Date().toISOString().slice(0, 10)}-cpuprofile-${opt.api ? 'api-' : ''}${opt.size}x${opt.sessions}${opt.reuse ? '' : '-one'}.md`);
  writeFileSync(out, render(s, 'Postline CPU profile (node --cpu-prof)', facts));
  console.log(`wrote ${out}`);
} catch (e) {
  console.error('cpu-profile failed:', e?.stack ?? e);
  process.exitCode = 1;
}
