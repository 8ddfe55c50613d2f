/**
 * Random bytes for identifiers (Message-IDs, MIME boundaries) taken from a pool filled by
 * node:crypto's CSPRNG 4 KiB at a time: the same bytes as randomBytes(n), without a call into
 * OpenSSL for every few bytes (as node's own randomUUID keeps a pool).
 */
import { randomBytes } from 'node:crypto';

const POOL = 4096;
let pool = randomBytes(POOL);
let used = 0;

/**
 * `n` (1..POOL) fresh random bytes. The view is never handed out again nor overwritten: a new pool
 * is allocated when this one is used up. @throws RangeError for n outside 1..4096.
 */
export function pooledRandomBytes(n: number): Buffer {
  if (!Number.isInteger(n) || n < 1 || n > POOL) throw new RangeError(`pooledRandomBytes: ${n} bytes (1..${POOL})`);
  if (used + n > POOL) {
    pool = randomBytes(POOL);
    used = 0;
  }
  const out = pool.subarray(used, used + n);
  used += n;
  return out;
}
