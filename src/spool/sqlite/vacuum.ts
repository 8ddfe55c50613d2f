/**
 * Giving disk space back (issue 14: queue.db never shrank, 453 MB with 0 messages left). SQLite
 * keeps freed pages in its freelist unless auto_vacuum is on; with `auto_vacuum = INCREMENTAL`
 * the writer thread returns them in steps (`incrementalStep`, up to 32 MiB a second, only
 * after a second without writes), so the file shrinks after a drain without a full VACUUM stalling commits. New
 * databases are made that way; an older one is converted at open when it is small (a VACUUM of
 * up to 64 MiB takes well under a second), else `postline queue vacuum` does it with the server
 * stopped. `journal_size_limit` makes the WAL file shrink back after a checkpoint too.
 */
import type Database from 'better-sqlite3';
import type { Logger } from '../../core/log.js';

/** auto_vacuum value for INCREMENTAL (PRAGMA auto_vacuum). */
const INCREMENTAL = 2;
/** A database up to this size is converted to incremental vacuum at open (bytes). */
const CONVERT_AT_OPEN_MAX_BYTES = 64 * 1024 * 1024;
/** WAL file size kept after a checkpoint (bytes). */
export const JOURNAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024;

const bytesOf = (db: Database.Database): number =>
  (db.pragma('page_count', { simple: true }) as number) * (db.pragma('page_size', { simple: true }) as number);

/**
 * Before migrations, on the main connection: a new database gets incremental vacuum (it must be
 * set before the first table); an older small one is converted with a VACUUM; a large one is
 * left as it is with a warning naming the command. Never throws for a failed conversion (logged).
 */
export function prepareVacuum(db: Database.Database, logger: Logger): void {
  db.pragma(`journal_size_limit = ${JOURNAL_SIZE_LIMIT_BYTES}`);
  if ((db.pragma('auto_vacuum', { simple: true }) as number) === INCREMENTAL) return;
  const tables = (db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE type = 'table'").get() as { n: number }).n;
  if (tables === 0) {
    db.pragma('auto_vacuum = INCREMENTAL');
    return;
  }
  const bytes = bytesOf(db);
  if (bytes > CONVERT_AT_OPEN_MAX_BYTES) {
    logger.warn({ bytes }, 'queue.db does not give freed space back (auto_vacuum off); run `postline queue vacuum` once with the server stopped');
    return;
  }
  try {
    db.pragma('auto_vacuum = INCREMENTAL');
    db.exec('VACUUM');
    logger.info({ before: bytes, after: bytesOf(db) }, 'queue.db switched to incremental vacuum');
  } catch (err) {
    logger.warn({ err }, 'cannot switch queue.db to incremental vacuum; it keeps its freed pages');
  }
}

/** A full VACUUM that also switches to incremental vacuum. @returns bytes before and after. @throws SqliteError. */
export function vacuumNow(db: Database.Database): { before: number; after: number } {
  const before = bytesOf(db);
  db.pragma('auto_vacuum = INCREMENTAL');
  db.exec('VACUUM');
  db.pragma('wal_checkpoint(TRUNCATE)');
  return { before, after: bytesOf(db) };
}

/**
 * On the writer's connection between batches: when freed pages are more than 1 MiB and 5% of
 * the file, gives back up to `maxPages` of them (one short write transaction). @returns pages freed.
 * @throws SqliteError.
 */
export function incrementalStep(db: Database.Database, maxPages = 2048): number {
  if ((db.pragma('auto_vacuum', { simple: true }) as number) !== INCREMENTAL) return 0;
  const free = db.pragma('freelist_count', { simple: true }) as number;
  const pages = db.pragma('page_count', { simple: true }) as number;
  const pageSize = db.pragma('page_size', { simple: true }) as number;
  if (free * pageSize < 1024 * 1024 || free < pages * 0.05) return 0;
  const n = Math.min(free, Math.max(1, Math.floor(maxPages)));
  db.pragma(`incremental_vacuum(${n})`);
  return n;
}
