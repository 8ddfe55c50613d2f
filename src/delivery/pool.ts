/**
 * Outbound connection pool: reuse of idle SMTP sessions per next hop and a limit on parallel
 * connections in all (like Postfix's scache). Connections per destination are the scheduler's to
 * limit (its Dispatcher, from the traffic shaping rules): the pool follows it and caps per key only
 * when given `connectionsPerDestination` (an agent used on its own).
 *
 * RFCs: RFC 5321 4.5.3.2 / 4.1.1.5 (a reused session is RSET before the next transaction; that is
 * done by the caller). Owns: slots (a slot is one live connection, busy or idle), idle timers, the
 * messages-per-connection count, and the bounded wait for a slot. It opens no connections itself.
 */
import { SmtpClientError } from './client-error.js';

/** What the pool needs from a connection. */
export interface Poolable {
  readonly usable: boolean;
  /** Polite close (QUIT); never throws. */
  quit(): Promise<void>;
}

export interface PoolOptions {
  /** Live connections in all. */
  readonly maxConnections: number;
  /** Live connections per key (next hop); absent: no cap of its own (the scheduler caps). */
  readonly connectionsPerDestination?: number;
  /** How long an idle connection is kept, ms (0: never kept). */
  readonly idleTimeoutMs: number;
  /** Messages per connection before it is closed (a lease may bring its own, acquire's maxMessages). */
  readonly messagesPerConnection: number;
  /** Longest wait for a free slot, ms; then acquire rejects. */
  readonly maxWaitMs: number;
}

/** A slot held by one delivery. */
export interface PoolLease<T extends Poolable> {
  readonly key: string;
  /** The connection: an idle one given for reuse, or the one the caller `attach`ed. */
  readonly conn: T | undefined;
  /** True when `conn` came from the idle list (the caller should RSET it first). */
  readonly reused: boolean;
  /** Records the connection the caller opened in this slot (replacing a failed one). */
  attach(conn: T | undefined): void;
  /**
   * Frees the slot. `sent` counts a message; `keep` parks a usable connection for reuse. Idempotent.
   * @returns when the connection it closes (not kept, or used up) is closed (QUIT answered or
   *   timed out): a caller that waits for it never has more sockets open than deliveries running.
   */
  release(opts: { sent: boolean; keep: boolean }): Promise<void>;
}

interface Idle<T> { conn: T; timer: NodeJS.Timeout; since: number }
interface Waiter<T extends Poolable> { key: string; max: number; resolve: (l: PoolLease<T>) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }

export class ConnectionPool<T extends Poolable> {
  private readonly live = new Map<string, number>();
  private total = 0;
  private readonly idle = new Map<string, Idle<T>[]>();
  private readonly uses = new WeakMap<T, number>();
  private waiters: Waiter<T>[] = [];
  private closed = false;

  /** @throws RangeError when a limit is not a positive number. */
  constructor(private readonly opts: PoolOptions) {
    if (!(opts.maxConnections > 0) || (opts.connectionsPerDestination !== undefined && !(opts.connectionsPerDestination > 0)) || !(opts.messagesPerConnection > 0)) {
      throw new RangeError('pool limits must be positive');
    }
  }

  /** Live connections (busy and idle) for a key, or in all. */
  size(key?: string): number { return key === undefined ? this.total : (this.live.get(key) ?? 0); }
  /** Idle connections for a key. */
  idleCount(key: string): number { return this.idle.get(key)?.length ?? 0; }
  /** Idle connections of every key (metrics). O(next hops with idle connections). */
  idleTotal(): number {
    let n = 0;
    for (const list of this.idle.values()) n += list.length;
    return n;
  }

  /**
   * Takes a slot for `key`: an idle connection when there is one, else room to open one. Waits
   * (FIFO) at most `maxWaitMs` when the limits are reached.
   * @param maxMessages messages per connection for this lease (the destination's rule); default
   *   the pool's messagesPerConnection. An idle connection that has sent as many is closed, not given.
   * @throws SmtpClientError kind 'pool' on timeout, on abort or after close().
   */
  acquire(key: string, signal?: AbortSignal, maxMessages?: number): Promise<PoolLease<T>> {
    if (this.closed) return Promise.reject(new SmtpClientError('pool', 'none', 'connection pool is closed'));
    const max = maxMessages !== undefined && maxMessages > 0 ? maxMessages : this.opts.messagesPerConnection;
    const now = this.tryTake(key, max);
    if (now) return Promise.resolve(now);
    return new Promise((resolve, reject) => {
      const w: Waiter<T> = {
        key, max, resolve, reject,
        timer: setTimeout(() => this.dropWaiter(w, `no connection slot for ${key} within ${this.opts.maxWaitMs} ms (too many concurrent deliveries)`), this.opts.maxWaitMs),
      };
      this.waiters.push(w);
      signal?.addEventListener('abort', () => this.dropWaiter(w, 'delivery aborted while waiting for a connection slot'), { once: true });
    });
  }

