/**
 * What the scheduler knows about each destination (next-hop key) beyond single messages, like
 * Postfix's qmgr destination state: whether it is dead (the dead-destination cache) and how fast
 * its queue moves (to cap how much waits for it).
 *
 * Dead: a delivery whose every recipient came back `destination: 'unreachable'` (no host took a
 * connection and greeted) marks the destination dead for the retry schedule's delay after that
 * many consecutive failures (delivery.retry: 5 min, doubling up to the cap). While dead, rounds
 * defer its recipients at once without connecting ("delivery temporarily suspended", as Postfix
 * says). When the time is up ONE delivery probes; the others keep being deferred until it answers:
 * a handful of connections per backoff step, never one per message.
 *
 * Waiting cap: a slow or stalled destination must not fill the scheduler's active places with
 * messages waiting for its connections (head-of-line blocking). What it can take soon is its
 * connection count over the time one delivery takes there: the average of recent deliveries, or
 * the age of the oldest one still running when that is longer (a stalled host answers nothing,
 * so its capacity shrinks as the wait grows). A destination may have waiting `minWaiting` plus
 * `horizonMs` of that capacity; beyond it, rounds postpone its recipients (no attempt counted)
 * for about the time the queue ahead needs, and the excess already waiting is shed the same way.
 * Only a destination whose deliveries take a second or more is capped at all: a fast one (ms per
 * delivery) never is, even in a burst; one that stopped answering is within seconds.
 */
import { baseDelayMs, type RetryPolicy } from './backoff.js';
import type { Dispatcher } from './dispatcher.js';

/** What a round may do with a group for a destination now. */
export type Admission =
  | { readonly kind: 'go' }
  /** The dead time is over: this delivery is the probe (report its outcome). */
  | { readonly kind: 'probe' }
  /** Dead: defer without connecting. */
  | { readonly kind: 'suspended'; readonly reason: string; readonly until: number }
  /** Its probe is running: postpone (no attempt counted) until about when it will have answered. */
  | { readonly kind: 'wait'; readonly until: number };

interface DestState {
  /** Consecutive unreachable outcomes. */
  failures: number;
  deadUntil: number;
  reason: string;
  probing: boolean;
  probeStart: number;
  /** Recent delivery time, ms (exponentially weighted; undefined before the first one ended). */
  avgMs: number | undefined;
  /** Start times (ms) of the deliveries running now. */
  readonly running: number[];
  lastUsed: number;
}

export interface DestinationOptions {
  readonly retry: RetryPolicy;
  /** Connections per destination: a number, or per key (traffic shaping's concurrency). */
  readonly concurrency: number | ((key: string) => number);
  /** Waiting deliveries always allowed per destination (>= 1). */
  readonly minWaiting: number;
  /** Seconds of work at the recent rate a destination may have waiting, as ms. */
  readonly horizonMs: number;
  /** Destinations remembered at most (least recently used forgotten first). */
  readonly maxDestinations?: number;
}

/**
 * A destination is slow (its waiting capped) only when a delivery there takes SLOW_MS and
 * SLOW_FACTOR times the average delivery over all destinations (which our own load slows too).
 */
const SLOW_MS = 2000;
const SLOW_FACTOR = 5;
/** Weight of the newest delivery in the all-destinations average. */
const GLOBAL_WEIGHT = 0.02;
/** Weight of the newest delivery time in the average. */
const AVG_WEIGHT = 0.2;

export class DestinationBook {
  private readonly states = new Map<string, DestState>();
  private readonly max: number;
  /** Delivery time over all destinations (ms, weighted like avgMs): our own event-loop lag is in it too. */
  private globalAvgMs: number | undefined;

  constructor(private readonly o: DestinationOptions) {
    this.max = Math.max(16, o.maxDestinations ?? 100_000);
  }

  private state(key: string, now: number): DestState {
    let s = this.states.get(key);
    if (s) {
      // Map order is insertion order: re-insert to keep least recently used first.
      this.states.delete(key);
    } else {
      s = { failures: 0, deadUntil: 0, reason: '', probing: false, probeStart: 0, avgMs: undefined, running: [], lastUsed: now };
      if (this.states.size >= this.max) this.forgetOne();
    }
    s.lastUsed = now;
    this.states.set(key, s);
    return s;
  }

  private forgetOne(): void {
    for (const [k, s] of this.states) {
      if (s.probing || s.running.length > 0) continue;
      this.states.delete(k);
      return;
    }
  }

  /** May a delivery to `key` start at `now` (ms)? A 'probe' answer must be followed by report(). */
  admit(key: string, now: number): Admission {
    const s = this.states.get(key);
    if (!s || s.failures === 0) return { kind: 'go' };
    if (now < s.deadUntil) return { kind: 'suspended', reason: s.reason, until: s.deadUntil };
    // A probe that takes long (a silent host) is waited for in growing steps, not in a tight loop.
    if (s.probing) return { kind: 'wait', until: now + Math.max(5000, now - s.probeStart) };
    const st = this.state(key, now);
    st.probing = true;
    st.probeStart = now;
    return { kind: 'probe' };
  }

