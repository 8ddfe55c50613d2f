// The slowsync LD_PRELOAD shim (bench/shim/slowsync.c): compiled with cc into the run's temp dir,
// counts every fsync-family call per process (the fsyncs-per-message figure of both servers) and,
// in the slow-disk profiles, sleeps after each one. The delay and mode live in a small control
// file that every process mmaps, so the profile changes without restarting the servers.
import { execFileSync } from 'node:child_process';
import { chmodSync, closeSync, mkdirSync, openSync, readdirSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';

const FIELDS = ['fsync', 'fdatasync', 'syncfs', 'sync', 'sync_file_range', 'msync'];
const RECORD = 8 + 8 + 8 * FIELDS.length + 8 + 8 + 64; // struct slowsync_counts
const MAGIC = 0x534c4f5753594e43n;

export const MODES = { parallel: 0, serialized: 1 };

export class SlowSync {
  /** @param {{ src: string, dir: string }} o  src: slowsync.c; dir: temp dir for the .so, counters, control file. */
  constructor({ src, dir }) {
    this.src = src;
    this.dir = dir;
    this.so = join(dir, 'slowsync.so');
    this.ctl = join(dir, 'slowsync.ctl');
    this.lock = join(dir, 'slowsync.lock');
    this.delayUs = 0;
    this.mode = 'parallel';
  }

  /** Compiles the shim (throws with cc's output when it fails) and writes a zero delay. */
  build() {
    mkdirSync(this.dir, { recursive: true });
    this.command = `cc -O2 -Wall -shared -fPIC -o ${this.so} ${this.src} -ldl -lpthread`;
    execFileSync('cc', ['-O2', '-Wall', '-shared', '-fPIC', '-o', this.so, this.src, '-ldl', '-lpthread'], { stdio: ['ignore', 'pipe', 'pipe'] });
    writeFileSync(this.ctl, Buffer.alloc(8), { mode: 0o644 });
    writeFileSync(this.lock, '', { mode: 0o666 });
    // Postfix's daemons run as user postfix: they must read the control file, lock the lock file
    chmodSync(this.dir, 0o755); chmodSync(this.ctl, 0o644); chmodSync(this.lock, 0o666);
    this.set(0, 'parallel');
  }

  /** Sets the delay after each durable call (µs) and the mode, for every process at once. */
  set(delayUs, mode = 'parallel') {
    const b = Buffer.alloc(8);
    b.writeUInt32LE(delayUs, 0);
    b.writeUInt32LE(MODES[mode], 4);
    const fd = openSync(this.ctl, 'r+');
    try { writeSync(fd, b, 0, 8, 0); } finally { closeSync(fd); }
    this.delayUs = delayUs;
    this.mode = mode;
  }

  /** The environment that loads the shim, counting into a directory of its own per server. */
  env(counterDir) {
    mkdirSync(counterDir, { recursive: true });
    chmodSync(counterDir, 0o777); // and create their counter files here
    return { LD_PRELOAD: this.so, SLOWSYNC_DIR: counterDir, SLOWSYNC_CTL: this.ctl, SLOWSYNC_LOCK: this.lock };
  }
}

/**
 * Sums the counter files in a directory: { total, byCall: {fsync, ...}, byComm: {name: calls},
 * sleptMs, realMs, processes }. Files that are not (yet) a full record are skipped.
 */
export function readCounts(counterDir) {
  const out = { total: 0, byCall: Object.fromEntries(FIELDS.map((f) => [f, 0])), byComm: {}, sleptMs: 0, realMs: 0, processes: 0 };
  let names;
  try { names = readdirSync(counterDir); } catch { return out; }
  for (const n of names) {
    let b;
    try { b = readFileSync(join(counterDir, n)); } catch { continue; }
    if (b.length < RECORD || b.readBigUInt64LE(0) !== MAGIC) continue;
    out.processes++;
    let sum = 0;
    FIELDS.forEach((f, i) => { const v = Number(b.readBigUInt64LE(16 + 8 * i)); out.byCall[f] += v; sum += v; });
    out.total += sum;
    out.sleptMs += Number(b.readBigUInt64LE(16 + 8 * FIELDS.length)) / 1000;
    out.realMs += Number(b.readBigUInt64LE(24 + 8 * FIELDS.length)) / 1e6;
    const commRaw = b.subarray(32 + 8 * FIELDS.length, RECORD);
    const comm = commRaw.subarray(0, Math.max(0, commRaw.indexOf(0))).toString('latin1') || '?';
    if (sum) out.byComm[comm] = (out.byComm[comm] ?? 0) + sum;
  }
  return out;
}

/** b - a, for two readCounts() results. */
export function countsDelta(a, b) {
  const byComm = {};
  for (const k of new Set([...Object.keys(a.byComm), ...Object.keys(b.byComm)])) {
    const d = (b.byComm[k] ?? 0) - (a.byComm[k] ?? 0);
    if (d) byComm[k] = d;
  }
  return {
    total: b.total - a.total,
    byCall: Object.fromEntries(FIELDS.map((f) => [f, b.byCall[f] - a.byCall[f]]).filter(([, v]) => v)),
    byComm, sleptMs: b.sleptMs - a.sleptMs, realMs: b.realMs - a.realMs,
  };
}
