/**
 * The power-loss simulation of the fault suite: builds the synclog shim (test/torture/shim/
 * synclog.c, compiled with cc at run time), snapshots a data directory as durable, and after a
 * SIGKILL rewrites the store's files (queue.db*, spool/, quarantine/) into what the disk would
 * hold had the power gone at that moment, from the shim's log. What the model is, and what it is
 * not, is stated in power-loss.test.ts's header; `simulatePowerLoss` implements it:
 *
 * - A file is known by its identity "<inode>-<birth time ns>" (the shim logs the same).
 * - A directory entry survives only if the directory's last fsync listed it with that identity
 *   (before this phase: the baseline's listing); else the entry is removed (a file, or a whole
 *   directory). Unlinks are taken as durable at once (their files are gone from the disk anyway).
 * - A file keeps at most the size its last fsync/fdatasync covered (baseline: its size then;
 *   never synced: 0 bytes) and, except the main database file, nothing from the first byte
 *   written or truncated after that sync on (the WAL and body files are written front to back,
 *   so that cut is the unsynced tail; SQLite stops reading a WAL at the first missing frame).
 * - queue.db keeps its overwrites: SQLite writes it only in checkpoints, after fsyncing the WAL,
 *   and resets the WAL only after fsyncing queue.db, so unsynced pages of it are copies of
 *   frames the WAL still holds; growth past its synced size is cut.
 */
