/**
 * Secrets Postline makes for itself (the keys of signed return paths, tracking and unsubscribe
 * links): 32 random bytes in a file of the data directory, mode 0600, made at first use and read
 * as they are afterwards, so links and return paths stay valid across restarts.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, linkSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { PostlineError } from './errors.js';

/** Bytes of a made secret. */
export const SECRET_BYTES = 32;

/**
 * The secret kept in `dataDir/name` (made when missing: written to a temp file, fsynced, then
 * linked into place so two processes never make two different ones).
 * @returns the file's bytes (at least 16).
 * @throws PostlineError ERR_SECRET_FILE when it cannot be read or made, or is shorter than 16 bytes.
 */
export function loadOrCreateSecret(dataDir: string, name: string): Buffer {
  const path = join(dataDir, name);
  const read = (): Buffer | undefined => {
    try {
      return readFileSync(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new PostlineError('ERR_SECRET_FILE', `cannot read ${path}: ${(err as Error).message}`, { temporary: false, cause: err });
    }
  };
  let key = read();
  if (!key) {
    const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    try {
      const fd = openSync(tmp, 'wx', 0o600);
      try {
        writeSync(fd, randomBytes(SECRET_BYTES));
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      try {
        linkSync(tmp, path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
    } catch (err) {
      throw new PostlineError('ERR_SECRET_FILE', `cannot make ${path}: ${(err as Error).message}`, { temporary: false, cause: err });
    } finally {
      try { unlinkSync(tmp); } catch { /* already gone */ }
    }
    key = read();
  }
  if (!key || key.length < 16) throw new PostlineError('ERR_SECRET_FILE', `${path} holds fewer than 16 bytes`, { temporary: false });
  return key;
}
