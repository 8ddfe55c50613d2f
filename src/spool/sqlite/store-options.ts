/** The options of the SQLite queue store (store.ts) and their defaults. */
import type { Clock } from '../../core/clock.js';
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
