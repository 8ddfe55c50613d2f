/**
 * Crash recovery of the SQLite queue store, run by `open()`.
 *
 * Owns the rules: leftovers in spool/tmp are deleted (never acknowledged: 250 comes only after the
 * row commit); every row must validate and have a body of exactly its recorded size (an inline
 * BLOB in `bodies`, else a body file; the recorded size less the prepended header fields of
 * migration 8), or it is quarantined with a log line; body files without a row (crash between rename and row commit,
 * or between row delete and unlink) are deleted. One bad entry never stops the start.
 */
import { readdir, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../../core/log.js';
import { isQueueId } from '../../core/queue-id.js';
import { SpoolLayout } from './layout.js';
import { prependBytes, toMessage } from './rows.js';
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

/** Runs all recovery steps. Never throws for a single bad entry; I/O errors on directories do throw. */
export async function recover(deps: RecoveryDeps): Promise<RecoveryReport> {
  const report: RecoveryReport = { tmpRemoved: 0, quarantined: 0, orphansRemoved: 0, ok: 0 };
  report.tmpRemoved = await removeTmpLeftovers(deps);
  const ids = deps.stmts.allMessages.all().map((r) => r.id);
  for (let i = 0; i < ids.length; i += PARALLEL) {
    const results = await Promise.all(ids.slice(i, i + PARALLEL).map((id) => checkEntry(deps, id)));
    for (const ok of results) ok ? report.ok++ : report.quarantined++;
  }
  report.orphansRemoved = await removeOrphans(deps);
  return report;
}

async function removeTmpLeftovers(deps: RecoveryDeps): Promise<number> {
  let n = 0;
  for (const name of await readdir(deps.layout.tmpDir)) {
    await unlink(join(deps.layout.tmpDir, name)).catch(() => undefined);
    n++;
  }
  if (n) deps.logger.warn({ count: n }, 'removed unfinished bodies left in spool/tmp');
  return n;
}

/** Validates one row and its body (inline or file); quarantines it when damaged. Returns true when healthy. */
async function checkEntry(deps: RecoveryDeps, id: string): Promise<boolean> {
  let reason: string | undefined;
  try {
    const row = deps.stmts.getMessage.get(id);
    if (!row) return true; // gone meanwhile
    const msg = toMessage(row, deps.stmts.getRecipients.all(id));
    const want = msg.size - prependBytes(row); // the stored body, without the prepended fields
    const inline = deps.stmts.inlineLength.get(id);
    if (inline && inline.len !== null) {
      if (inline.len < want) reason = `inline body truncated (${inline.len} of ${want} bytes)`;
      else if (inline.len !== want) reason = `inline body size ${inline.len} differs from recorded ${want} bytes`;
      return reason === undefined ? true : (await deps.quarantine(id, reason), false);
    }
    const st = await stat(deps.layout.bodyPath(msg.id)).catch((e: NodeJS.ErrnoException) => e);
    if (st instanceof Error) reason = st.code === 'ENOENT' ? 'body file missing' : `body file unreadable: ${st.code}`;
    else if (st.size < want) reason = `body file truncated (${st.size} of ${want} bytes)`;
    else if (st.size !== want) reason = `body file size ${st.size} differs from recorded ${want} bytes`;
  } catch (err) {
    reason = `invalid queue entry: ${(err as Error).message}`;
  }
  if (reason === undefined) return true;
  await deps.quarantine(id, reason);
  return false;
}

/** Deletes committed-area body files that no row (quarantined or not) refers to. */
async function removeOrphans(deps: RecoveryDeps): Promise<number> {
  const known = new Set(deps.stmts.allIds.all().map((r) => r.id));
  let n = 0;
  for (const bucket of SpoolLayout.bucketNames()) {
    const dir = join(deps.layout.spoolDir, bucket);
    const names = await readdir(dir).catch(() => [] as string[]);
    for (const name of names) {
      if (known.has(name)) continue;
      if (!isQueueId(name)) continue; // not ours; leave it for an operator
      await unlink(join(dir, name)).catch(() => undefined);
      deps.logger.warn({ queueId: name }, 'removed body file without a queue entry (never acknowledged)');
      n++;
    }
  }
  return n;
}
