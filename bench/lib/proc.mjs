// Process accounting from /proc: CPU time and memory of a server's whole process tree.
// Postfix runs as a master and many children (smtpd, cleanup, qmgr, smtp, ...); Postline is one
// process with threads. Both are measured the same way: every process descending from a root pid.
import { readdirSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';

const CLK_TCK = 100; // Linux USER_HZ; /proc/<pid>/stat times are in these ticks
const PAGE = 4096;

/** Parses /proc/<pid>/stat; null when the process is gone. */
export function readStat(pid) {
  let text;
  try { text = readFileSync(`/proc/${pid}/stat`, 'utf8'); } catch { return null; }
  const close = text.lastIndexOf(')');
  const comm = text.slice(text.indexOf('(') + 1, close);
  const f = text.slice(close + 2).split(' '); // f[0] is field 3 (state)
  return {
    pid, comm, ppid: Number(f[1]),
    utime: Number(f[11]), stime: Number(f[12]), cutime: Number(f[13]), cstime: Number(f[14]),
    rssBytes: Number(f[21]) * PAGE,
  };
}

/** Every live pid in the tree rooted at rootPid (root included). */
export function treePids(rootPid) {
  const children = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const st = readStat(Number(name));
    if (!st) continue;
    if (!children.has(st.ppid)) children.set(st.ppid, []);
    children.get(st.ppid).push(st.pid);
  }
  const out = [];
  const stack = [rootPid];
  while (stack.length && out.length < 100000) {
    const p = stack.pop();
    out.push(p);
    for (const c of children.get(p) ?? []) stack.push(c);
  }
  return out;
}

/**
 * CPU consumed so far by the tree, in ms: user+system time of every live process plus the
 * children-time of each (processes that already exited and were reaped by a tree member).
 * The difference of two snapshots is the CPU the server spent in between. byName splits it.
 */
export function cpuSnapshot(rootPid) {
  let ticks = 0;
  const byName = {};
  for (const pid of treePids(rootPid)) {
    const st = readStat(pid);
    if (!st) continue;
    const own = st.utime + st.stime;
    const reaped = st.cutime + st.cstime;
    ticks += own + reaped;
    byName[st.comm] = (byName[st.comm] ?? 0) + own * 1000 / CLK_TCK;
    if (reaped) byName['(exited children)'] = (byName['(exited children)'] ?? 0) + reaped * 1000 / CLK_TCK;
  }
  return { ms: ticks * 1000 / CLK_TCK, byName };
}

export function cpuDelta(a, b) {
  const byName = {};
  for (const k of new Set([...Object.keys(a.byName), ...Object.keys(b.byName)])) {
    const d = (b.byName[k] ?? 0) - (a.byName[k] ?? 0);
    if (Math.abs(d) >= 1) byName[k] = Math.round(d);
  }
  return { ms: b.ms - a.ms, byName };
}

async function memOf(pid) {
  // smaps_rollup gives Rss and Pss (shared pages divided among the processes sharing them),
  // which is the fair figure for a multi-process server like Postfix.
  try {
    const t = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8');
    const rss = /\nRss:\s+(\d+) kB/.exec(t);
    const pss = /\nPss:\s+(\d+) kB/.exec(t);
    return { rss: rss ? Number(rss[1]) * 1024 : 0, pss: pss ? Number(pss[1]) * 1024 : 0 };
  } catch {
    const st = readStat(pid);
    return st ? { rss: st.rssBytes, pss: st.rssBytes } : { rss: 0, pss: 0 };
  }
}

/** Sum of RSS and PSS over the tree now. */
export async function memSnapshot(rootPid) {
  let rss = 0, pss = 0, processes = 0;
  for (const pid of treePids(rootPid)) {
    const m = await memOf(pid);
    rss += m.rss; pss += m.pss;
    if (m.rss) processes++;
  }
  return { rss, pss, processes };
}

/** Samples the tree's memory every intervalMs until stop(); returns peaks and the last sample. */
export function startMemSampler(rootPid, intervalMs = 100) {
  let running = true;
  const peak = { rss: 0, pss: 0, processes: 0 };
  let samples = 0;
  let last = null;
  const loop = (async () => {
    while (running) {
      const m = await memSnapshot(rootPid);
      samples++;
      last = m;
      if (m.rss > peak.rss) peak.rss = m.rss;
      if (m.pss > peak.pss) peak.pss = m.pss;
      if (m.processes > peak.processes) peak.processes = m.processes;
      if (!running) break;
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  })();
  return {
    get peak() { return peak; },
    async stop() {
      running = false;
      await loop;
      return { peak, samples, last };
    },
  };
}

export const MiB = 1024 * 1024;
