/** The options of the SQLite queue store (store.ts) and their defaults. */
import type { Clock } from '../../core/clock.js';
import { PostlineError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';

/** Default largest body stored inline in queue.db, bytes. */
export const DEFAULT_INLINE_MAX_BYTES = 128 * 1024;
/** Default size of the cache of freshly committed inline bodies, bytes. */
export const DEFAULT_BODY_CACHE_BYTES = 16 * 1024 * 1024;

/** Constructor options of SqliteQueueStore. */
export interface SqliteQueueStoreOptions {
  /** Directory that holds queue.db, spool/ and quarantine/ (created when missing, unless `create` is false). */
  readonly dataDir: string;
  /** false: open only an existing queue (queue.db present), never create one (the CLI). Default true (the server). */
  readonly create?: boolean;
  /** Free-space reserve, bytes: createBody refuses (452 4.3.1) below it (Postfix queue_minfree). A function is read at each check (live reload). */
  readonly minFreeBytes: number | (() => number);
  readonly logger: Logger;
  readonly clock?: Clock;
  /** Accepted for compatibility, ms (0..1000); batching is done by the writer thread (whatever arrives while it is busy). */
  readonly groupCommitWindowMs?: number;
  /** How long a statfs result is reused by the free-space check, ms. Default 1000. */
  readonly statfsCacheMs?: number;
  /** Largest body kept in memory and stored inline in queue.db, bytes; larger ones go to a file. 0 = always a file. Default 128 KiB. */
  readonly inlineMaxBytes?: number;
  /** Bytes of freshly committed inline bodies kept in memory for their first delivery. 0 = off. Default 16 MiB. */
  readonly bodyCacheBytes?: number;
  /** Caps queue.db at this many pages (PRAGMA max_page_count, 4 KiB each): beyond it commits fail with SQLITE_FULL (452 4.3.1). Default: no cap. */
  readonly maxDatabasePages?: number;
  /**
   * 'blocking' (default): open() returns after every row was checked (recovery.ts). 'background'
   * (the server): open() returns after spool/tmp is cleaned; the row and orphan checks run behind it,
   * so a large queue does not hold the listeners (`recovered()` resolves when they are done).
   */
  readonly recovery?: 'blocking' | 'background';
}

/**
 * Checks the options the store validates. @returns the inline limit and body cache size in bytes.
 * @throws PostlineError ERR_STORE_OPTIONS naming the bad option.
 */
export function checkStoreOptions(opts: SqliteQueueStoreOptions): { inlineMaxBytes: number; bodyCacheBytes: number } {
  const bad = (why: string): PostlineError => new PostlineError('ERR_STORE_OPTIONS', why, { temporary: false });
  if (!opts.dataDir) throw bad('dataDir is required');
  const reserve = typeof opts.minFreeBytes === 'function' ? opts.minFreeBytes() : opts.minFreeBytes;
  if (!Number.isFinite(reserve) || reserve < 0) throw bad('minFreeBytes must be >= 0');
  const windowMs = opts.groupCommitWindowMs ?? 0;
  if (!(windowMs >= 0 && windowMs <= 1000)) throw bad('groupCommitWindowMs must be 0..1000');
  const inlineMaxBytes = opts.inlineMaxBytes ?? DEFAULT_INLINE_MAX_BYTES;
  if (!Number.isSafeInteger(inlineMaxBytes) || inlineMaxBytes < 0 || inlineMaxBytes > 64 * 1024 * 1024) {
    throw bad('inlineMaxBytes must be an integer 0..67108864');
  }
  const bodyCacheBytes = opts.bodyCacheBytes ?? DEFAULT_BODY_CACHE_BYTES;
  if (!Number.isSafeInteger(bodyCacheBytes) || bodyCacheBytes < 0) throw bad('bodyCacheBytes must be an integer >= 0');
  if (opts.maxDatabasePages !== undefined && !(Number.isSafeInteger(opts.maxDatabasePages) && opts.maxDatabasePages > 0)) {
    throw bad('maxDatabasePages must be a positive integer');
  }
  return { inlineMaxBytes, bodyCacheBytes };
}