import { spawnSync } from 'node:child_process';
import { lstatSync, readdirSync, rmSync, statSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../../helpers/postline-process.js';

/** The shim's source in the repository (not copied to dist/). */
export const SHIM_SOURCE = join(PROJECT_ROOT, 'test', 'torture', 'shim', 'synclog.c');

/** Why the shim cannot be built here (no C compiler), or undefined when it can. */
export function shimUnavailable(): string | undefined {
  const r = spawnSync('cc', ['--version'], { stdio: 'ignore' });
  if (r.error || r.status !== 0) return 'no C compiler (cc) to build the synclog LD_PRELOAD shim: install gcc (see .ci/run)';
  return undefined;
}

/** Compiles the shim into `dir`. @returns the path of synclog.so. @throws Error with cc's output. */
export function buildShim(dir: string): string {
  const out = join(dir, 'synclog.so');
  const r = spawnSync('cc', ['-O2', '-shared', '-fPIC', '-o', out, SHIM_SOURCE, '-ldl'], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`cc synclog.c failed: ${r.error?.message ?? ''}${r.stderr}`);
  return out;
}

/** The identity the shim logs for a file: inode and birth time (0 when the file system has none). */
function identity(path: string, withBirth: boolean): string {
  const st = lstatSync(path, { bigint: true });
  return `${st.ino}-${withBirth ? st.birthtimeNs : 0n}`;
}

/** True for the parts of a data directory the store owns (store.ts): the ones the model rewrites. */
const inScope = (rel: string): boolean => /^(queue\.db.*|spool|quarantine)(\/|$)/.test(rel);

/** A data directory taken as durable: every listing and every size, after a clean stop. */
export interface Baseline {
  readonly dirs: Map<string, { id: string; entries: Map<string, string> }>;
  readonly sizes: Map<string, number>;
}

/** Snapshots the store's files in `dataDir` (see Baseline). */
export function snapshot(dataDir: string): Baseline {
  const dirs: Baseline['dirs'] = new Map();
  const sizes = new Map<string, number>();
  const walk = (abs: string, rel: string): void => {
    const entries = new Map<string, string>();
    for (const name of readdirSync(abs)) {
      const r = rel ? `${rel}/${name}` : name;
      if (!inScope(r)) continue;
      const p = join(abs, name);
      const st = lstatSync(p);
      entries.set(name, identity(p, true));
      if (st.isDirectory()) walk(p, r);
      else sizes.set(identity(p, true), st.size);
    }
    dirs.set(rel, { id: identity(abs, true), entries });
  };
  walk(dataDir, '');
  return { dirs, sizes };
}

/** What the log held and what the simulation did to the data directory. */
export interface PowerLossReport {
  lines: number;
  fileSyncs: number;
  dirSyncs: number;
  writes: number;
  /** sync()/syncfs() and partial sync_file_range calls (logged, not credited). */
  uncredited: number;
  pids: number;
  /** Entries removed because no directory fsync covered them, by kind (body, tmp, wal, other). */
  removed: Record<string, number>;
  /** Files cut short, and the bytes cut, by kind (wal, db, shm, body, other). */
  truncated: Record<string, number>;
  bytesCut: Record<string, number>;
  /** True when the file system gave no birth times (files known by inode number only). */
  inodeOnly: boolean;
}

const kindOf = (rel: string): string =>
  rel === 'queue.db' ? 'db' : rel === 'queue.db-wal' ? 'wal' : rel === 'queue.db-shm' ? 'shm'
    : rel.startsWith('spool/tmp/') ? 'tmp' : rel.startsWith('spool/') ? 'body' : 'other';

const bump = (m: Record<string, number>, k: string, n = 1): void => { m[k] = (m[k] ?? 0) + n; };

/**
 * Rewrites the store's files in `dataDir` to a state a power loss could leave (see the header),
 * from `logText` (the shim's log of this phase, of one process or of several run one after the
 * other: a plain crash and restart before the power loss) over `base` (the durable state before it).
 * @returns what the log held and what was removed or cut.
 */
export function simulatePowerLoss(dataDir: string, base: Baseline, logText: string): PowerLossReport {
  const lastSync = new Map<string, { seq: number; size: number }>();
  const dirListings = new Map<number, Map<string, string>>();
  const lastDir = new Map<string, number>();
  const mods = new Map<string, Array<{ seq: number; off: number }>>();
  const rep: PowerLossReport = { lines: 0, fileSyncs: 0, dirSyncs: 0, writes: 0, uncredited: 0, pids: 0, removed: {}, truncated: {}, bytesCut: {}, inodeOnly: false };
  // Each process numbers its lines from 1; a later process (a restart after a plain crash) comes
  // after the earlier one ended, so its numbers continue after the earlier one's highest.
  let epoch = 0;
  let maxSeq = 0;
  for (const line of logText.split('\n')) {
    if (!line) continue;
    rep.lines++;
    const f = line.split(' ');
    if (f[0] === 'P') epoch = maxSeq;
    const seq = epoch + Number(f[1]);
    if (f[0] !== 'P') maxSeq = Math.max(maxSeq, seq);
    const id = f[2]!;
    if (id?.endsWith('-0') && f[0] !== 'P' && f[0] !== 'A') rep.inodeOnly = true;
    switch (f[0]) {
      case 'P': rep.pids++; break;
      case 'S': {
        rep.fileSyncs++;
        const prev = lastSync.get(id);
        if (!prev || prev.seq < seq) lastSync.set(id, { seq, size: Number(f[3]) });
        break;
      }
      case 'E': {
        let m = dirListings.get(seq);
        if (!m) dirListings.set(seq, (m = new Map()));
        m.set(f.slice(3).join(' '), id);
        break;
      }
      case 'D': {
        rep.dirSyncs++;
        if ((lastDir.get(id) ?? -1) < seq) lastDir.set(id, seq);
        if (!dirListings.has(seq)) dirListings.set(seq, new Map()); // an empty directory
        break;
      }
      case 'W':
      case 'T': {
        if (f[0] === 'W') rep.writes++;
        let list = mods.get(id);
        if (!list) mods.set(id, (list = []));
        list.push({ seq, off: Number(f[3]) });
        break;
      }
      default: rep.uncredited++;
    }
  }
  const birth = !rep.inodeOnly;
  const idOf = (p: string): string => identity(p, birth);
  const baseId = (s: string): string => (birth ? s : s.replace(/-\d+$/, '-0'));
  const baseSizes = new Map([...base.sizes].map(([k, v]) => [baseId(k), v]));

  const walk = (abs: string, rel: string): void => {
    const dirId = idOf(abs);
    const seq = lastDir.get(dirId);
    const b = base.dirs.get(rel);
    const durable = seq !== undefined ? dirListings.get(seq)! : b && baseId(b.id) === dirId ? new Map([...b.entries].map(([k, v]) => [k, baseId(v)])) : new Map<string, string>();
    for (const name of readdirSync(abs).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      if (!inScope(r)) continue;
      const p = join(abs, name);
      const id = idOf(p);
      const isDir = lstatSync(p).isDirectory();
      if (durable.get(name) !== id) {
        rmSync(p, { recursive: true, force: true });
        bump(rep.removed, isDir ? 'dir' : kindOf(r));
        continue;
      }
      if (isDir) { walk(p, r); continue; }
      const size = statSync(p).size;
      const synced = lastSync.get(id);
      const syncSeq = synced?.seq ?? 0;
      let keep = Math.min(size, synced?.size ?? baseSizes.get(id) ?? 0);
      if (r !== 'queue.db') {
        for (const m of mods.get(id) ?? []) if (m.seq > syncSeq && m.off < keep) keep = Math.max(0, m.off);
      }
      if (keep < size) {
        truncateSync(p, keep);
        bump(rep.truncated, kindOf(r));
        bump(rep.bytesCut, kindOf(r), size - keep);
      }
    }
  };
  walk(dataDir, '');
  return rep;
}
