/**
 * Group commit for the SQLite queue store (DESIGN.md convention 5: batch commits, never skip them).
 *
 * Owns: batching. Commits that arrive within one window (a setImmediate tick, or `windowMs`)
 * share one fsync of each touched directory and ONE database transaction. While a batch is being
 * flushed, new arrivals gather for the next one, so under load batches grow by themselves.
 */

/** Counters exposed for tests and metrics. */
export interface GroupCommitStats {
  /** Jobs that committed. */
  commits: number;
  /** Jobs that failed (directory fsync or transaction error). */
  failures: number;
  /** Database transactions run. */
  transactions: number;
  /** Directory fsyncs done. */
  dirSyncs: number;
  /** Largest number of jobs in one transaction. */
  largestBatch: number;
}

interface Job<T> {
  readonly row: T;
  readonly dirs: readonly string[];
  resolve(): void;
  reject(err: unknown): void;
}

export interface GroupCommitOptions<T> {
  /** Extra wait (ms) before a batch is flushed; 0 = the next setImmediate tick. */
  readonly windowMs: number;
  /** fsyncs one directory (async). */
  readonly syncDir: (dir: string) => Promise<void>;
  /** Writes all rows in one synchronous database transaction; throws to fail them all. */
  readonly runTransaction: (rows: readonly T[]) => void;
}

/** Batches `submit` calls into shared directory fsyncs and one transaction per batch. */
export class GroupCommitter<T> {
  readonly stats: GroupCommitStats = { commits: 0, failures: 0, transactions: 0, dirSyncs: 0, largestBatch: 0 };
  private pending: Job<T>[] = [];
  private scheduled = false;
  private flushing: Promise<void> | undefined;

  constructor(private readonly opts: GroupCommitOptions<T>) {}

  /**
   * Queues one row whose body lives in `dirs` (directories to fsync before the transaction).
   * Resolves once the row is committed; rejects with the fsync or transaction error.
   */
  submit(row: T, dirs: readonly string[]): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.pending.push({ row, dirs, resolve, reject });
      this.schedule();
    });
  }

  /** Resolves when every job submitted so far is settled. */
  async drain(): Promise<void> {
    for (let i = 0; i < 1000 && (this.pending.length || this.flushing || this.scheduled); i++) {
      if (this.flushing) await this.flushing;
      else await new Promise<void>((r) => setImmediate(r));
    }
  }

  private schedule(): void {
    if (this.scheduled || this.flushing) return;
    this.scheduled = true;
    const run = (): void => {
      this.scheduled = false;
      this.flushing = this.flush().finally(() => {
        this.flushing = undefined;
        if (this.pending.length) this.schedule();
      });
    };
    if (this.opts.windowMs > 0) setTimeout(run, this.opts.windowMs);
    else setImmediate(run);
  }

  private async flush(): Promise<void> {
    const batch = this.pending;
    this.pending = [];
    const failedDirs = await this.syncDirs(batch);
    const ready: Job<T>[] = [];
    for (const job of batch) {
      const bad = job.dirs.find((d) => failedDirs.has(d));
      if (bad !== undefined) this.fail(job, failedDirs.get(bad));
      else ready.push(job);
    }
    if (!ready.length) return;
    try {
      this.runTransaction(ready);
    } catch (err) {
      if (ready.length === 1) this.fail(ready[0], err);
      else this.retryOneByOne(ready); // one bad row must not sink its neighbours
      return;
    }
    this.stats.largestBatch = Math.max(this.stats.largestBatch, ready.length);
  }

  /** Runs one transaction for `jobs` and resolves them; throws (rolled back) on failure. */
  private runTransaction(jobs: readonly Job<T>[]): void {
    this.opts.runTransaction(jobs.map((j) => j.row));
    this.stats.transactions++;
    this.stats.commits += jobs.length;
    for (const job of jobs) job.resolve();
  }

  private retryOneByOne(jobs: readonly Job<T>[]): void {
    for (const job of jobs) {
      try {
        this.runTransaction([job]);
      } catch (err) {
        this.fail(job, err);
      }
    }
  }

  /** fsyncs each distinct directory once, in parallel; returns the ones that failed. */
  private async syncDirs(batch: readonly Job<T>[]): Promise<Map<string, unknown>> {
    const dirs = new Set<string>();
    for (const job of batch) for (const d of job.dirs) dirs.add(d);
    const failed = new Map<string, unknown>();
    await Promise.all([...dirs].map(async (d) => {
      try {
        await this.opts.syncDir(d);
        this.stats.dirSyncs++;
      } catch (err) {
        failed.set(d, err);
      }
    }));
    return failed;
  }

  private fail(job: Job<T>, err: unknown): void {
    this.stats.failures++;
    job.reject(err);
  }
}
