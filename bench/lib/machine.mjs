// Machine facts measured at the start of a run: fsync latency (4 KB append + fdatasync), durable
// write bandwidth (dd), the device behind the temp dir and its flush counter in /proc/diskstats,
// and a self-test of the slowsync shim's two modes.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { closeSync, fdatasyncSync, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { cpus, totalmem, release, hostname } from 'node:os';
import { join } from 'node:path';

const sh = (cmd, args, cwd) => { try { return execFileSync(cmd, args, { encoding: 'utf8', cwd, stdio: ['ignore', 'pipe', 'pipe'] }).trim(); } catch { return null; } };

/** Static facts: CPU, memory, kernel, versions, filesystem of the temp dir, git commit. */
export function machineFacts({ root, tmp, postfixVersion }) {
  const c = cpus();
  return {
    hostname: hostname(), cpuModel: c[0]?.model ?? 'unknown', cores: c.length,
    memoryBytes: totalmem(), kernel: release(), node: process.version,
    postfix: postfixVersion ?? sh('/usr/sbin/postconf', ['-dh', 'mail_version']),
    tmpFilesystem: sh('df', ['--output=fstype,source', tmp])?.split('\n').slice(-1)[0]?.trim() ?? null,
    openFilesLimit: sh('/bin/sh', ['-c', 'ulimit -n']),
    loadavgAtStart: readFileSync('/proc/loadavg', 'utf8').trim(),
    gitCommit: sh('git', ['rev-parse', 'HEAD'], root), gitDirty: (sh('git', ['status', '--porcelain', '--', 'src'], root) ?? '') !== '',
    sharedMachine: 'load generator (smtp-source + probe), server under test and smtp-sink all share these cores',
  };
}

/** The block device holding `path` as named in /proc/diskstats (e.g. vda), or null. */
export function diskOf(path) {
  const dev = statSync(path).dev;
  const major = Math.floor(dev / 256) & 0xfff, minor = (dev & 0xff) | ((dev >> 12) & 0xfff00);
  for (const line of readFileSync('/proc/diskstats', 'utf8').split('\n')) {
    const f = line.trim().split(/\s+/);
    if (Number(f[0]) === major && Number(f[1]) === minor) return f[2];
  }
  return null;
}

/** { writesCompleted, flushesCompleted } of a device from /proc/diskstats (flushes: kernel >= 5.5). */
export function diskStats(name) {
  if (!name) return null;
  for (const line of readFileSync('/proc/diskstats', 'utf8').split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f[2] === name) return { writesCompleted: Number(f[7]), flushesCompleted: f.length >= 20 ? Number(f[18]) : null };
  }
  return null;
}

/** 4 KB appends, each followed by fdatasync, for up to `seconds` (at most 2,000): latency in ms. */
export function fsyncLatency(dir, seconds = 2) {
  const file = join(dir, 'fsync-latency.bin');
  const fd = openSync(file, 'w');
  const buf = Buffer.alloc(4096, 0x61);
  const ms = [];
  const end = Date.now() + seconds * 1000;
  try {
    while (Date.now() < end && ms.length < 2000) {
      const t = process.hrtime.bigint();
      writeSync(fd, buf);
      fdatasyncSync(fd);
      ms.push(Number(process.hrtime.bigint() - t) / 1e6);
    }
  } finally { closeSync(fd); rmSync(file, { force: true }); }
  ms.sort((a, b) => a - b);
  const q = (p) => ms[Math.min(ms.length - 1, Math.floor(p * ms.length))];
  return { samples: ms.length, medianMs: q(0.5), p90Ms: q(0.9), p99Ms: q(0.99), command: '4 KB write(2) + fdatasync(2) in a loop, appending to one file (in the bench process)' };
}

/** Durable write bandwidth with dd: oflag=dsync (every 1 MB block durable) and conv=fdatasync (one flush). */
export function ddBandwidth(dir, mb = 128) {
  const file = join(dir, 'dd.bin');
  const one = (extra) => {
    const args = ['if=/dev/zero', `of=${file}`, 'bs=1M', `count=${mb}`, ...extra];
    const out = String(spawnSync('dd', args, { encoding: 'utf8', timeout: 120000 }).stderr ?? '');
    rmSync(file, { force: true });
    const m = /(\d+) bytes.*copied, ([\d.]+) s/.exec(out);
    return { command: `dd ${args.join(' ').replace(file, '<tmp>/dd.bin')}`, mbPerSec: m ? Number(m[1]) / 1e6 / Number(m[2]) : null, raw: out.trim().split('\n').slice(-1)[0] };
  };
  return { dsync: one(['oflag=dsync']), fdatasync: one(['conv=fdatasync']) };
}

/**
 * The shim on its own: `procs` processes, each doing `calls` 4 KB write + fdatasync, with the
 * given delay, in both modes. Parallel should take about calls x delay, serialized procs times that.
 */
export async function shimSelfTest(shim, dir, { delayUs = 2000, procs = 4, calls = 50 } = {}) {
  // Every child waits for a common start time (so Node's start-up is not measured), then loops and
  // prints its start and end (ms epoch); the span is from the first start to the last end.
  const script = `const fs=require('fs');const fd=fs.openSync(process.argv[1],'w');const b=Buffer.alloc(4096);const at=Number(process.argv[2]);while(Date.now()<at){}` +
    `const t0=Date.now();for(let i=0;i<${calls};i++){fs.writeSync(fd,b);fs.fdatasyncSync(fd);}console.log(t0+' '+Date.now());`;
  const out = {};
  for (const mode of ['parallel', 'serialized']) {
    shim.set(delayUs, mode);
    const cdir = join(dir, `selftest-${mode}`);
    const env = { ...process.env, ...shim.env(cdir) };
    const at = Date.now() + 2000;
    const spans = await Promise.all(Array.from({ length: procs }, (_, i) => new Promise((res) => {
      const p = spawn(process.execPath, ['-e', script, join(dir, `selftest-${mode}-${i}.bin`), String(at)], { env, stdio: ['ignore', 'pipe', 'ignore'] });
      let o = '';
      p.stdout.on('data', (d) => { o += d; });
      p.on('exit', () => res(o.trim().split(' ').map(Number)));
    })));
    const ok = spans.filter((x) => x.length === 2 && x.every(Number.isFinite));
    out[mode] = { seconds: ok.length ? (Math.max(...ok.map((x) => x[1])) - Math.min(...ok.map((x) => x[0]))) / 1000 : null, counterDir: cdir };
    for (let i = 0; i < procs; i++) rmSync(join(dir, `selftest-${mode}-${i}.bin`), { force: true });
  }
  shim.set(0, 'parallel');
  return { delayUs, procs, calls, expectParallelS: (calls * delayUs) / 1e6, expectSerializedS: (procs * calls * delayUs) / 1e6, ...out };
}
