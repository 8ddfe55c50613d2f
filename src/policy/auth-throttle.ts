/**
 * AUTH failure throttling across sessions (RFC 4954 has none; this is what fail2ban and Postfix's
 * anvil approximate).
 *
 * Owns: failures counted per (username, address), per address and per network (/64, /24) over a
 * sliding window; the growing delay before a failure is answered; the temporary refusal (454 4.7.0,
 * before any password hashing) once a count reaches its limit; and the cap on concurrent password
 * checks (scrypt runs on the libuv pool, 4 threads shared with fs and dns.lookup: spool writes must
 * keep flowing while guesses arrive; waiting checks of clients without failures, by address and
 * network, go first, so a real user is not queued behind a guessing burst). An unknown username costs and counts the same as a known one
 * (the verifier hashes a dummy); success clears the pair's count only, so a locked pair never locks
 * the user out from another address. Passwords are never kept or logged here.
 */
import { R, withText } from '../core/reply.js';
import type { AuthVerdict, PolicyReply } from '../core/session.js';
import { Anvil } from './anvil.js';
import { networkKey } from './ip.js';

/** limits.auth (config/schema.ts). */
export interface AuthLimits {
  readonly windowMs: number;
  readonly maxFailuresPerUserAddress: number;
  readonly maxFailuresPerAddress: number;
  readonly maxFailuresPerNetwork: number;
  readonly failureDelayMs: number;
  readonly maxFailureDelayMs: number;
  readonly maxConcurrentChecks: number;
  readonly maxQueuedChecks: number;
}

const throttled: PolicyReply = { ...withText(R.authTempFail, 'Too many authentication failures, try again later'), check: 'auth-throttle' };
const busy: PolicyReply = { ...withText(R.authTempFail, 'Authentication service busy, try again later'), check: 'auth-busy' };

export class AuthThrottle {
  private table: Anvil;
  private running = 0;
  /** Checks waiting for a slot: clients without failures (address and network) first. */
  private readonly clean: (() => void)[] = [];
  private readonly suspect: (() => void)[] = [];
  /** Password checks started / refused before hashing (for figures and tests). */
  readonly stats = { checks: 0, refused: 0, maxRunning: 0 };

  /**
   * @param limits read at each attempt (live reload); windowMs is fixed at construction.
   * @param maxEntries keys kept (LRU).
   */
  constructor(private readonly limits: () => AuthLimits, private readonly prefixes: () => { v4: number; v6: number },
    maxEntries: number, private readonly now: () => number = Date.now, private readonly sleep = defaultSleep) {
    this.table = new Anvil(1, limits().windowMs, maxEntries);
  }

  /** Keys held (pairs, addresses, networks). */
  get size(): number {
    return this.table.size;
  }

  /**
   * One AUTH attempt from `address` as `username`; `verify` checks the password (scrypt).
   * @returns ok, or not ok (535) after the failure delay, or not ok with a 454 4.7.0 reply (throttled
   *          or too many checks waiting; no hashing was done). Rejects only when `verify` does.
   */
  async attempt(address: string, username: string, verify: () => Promise<boolean>): Promise<AuthVerdict> {
    const l = this.limits();
    if (l.windowMs !== this.table.windowMs) this.table = new Anvil(1, l.windowMs, 1_000_000);
    const p = this.prefixes();
    const kPair = `u:${username.toLowerCase()}\0${address}`;
    const kAddr = `a:${address}`;
    const kNet = `n:${networkKey(address, p.v4, p.v6)}`;
    const t = this.now();
    const fAddr = this.table.count(kAddr, 0, t);
    if (this.table.count(kPair, 0, t) >= l.maxFailuresPerUserAddress || fAddr >= l.maxFailuresPerAddress
      || this.table.count(kNet, 0, t) >= l.maxFailuresPerNetwork) {
      this.stats.refused++;
      await this.sleep(this.delay(l, fAddr));
      return { ok: false, reply: throttled };
    }
    const fNet = this.table.count(kNet, 0, t);
    if (this.running >= l.maxConcurrentChecks && this.clean.length + this.suspect.length >= l.maxQueuedChecks) {
      this.stats.refused++;
      return { ok: false, reply: busy };
    }
    // Counted as a failure before the check (a burst of parallel guesses cannot pass the limits
    // while their checks run); taken back from the address and network on success.
    const t1 = this.now();
    this.table.add(kPair, 0, t1);
    const n = this.table.add(kAddr, 0, t1);
    this.table.add(kNet, 0, t1);
    if (this.running >= l.maxConcurrentChecks) {
      await new Promise<void>((resolve) => (fAddr === 0 && fNet === 0 ? this.clean : this.suspect).push(resolve));
    }
    this.running++;
    this.stats.checks++;
    this.stats.maxRunning = Math.max(this.stats.maxRunning, this.running);
    let ok = false;
    try {
      ok = await verify();
    } finally {
      this.running--;
      (this.clean.shift() ?? this.suspect.shift())?.();
    }
    if (ok) {
      const t2 = this.now();
      this.table.delete(kPair);
      this.table.add(kAddr, 0, t2, -1);
      this.table.add(kNet, 0, t2, -1);
      return { ok: true };
    }
    await this.sleep(this.delay(l, n - 1));
    return { ok: false };
  }

  /** failureDelayMs doubled per earlier failure of the address, at most maxFailureDelayMs. */
  private delay(l: AuthLimits, earlier: number): number {
    if (l.failureDelayMs <= 0) return 0;
    return Math.min(l.maxFailureDelayMs, l.failureDelayMs * 2 ** Math.min(20, Math.max(0, earlier)));
  }
}

function defaultSleep(ms: number): Promise<void> {
  return ms > 0 ? new Promise((r) => setTimeout(r, ms)) : Promise.resolve();
}
