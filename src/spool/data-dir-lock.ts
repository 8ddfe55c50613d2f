/**
 * One server per data directory: `dataDir/postline.pid` is created exclusively at start and removed
 * at stop. A pid file left by a crash (its process is gone, or is not a Postline) is taken over.
 * The lock is taken before the store runs its crash recovery, so a second server can never clean
 * up the spool files of a running one.
 */
import { openSync, writeSync, closeSync, readFileSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { PostlineError } from '../core/errors.js';

export interface DataDirLock {
  readonly file: string;
  /** Removes the pid file (only when it still names this process). Never throws. */
  release(): void;
}

function isPostlineProcess(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) return false;
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    return /postline/i.test(readFileSync(`/proc/${pid}/cmdline`, 'utf8'));
  } catch {
    return true; // alive, and no /proc to tell: assume it is one
  }
}

/**
 * Takes the data directory lock.
 * @throws PostlineError ERR_DATA_DIR_LOCKED when another live Postline holds it.
 */
export function lockDataDir(dataDir: string): DataDirLock {
  const file = join(dataDir, 'postline.pid');
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(file, 'wx', 0o644);
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      return {
        file,
        release: () => {
          try {
            if (Number(readFileSync(file, 'utf8').trim()) === process.pid) unlinkSync(file);
          } catch { /* already gone */ }
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    let holder = NaN;
    try { holder = Number(readFileSync(file, 'utf8').trim()); } catch { /* vanished: retry */ }
    if (isPostlineProcess(holder)) {
      throw new PostlineError('ERR_DATA_DIR_LOCKED', `another Postline (pid ${holder}) is running on ${dataDir}; stop it first or use another dataDir`, { temporary: false });
    }
    try { unlinkSync(file); } catch { /* someone else took it over */ }
  }
  throw new PostlineError('ERR_DATA_DIR_LOCKED', `cannot take the lock ${file}`, { temporary: false });
}
