/**
 * Crash recovery of the SQLite queue store, run by `open()`.
 *
 * Owns the rules: leftovers in spool/tmp are deleted (never acknowledged: 250 comes only after the
 * row commit); every row must have a body of exactly its recorded size (an inline BLOB in
 * `bodies`, else a body file; the recorded size less the prepended header fields of migration 8),
 * or it is quarantined with a log line; body files without a row (crash between rename and row
 * commit, or between row delete and unlink) are deleted. One bad entry never stops the start.
 *
 * Scale (issue 14: a million queued must not slow the start): rows are read in chunks of CHUNK
 * in ID order (inline bodies: their length from SQL, the blob never reaches JavaScript; body
 * files: stat'ed), orphans found by listing the bucket folders and asking for each file's row.
 * The server runs these checks behind the open (`recovery: 'background'`), so listeners open at
 * once; a row that does not parse is quarantined when it is first read (store.get), as before.
 */
import { readdir, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../../core/log.js';
import { isQueueId } from '../../core/queue-id.js';
import { SpoolLayout } from './layout.js';
import type { ReadStatements } from './statements.js';

/** What recovery did, for the log and tests. */
export interface RecoveryReport {
  tmpRemoved: number;
  quarantined: number;
  orphansRemoved: number;
  /** Rows that passed the checks. */
  ok: number;
}

export interface RecoveryDeps {
  readonly layout: SpoolLayout;
  readonly stmts: ReadStatements;
  readonly logger: Logger;
  readonly quarantine: (id: string, reason: string) => Promise<void>;
}

const PARALLEL = 64;
const CHUNK = 2000;

/** When the row checks run: before open() returns (tests, the CLI), or behind it (the server). */
export interface RecoveryOptions {
  /** Body files younger than this (ms since epoch: the open) are never orphans (a commit may be under way). */
  readonly openedAt: number;
  /** Asked between chunks: stop early (the store is closing). */
  readonly stopping?: () => boolean;
}

/**
 * The recovery of an open (store.open): 'blocking' runs every step before it resolves; 'background'
 * cleans spool/tmp, then resolves with the row and orphan checks still running (`checks`; a
 * failure there is logged). `done` gets the report either way.
 */
export async function startRecovery(
  deps: RecoveryDeps, mode: 'blocking' | 'background', dataDir: string, stopping: () => boolean, done: (r: RecoveryReport) => void,
): Promise<{ checks: Promise<void> }> {
  if (mode === 'blocking') {
    // Nothing is committed before open() returns: every body file without a row is an orphan.
    const r = await recover(deps, { openedAt: Infinity });
    done(r);
    deps.logger.info({ dataDir, ...r }, 'queue store opened');
    return { checks: Promise.resolve() };
  }
  const openedAt = Date.now(); // compared with body files' mtimes
  const tmpRemoved = await removeTmpLeftovers(deps);
  deps.logger.info({ dataDir, tmpRemoved }, 'queue store opened; checking its rows in the background');
  const checks = checkRows(deps, { openedAt, stopping }).then((r) => {
    done({ ...r, tmpRemoved });
    deps.logger.info({ ...r, tmpRemoved, ms: Date.now() - openedAt }, 'queue rows checked');
  }, (err: unknown) => deps.logger.error({ err }, 'queue row check failed'));
  return { checks };
}

/**
 * Runs all recovery steps (removeTmpLeftovers first, then checkRows). Never throws for a single
 * bad entry; I/O errors on directories do throw.
 */
export async function recover(deps: RecoveryDeps, o: RecoveryOptions): Promise<RecoveryReport> {
  const tmpRemoved = await removeTmpLeftovers(deps);
  return { ...(await checkRows(deps, o)), tmpRemoved };
}

/**
 * The row and orphan checks, in chunks of CHUNK rows with a turn of the event loop between them,
 * so they may run while the server already serves (1,000,000 rows take a few seconds). Runs
 * after removeTmpLeftovers. Never throws for a single bad entry.
 */
export async function checkRows(deps: RecoveryDeps, o: RecoveryOptions): Promise<RecoveryReport> {
  const report: RecoveryReport = { tmpRemoved: 0, quarantined: 0, orphansRemoved: 0, ok: 0 };
  const stop = o.stopping ?? (() => false);
  let after = '';
  for (let round = 0; round < 1_000_000 && !stop(); round++) {
    const rows = deps.stmts.inlineLengths.all(after, CHUNK);
    if (rows.length === 0) break;
    after = rows[rows.length - 1]!.id;
    for (const r of rows) {
      if (r.len === r.want) continue;
      await deps.quarantine(r.id, r.len < r.want ? `inline body truncated (${r.len} of ${r.want} bytes)` : `inline body size ${r.len} differs from recorded ${r.want} bytes`);
      report.quarantined++;
    }
    if (rows.length < CHUNK) break;
    await new Promise<void>((r) => setImmediate(r));
  }
  after = '';
  for (let round = 0; round < 1_000_000 && !stop(); round++) {
    const rows = deps.stmts.fileBodyRows.all(after, CHUNK);
    if (rows.length === 0) break;
    after = rows[rows.length - 1]!.id;
    for (let i = 0; i < rows.length; i += PARALLEL) {
      const results = await Promise.all(rows.slice(i, i + PARALLEL).map((r) => checkFile(deps, r.id, r.want)));
      for (const ok of results) if (!ok) report.quarantined++;
    }
    if (rows.length < CHUNK) break;
  }
  report.ok = deps.stmts.countMessages.get()?.n ?? 0;
  if (!stop()) report.orphansRemoved = await removeOrphans(deps, o.openedAt);
  return report;
}

/** Checks the body file of a row whose body is not inline; quarantines it when missing or of the wrong size. */
async function checkFile(deps: RecoveryDeps, id: string, want: number): Promise<boolean> {
  let reason: string | undefined;
  const st = await stat(deps.layout.bodyPath(id)).catch((e: NodeJS.ErrnoException) => e);
  if (st instanceof Error) reason = st.code === 'ENOENT' ? 'body file missing' : `body file unreadable: ${st.code}`;
  else if (st.size < want) reason = `body file truncated (${st.size} of ${want} bytes)`;
  else if (st.size !== want) reason = `body file size ${st.size} differs from recorded ${want} bytes`;
  if (reason === undefined) return true;
  await deps.quarantine(id, reason);
  return false;
}

/** Deletes unfinished bodies in spool/tmp (never acknowledged). Must run before the store takes new bodies. */
export async function removeTmpLeftovers(deps: RecoveryDeps): Promise<number> {
  let n = 0;
  for (const name of await readdir(deps.layout.tmpDir)) {
    await unlink(join(deps.layout.tmpDir, name)).catch(() => undefined);
    n++;
  }
  if (n) deps.logger.warn({ count: n }, 'removed unfinished bodies left in spool/tmp');
  return n;
}

/** Deletes committed-area body files older than `openedAt` (ms) that no row (quarantined or not) refers to. */
async function removeOrphans(deps: RecoveryDeps, openedAt: number): Promise<number> {
  let n = 0;
  for (const bucket of SpoolLayout.bucketNames()) {
    const dir = join(deps.layout.spoolDir, bucket);
    const names = await readdir(dir).catch(() => [] as string[]);
    for (const name of names) {
      if (!isQueueId(name)) continue; // not ours; leave it for an operator
      if (deps.stmts.hasRow.get(name)) continue;
      // A file from after the open belongs to a commit under way (its row comes after the file).
      const st = await stat(join(dir, name)).catch(() => undefined);
      if (!st || (Number.isFinite(openedAt) && st.mtimeMs >= openedAt - 1000)) continue;
      if (deps.stmts.hasRow.get(name)) continue;
      await unlink(join(dir, name)).catch(() => undefined);
      deps.logger.warn({ queueId: name }, 'removed body file without a queue entry (never acknowledged)');
      n++;
    }
  }
  return n;
}
