/**
 * On-disk layout of the SQLite queue store:
 *
 *   ${dataDir}/queue.db                 the queue database (WAL mode)
 *   ${dataDir}/spool/tmp/<queueId>      bodies being written (removed at open after a crash)
 *   ${dataDir}/spool/<bb>/<queueId>     committed bodies; <bb> is a 2-char bucket
 *   ${dataDir}/quarantine/<queueId>     bodies of damaged entries, kept for an operator
 *
 * The bucket is characters 7-8 of the queue ID, the part of its timestamp that changes about every
 * second and wraps about every 17 minutes (32^3 ms x 32): the messages of one group commit land in
 * one bucket, so the batch needs one directory fsync, not one per message (measured: random buckets
 * cost about one directory fsync per message), while 1024 buckets in rotation keep directories small.
 * All buckets are created (and the spool directory fsynced) at open, so a commit only ever has to
 * fsync the bucket directory its body was renamed into.
 */
import { mkdir, open, readdir } from 'node:fs/promises';
import { join } from 'node:path';

const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/** Paths of one store. */
export class SpoolLayout {
  readonly dbPath: string;
  readonly spoolDir: string;
  readonly tmpDir: string;
  readonly quarantineDir: string;

  constructor(readonly dataDir: string) {
    this.dbPath = join(dataDir, 'queue.db');
    this.spoolDir = join(dataDir, 'spool');
    this.tmpDir = join(this.spoolDir, 'tmp');
    this.quarantineDir = join(dataDir, 'quarantine');
  }

  /** The bucket directory of a queue ID. */
  bucketDir(id: string): string {
    return join(this.spoolDir, id.slice(6, 8));
  }

  bodyPath(id: string): string {
    return join(this.bucketDir(id), id);
  }

  tmpPath(id: string): string {
    return join(this.tmpDir, id);
  }

  quarantinePath(id: string): string {
    return join(this.quarantineDir, id);
  }

  /** Every bucket directory name ('00'..'ZZ', 1024 of them). */
  static bucketNames(): string[] {
    const out: string[] = [];
    for (const a of ALPHABET) for (const b of ALPHABET) out.push(a + b);
    return out;
  }

  /**
   * Creates the data, spool, tmp, quarantine and bucket directories, then fsyncs the parents
   * whose entries changed. @throws NodeJS.ErrnoException (EACCES, ENOSPC...).
   */
  async ensureDirs(): Promise<void> {
    const created = await mkdir(this.tmpDir, { recursive: true });
    await mkdir(this.quarantineDir, { recursive: true });
    const have = new Set(await readdir(this.spoolDir));
    let added = created !== undefined;
    for (const name of SpoolLayout.bucketNames()) {
      if (have.has(name)) continue;
      await mkdir(join(this.spoolDir, name));
      added = true;
    }
    if (added) {
      await syncDir(this.spoolDir);
      await syncDir(this.dataDir);
    }
  }
}

/** fsyncs a directory so the entries created or renamed in it survive a crash (async fs). */
export async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