  /**
   * The outcome of a delivery to `key`: `unreachable` with the reason (no host could be reached),
   * or reached (a host answered, whatever it said). A reached destination is alive again.
   * @returns the time until which the destination is dead (ms), when this report made it so.
   */
  report(key: string, now: number, outcome: { unreachable: true; reason: string } | { unreachable: false }): number | undefined {
    const s = this.state(key, now);
    s.probing = false;
    if (!outcome.unreachable) {
      s.failures = 0;
      s.deadUntil = 0;
      s.reason = '';
      return undefined;
    }
    s.reason = outcome.reason;
    // Deliveries that were running side by side when it died count once: the dead time grows
    // only with failed probes (one backoff step each), not with concurrency.
    if (now < s.deadUntil) return undefined;
    s.failures++;
    s.deadUntil = now + baseDelayMs(s.failures, this.o.retry);
    return s.deadUntil;
  }

  /** Forgets every dead mark (an operator's flush: try now, like Postfix's flush re-enabling dead destinations). @returns how many were dead. */
  reviveAll(): number {
    let n = 0;
    for (const s of this.states.values()) {
      if (s.failures === 0) continue;
      n++;
      s.failures = 0;
      s.deadUntil = 0;
      s.reason = '';
    }
    return n;
  }

  /** A probe that never ran (cancelled at shutdown): let the next delivery probe. */
  probeCancelled(key: string): void {
    const s = this.states.get(key);
    if (s) s.probing = false;
  }

  /** A delivery to `key` starts (it got a connection slot). @returns its start time, for ended(). */
  began(key: string, now: number): number {
    this.state(key, now).running.push(now);
    return now;
  }

  /** The delivery that began at `start` ended (any outcome): feeds the average delivery time. */
  ended(key: string, start: number, now: number): void {
    const s = this.state(key, now);
    const i = s.running.indexOf(start);
    if (i >= 0) s.running.splice(i, 1);
    const ms = Math.max(0, now - start);
    s.avgMs = s.avgMs === undefined ? ms : s.avgMs + AVG_WEIGHT * (ms - s.avgMs);
    this.globalAvgMs = this.globalAvgMs === undefined ? ms : this.globalAvgMs + GLOBAL_WEIGHT * (ms - this.globalAvgMs);
  }

  /**
   * Deliveries per second `key` can take now (see the file comment); Infinity while deliveries
   * there take less than SLOW_MS (a burst of our own, with its event-loop lag, must not look
   * like a slow destination: only seconds per delivery do).
   */
  capacity(key: string, now: number): number {
    const s = this.states.get(key);
    if (!s) return Infinity;
    let ms = s.avgMs ?? 0;
    for (const t of s.running) ms = Math.max(ms, now - t);
    const c = typeof this.o.concurrency === 'number' ? this.o.concurrency : this.o.concurrency(key);
    // Slow means slow against the others too: a burst of our own makes every delivery slow alike.
    return ms < Math.max(SLOW_MS, SLOW_FACTOR * (this.globalAvgMs ?? 0)) ? Infinity : c / ms * 1000;
  }

  /** How many deliveries may wait for `key`'s connections (>= minWaiting). */
  waitingCap(key: string, now: number): number {
    const c = this.capacity(key, now);
    return c === Infinity ? Number.MAX_SAFE_INTEGER : this.o.minWaiting + Math.floor(c * this.o.horizonMs / 1000);
  }

  /**
   * How long a delivery postponed because `waiting` are ahead of it should wait (ms): about the
   * time the destination needs for them, between 1 s and the first retry delay.
   */
  postponeMs(key: string, waiting: number, now: number): number {
    const c = this.capacity(key, now);
    const ms = c === Infinity ? 1000 : (waiting + 1) / c * 1000;
    return Math.round(Math.min(this.o.retry.initialMs, Math.max(1000, ms)));
  }

  /** Dead destinations now (for `queue` commands, metrics and tests). */
  dead(now: number): { key: string; until: number; reason: string; failures: number }[] {
    const out: { key: string; until: number; reason: string; failures: number }[] = [];
    for (const [key, s] of this.states) if (s.failures > 0 && (s.deadUntil > now || s.probing)) out.push({ key, until: s.deadUntil, reason: s.reason, failures: s.failures });
    return out;
  }
}

/**
 * Head-of-line guard, also when no new round comes for a destination: whatever waits beyond
 * what a slow or silent destination can take soon is shed (its rounds postpone it, no attempt
 * counted), so its messages cannot keep the active places from mail for other destinations.
 */
export function shedSlow(dispatcher: Pick<Dispatcher, 'waitingKeys' | 'waitingFor' | 'shed'>, book: DestinationBook, now: number): void {
  for (const key of [...dispatcher.waitingKeys()]) {
    const waiting = dispatcher.waitingFor(key);
    const cap = book.waitingCap(key, now);
    if (waiting > cap) dispatcher.shed(key, cap);
  }
}
