#!/usr/bin/env node
// Throughput of `postline sendmail` (issue 13): messages a second handed in by the command, one
// process per message as PHP and cron run it, through the submit socket (server running) and
// through the maildrop (server down), and how fast the server then picks the maildrop up.
//
//   node bench/sendmail.mjs [--messages 200] [--parallel 2] [--size 2048]
//
// Delivery goes nowhere (a route to a closed port: mail stays queued), so the figures are the
// hand-in alone. Nothing from src/ is imported (bin/postline.js is run); every process and temp
// file is removed on exit.
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import net from 'node:net';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const bin = join(root, 'bin', 'postline.js');
const arg = (name, def) => { const i = process.argv.indexOf(`--${name}`); return i > 0 ? Number(process.argv[i + 1]) : def; };
const opt = { messages: arg('messages', 200), parallel: arg('parallel', 2), size: arg('size', 2048) };
const dir = mkdtempSync(join(tmpdir(), 'postline-bench-sendmail-'));
const dataDir = join(dir, 'var');
const config = join(dir, 'postline.yaml');
let server;

const freePort = () => new Promise((res) => { const s = net.createServer(); s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => res(p)); }); });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function startServer() {
  server = spawn(process.execPath, [bin, 'serve', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  server.stdout.on('data', (d) => { out += d; });
  server.stderr.on('data', (d) => { out += d; });
  server.output = () => out;
  for (let i = 0; i < 600 && !existsSync(join(dataDir, 'submit.sock')); i++) await sleep(50);
  if (!existsSync(join(dataDir, 'submit.sock'))) throw new Error(`server did not start: ${out.slice(-2000)}`);
}

async function stopServer() {
  if (!server) return;
  const s = server;
  server = undefined;
  await new Promise((r) => { s.once('exit', r); s.kill('SIGTERM'); });
}

const body = `Subject: bench\nFrom: bench@example.test\nTo: rcpt@example.test\n\n${'x'.repeat(70)}\n`.repeat(1);
const message = body + `${'y'.repeat(76)}\n`.repeat(Math.max(0, Math.floor((opt.size - body.length) / 77)));

function sendOne() {
  return new Promise((res, rej) => {
    const c = spawn(process.execPath, [bin, 'sendmail', '-t', '-i'], { env: { ...process.env, POSTLINE_CONFIG: config }, stdio: ['pipe', 'ignore', 'pipe'] });
    let err = '';
    c.stderr.on('data', (d) => { err += d; });
    c.on('exit', (code) => (code === 0 ? res() : rej(new Error(`sendmail exited ${code}: ${err}`))));
    c.stdin.end(message);
  });
}

/** Runs `n` commands, `parallel` at a time. @returns messages a second. */
async function run(n) {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: opt.parallel }, async () => { while (next++ < n) await sendOne(); }));
  return n / ((performance.now() - t0) / 1000);
}

const waiting = () => readdirSync(join(dataDir, 'maildrop')).filter((f) => f.startsWith('m.')).length;

try {
  const port = await freePort();
  const dead = await freePort();
  writeFileSync(config, [
    'hostname: mx.bench.test', `dataDir: ${dataDir}`, 'http: null', 'log: { level: warn, format: json }',
    'limits: { minFreeBytes: 0 }', `listeners: [{ name: mx, address: 127.0.0.1, port: ${port}, role: mx, tls: none }]`,
    `delivery: { routes: [{ domain: example.test, host: 127.0.0.1, port: ${dead}, tls: none }], retry: { initialMs: 3600000, maxMs: 3600000, jitter: 0 } }`,
    'sendmail: { scanIntervalMs: 100 }', '',
  ].join('\n'));
  await startServer();
  await run(10); // warm-up: the file cache
  const socket = await run(opt.messages);
  await stopServer();
  const maildrop = await run(opt.messages);
  const files = waiting();
  const t0 = performance.now();
  await startServer();
  for (let i = 0; i < 6000 && waiting() > 0; i++) await sleep(10);
  const pickupMs = performance.now() - t0;
  const left = waiting();
  await stopServer();
  const r = {
    messages: opt.messages, parallel: opt.parallel, sizeBytes: message.length, cores: (await import('node:os')).availableParallelism(), node: process.version,
    socketPerSecond: Number(socket.toFixed(1)), maildropPerSecond: Number(maildrop.toFixed(1)),
    pickupFiles: files, pickupSecondsFromStart: Number((pickupMs / 1000).toFixed(2)), pickupLeft: left,
  };
  console.log(JSON.stringify(r, null, 2));
} finally {
  await stopServer().catch(() => {});
  rmSync(dir, { recursive: true, force: true });
}