  /** Quits idle connections and rejects waiters; busy ones are quit when released. */
  async close(): Promise<void> {
    this.closed = true;
    for (const w of this.waiters.splice(0)) { clearTimeout(w.timer); w.reject(new SmtpClientError('pool', 'none', 'connection pool is closed')); }
    const all: Promise<void>[] = [];
    for (const [key, list] of this.idle) {
      for (const i of list.splice(0)) { clearTimeout(i.timer); this.forget(key); all.push(i.conn.quit()); }
    }
    await Promise.all(all);
  }

  private dropWaiter(w: Waiter<T>, why: string): void {
    const i = this.waiters.indexOf(w);
    if (i < 0) return;
    this.waiters.splice(i, 1);
    clearTimeout(w.timer);
    w.reject(new SmtpClientError('pool', 'none', why));
  }

  private tryTake(key: string, max: number): PoolLease<T> | undefined {
    const list = this.idle.get(key);
    while (list && list.length > 0) {
      const i = list.pop()!;
      clearTimeout(i.timer);
      if (i.conn.usable && (this.uses.get(i.conn) ?? 0) < max) return this.lease(key, i.conn, true, max);
      void i.conn.quit(); // closes it (an idle one that got a 421 is not usable but may be open; or it is used up)
      this.forget(key);
    }
    const perKey = this.opts.connectionsPerDestination;
    if (perKey !== undefined && (this.live.get(key) ?? 0) >= perKey) return undefined;
    if (this.total >= this.opts.maxConnections && !this.evictOldestIdle()) return undefined;
    this.live.set(key, (this.live.get(key) ?? 0) + 1);
    this.total++;
    return this.lease(key, undefined, false, max);
  }

  /** Closes the longest-idle connection of any key to make room; false when none is idle. */
  private evictOldestIdle(): boolean {
    let best: { key: string; idx: number; since: number } | undefined;
    for (const [key, list] of this.idle) {
      list.forEach((i, idx) => { if (!best || i.since < best.since) best = { key, idx, since: i.since }; });
    }
    if (!best) return false;
    const [i] = this.idle.get(best.key)!.splice(best.idx, 1);
    clearTimeout(i!.timer);
    this.forget(best.key);
    void i!.conn.quit();
    return true;
  }

  private forget(key: string): void {
    const n = (this.live.get(key) ?? 1) - 1;
    if (n <= 0) this.live.delete(key);
    else this.live.set(key, n);
    this.total--;
  }

  private lease(key: string, conn: T | undefined, reused: boolean, max: number): PoolLease<T> {
    let current = conn;
    let done = false;
    const pool = this;
    return {
      key, reused,
      get conn() { return current; },
      attach(c) { current = c; },
      release({ sent, keep }) {
        if (done) return Promise.resolve();
        done = true;
        return pool.giveBack(key, current, sent, keep, max);
      },
    };
  }

  private giveBack(key: string, conn: T | undefined, sent: boolean, keep: boolean, max: number): Promise<void> {
    if (conn && sent) this.uses.set(conn, (this.uses.get(conn) ?? 0) + 1);
    const used = conn ? (this.uses.get(conn) ?? 0) : 0;
    const reusable = conn !== undefined && keep && conn.usable && !this.closed && used < max;
    if (conn && reusable) {
      const w = this.waiters.find((x) => x.key === key && used < x.max);
      if (w) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        clearTimeout(w.timer);
        w.resolve(this.lease(key, conn, true, w.max));
        return Promise.resolve();
      }
      if (this.opts.idleTimeoutMs > 0) {
        const list = this.idle.get(key) ?? [];
        this.idle.set(key, list);
        const entry: Idle<T> = { conn, since: Date.now(), timer: setTimeout(() => this.expire(key, entry), this.opts.idleTimeoutMs) };
        entry.timer.unref();
        list.push(entry);
        this.wake();
        return Promise.resolve();
      }
    }
    const closed = conn ? conn.quit() : Promise.resolve();
    this.forget(key);
    this.wake();
    return closed;
  }

  private expire(key: string, entry: Idle<T>): void {
    const list = this.idle.get(key);
    const i = list?.indexOf(entry) ?? -1;
    if (i < 0) return;
    list!.splice(i, 1);
    this.forget(key);
    void entry.conn.quit();
    this.wake();
  }

  /** Gives freed room to waiters in FIFO order. */
  private wake(): void {
    for (const w of [...this.waiters]) {
      const l = this.tryTake(w.key, w.max);
      if (!l) continue;
      this.waiters.splice(this.waiters.indexOf(w), 1);
      clearTimeout(w.timer);
      w.resolve(l);
    }
  }
}
