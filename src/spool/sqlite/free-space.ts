/**
 * Free space on the queue's filesystem for the free-space reserve (limits.minFreeBytes): one
 * statfs per `cacheMs` at most, since every MAIL FROM and API request asks.
 */
import { statfs } from 'node:fs/promises';
import type { Clock } from '../../core/clock.js';

export class FreeSpace {
  private cache: { at: number; bytes: number } | undefined;

  /** @param cacheMs how long an answer is reused (ms). */
  constructor(private readonly dir: string, private readonly clock: Clock, private readonly cacheMs: number) {}

  /** Free bytes available to us (statfs bavail * bsize), at most cacheMs old. @throws the statfs error. */
  async bytes(): Promise<number> {
    const c = this.cache;
    const now = this.clock.now();
    if (c && now - c.at >= 0 && now - c.at < this.cacheMs) return c.bytes;
    const s = await statfs(this.dir);
    const bytes = Number(s.bavail) * Number(s.bsize);
    this.cache = { at: now, bytes };
    return bytes;
  }
}
