/**
 * Failure mapping and the quarantine move of the SQLite queue store (store.ts).
 */
import { rename, writeFile } from 'node:fs/promises';
import { PostlineError, StoreError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import type { SpoolLayout } from './layout.js';

const DISK_FULL_CODES = new Set(['ENOSPC', 'EDQUOT', 'SQLITE_FULL']);
const isDiskFull = (e: unknown): boolean => DISK_FULL_CODES.has((e as NodeJS.ErrnoException | undefined)?.code ?? '');

/** Maps any failure to a StoreError (full for ENOSPC/EDQUOT/SQLITE_FULL; other PostlineErrors kept). */
export function toStoreError(err: unknown, what: string): PostlineError {
  if (err instanceof PostlineError) return err;
  if (isDiskFull(err)) return new StoreError(`${what}: disk full`, { full: true, cause: err });
  return new StoreError(`${what}: ${(err as Error)?.message ?? String(err)}`, { cause: err });
}

/**
 * Moves a message's body aside: a file into quarantine/, or a copy of an inline body there (its
 * BLOB is kept). A missing body is no error; others are logged. Never throws.
 */
export async function moveToQuarantine(layout: SpoolLayout, id: string, inline: Buffer | undefined, logger: Logger): Promise<void> {
  const moved = inline ? writeFile(layout.quarantinePath(id), inline) : rename(layout.bodyPath(id), layout.quarantinePath(id));
  await moved.catch((e: NodeJS.ErrnoException) => {
    if (e.code !== 'ENOENT') logger.error({ queueId: id, err: e.message }, 'cannot move body to quarantine');
  });
}
