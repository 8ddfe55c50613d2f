// Calibration of the fsync counter: one untimed run per server with the shim counting (no delay)
// while strace -f -c counts the same calls as syscalls over every process of the server, and the
// device's flush counter in /proc/diskstats moves (that one is machine-wide: other processes on
// the machine add to it, so it is an upper bound, and ext4 may merge several fsyncs into one
// journal commit, so it can also be lower).
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { treePids } from './proc.mjs';
import { readCounts, countsDelta } from './slowsync.mjs';
import { diskStats } from './machine.mjs';
import { runOnce } from './load.mjs';

const SYSCALLS = ['fsync', 'fdatasync', 'syncfs', 'sync', 'sync_file_range', 'msync'];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Parses strace -c output: { syscall: calls }. */
function parseStraceSummary(text) {
  const out = {};
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    // % time, seconds, usecs/call, calls, [errors], syscall
    if (f.length >= 5 && /^\d/.test(f[0]) && SYSCALLS.includes(f[f.length - 1])) out[f[f.length - 1]] = Number(f[3]);
  }
  return out;
}

/**
 * One calibration run of `server` at `point` (count fixed): shim delta, strace counts, disk flushes.
 * @returns { server, point, messages, shim: {total, byCall, byComm}, strace: {calls, byCall, command}, disk }
 */
export async function calibrateServer(ctx, server, sink, point, { disk }) {
  const pids = treePids(server.rootPid);
  const out = join(ctx.tmp, `strace-${server.name}.txt`);
  const args = ['-f', '-c', '-e', `trace=${SYSCALLS.join(',')}`, '-o', out, ...pids.flatMap((p) => ['-p', String(p)])];
  const st = spawn('strace', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  ctx.children.add(st);
  let err = '';
  st.stderr.on('data', (d) => { err = (err + d).slice(-2000); });
  await sleep(1500); // attach to every process (and their threads) before the load starts
  const d0 = diskStats(disk);
  const c0 = readCounts(ctx.counterDir(server));
  const r = await runOnce(ctx, server, sink, point, 'calibrate');
  const c1 = readCounts(ctx.counterDir(server));
  const d1 = diskStats(disk);
  const exited = new Promise((res) => st.once('exit', res));
  st.kill('SIGINT');
  await Promise.race([exited, sleep(10000)]);
  ctx.children.delete(st);
  let byCall = {};
  try { byCall = parseStraceSummary(readFileSync(out, 'utf8')); } catch { /* strace failed: see error */ }
  const shim = countsDelta(c0, c1);
  return {
    server: server.name, point: r.command, messages: r.messages, error: r.error,
    shim: { total: shim.total, byCall: shim.byCall, byComm: shim.byComm },
    strace: { total: Object.values(byCall).reduce((a, b) => a + b, 0), byCall, command: `strace ${args.slice(0, 6).join(' ')} -p <each of ${pids.length} pids>`, error: Object.keys(byCall).length ? null : err.trim().slice(-300) },
    disk: d0 && d1 ? { device: disk, flushes: d1.flushesCompleted != null ? d1.flushesCompleted - d0.flushesCompleted : null, writes: d1.writesCompleted - d0.writesCompleted } : null,
  };
}
