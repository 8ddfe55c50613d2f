/**
 * Connection limits shared by every listener of a server: limits.maxConnections in all and
 * limits.maxConnectionsPerIp per client address, so a client cannot multiply its share by using
 * several ports (25, 587, 465).
 */
import type { PostlineConfig } from '../config/schema.js';

export class ConnectionLimiter {
  private readonly perIp = new Map<string, number>();
  private total = 0;

  /** @param limits read at each connection, so a reload that replaces them takes effect. */
  constructor(private readonly limits: () => Pick<PostlineConfig['limits'], 'maxConnections' | 'maxConnectionsPerIp'>) {}

  /** Counts a connection from `ip` when both limits allow it. @returns false when it must be refused. */
  tryAcquire(ip: string): boolean {
    const l = this.limits();
    const n = this.perIp.get(ip) ?? 0;
    if (this.total >= l.maxConnections || n >= l.maxConnectionsPerIp) return false;
    this.total++;
    this.perIp.set(ip, n + 1);
    return true;
  }

  /** Releases a connection counted by tryAcquire. */
  release(ip: string): void {
    this.total = Math.max(0, this.total - 1);
    const n = (this.perIp.get(ip) ?? 1) - 1;
    if (n > 0) this.perIp.set(ip, n);
    else this.perIp.delete(ip);
  }

  /** Counted connections (all listeners). */
  count(): number {
    return this.total;
  }
}
