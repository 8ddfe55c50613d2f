/**
 * Connection limits shared by every listener of a server: limits.maxConnections in all and
 * limits.maxConnectionsPerIp per client address, so a client cannot multiply its share by using
 * several ports (25, 587, 465). The address counted is the client's as the session knows it: the
 * one a PROXY header names (not the proxy's), and after XCLIENT the new one (ConnectionSlot.move).
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

  /** Counts a connection from `ip` as a slot (released once, moved to another address by XCLIENT); undefined when over a limit. */
  acquire(ip: string): ConnectionSlot | undefined {
    return this.tryAcquire(ip) ? new ConnectionSlot(this, ip) : undefined;
  }

  /** Counted connections (all listeners). */
  count(): number {
    return this.total;
  }

  /** Connections counted for `ip` now. */
  countFor(ip: string): number {
    return this.perIp.get(ip) ?? 0;
  }

  /** Moves one connection from `from` to `to` when `to` is under limits.maxConnectionsPerIp; the total is unchanged. */
  move(from: string, to: string): boolean {
    if (from === to) return true;
    const n = this.perIp.get(to) ?? 0;
    if (n >= this.limits().maxConnectionsPerIp) return false;
    this.perIp.set(to, n + 1);
    const m = (this.perIp.get(from) ?? 1) - 1;
    if (m > 0) this.perIp.set(from, m);
    else this.perIp.delete(from);
    return true;
  }
}

/** One counted connection. */
export class ConnectionSlot {
  private released = false;

  constructor(private readonly limiter: ConnectionLimiter, private ip: string) {}

  /** The address it is counted under. */
  get address(): string {
    return this.ip;
  }

  /** Counts it under `ip` instead (XCLIENT ADDR). @returns false (and it stays where it was) when `ip` is at its limit. */
  move(ip: string): boolean {
    if (this.released || !this.limiter.move(this.ip, ip)) return false;
    this.ip = ip;
    return true;
  }

  /** Releases it (once; later calls do nothing). */
  release(): void {
    if (this.released) return;
    this.released = true;
    this.limiter.release(this.ip);
  }
}
