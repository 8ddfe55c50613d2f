/**
 * Suspended and throttled destinations (traffic shaping; shaping.ts asks, the operator commands
 * and the reply patterns set them). A suspension postpones a destination's mail without an attempt
 * until it ends (or until `queue resume`); a throttle multiplies its limits by a factor for a
 * while. Both end by themselves at their `until`, are logged when they start and end, and are
 * written to the DestinationStateStore so they survive a restart.
 *
 * Suspensions by a reply and throttles are kept per next-hop key; an operator's suspension is kept
 * by the destination name given (any form of config/delivery-shaping.ts DestinationMatch) and
 * applies to every destination that name matches.
 */
import { destinationText, parseDestinationMatch, type DestinationMatch } from '../config/delivery-shaping.js';
import { PostlineError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { DestinationStateRecord, DestinationStateStore } from './destination-store.js';
import { matchRank, needsNames, type DestinationFacts } from './shaping-rules.js';

/** One state in memory. */
export interface Hold extends DestinationStateRecord {
  readonly match: DestinationMatch;
  /** Queue IDs postponed by this suspension (made due again by `queue resume`); bounded. */
  readonly waiting: Set<string>;
  /** When the throttle factor last went down (signals of deliveries started before count once). */
  changedAt: number;
}

/** Queue IDs remembered per suspension at most. */
const MAX_WAITING = 100_000;
/** Lowest throttle factor (a limit is never cut below this share, nor below one connection). */
export const MIN_FACTOR = 0.05;
/** States kept at most (reply states of the least recently changed destinations are dropped first). */
const MAX_HOLDS = 10_000;

export class DestinationHolds {
  private readonly suspends = new Map<string, Hold>();
  private readonly throttles = new Map<string, Hold>();
  /** Operator suspensions whose name is not a next-hop key (matched one by one). */
  private named: Hold[] = [];

  constructor(private readonly o: { store: DestinationStateStore; logger: Logger; onResume?: (ids: readonly string[]) => void }) {}

  /** Reads the stored states (expired ones are removed). Never throws: a failed read is logged. */
  async load(now: number): Promise<number> {
    let rows: DestinationStateRecord[];
    try {
      rows = await this.o.store.list();
    } catch (err) {
      this.o.logger.error({ err }, 'cannot read the stored destination states; starting without them');
      return 0;
    }
    let n = 0;
    for (const r of rows) {
      const match = parseDestinationMatch(r.destination);
      if (!match || (r.until !== undefined && r.until <= now)) { this.forget(r.destination, r.kind); continue; }
      this.set({ ...r, match, waiting: new Set(), changedAt: r.since });
      n++;
    }
    if (n > 0) this.o.logger.info({ destinations: this.list(now).map((h) => `${h.destination} ${h.kind}`) }, 'suspended and throttled destinations loaded');
    return n;
  }

  /** True when some suspension needs the destination's MX host names to be decided. */
  wantsNames(): boolean { return this.named.some((h) => needsNames(h.match)); }

  /** The suspension applying to `f` at `now`, if any (ended ones are dropped first). */
  suspension(f: DestinationFacts, now: number): Hold | undefined {
    const byKey = this.live(this.suspends, f.key, now);
    if (byKey) return byKey;
    for (const h of this.named) {
      if (h.until !== undefined && h.until <= now) { this.end(this.suspends, h, now); return this.suspension(f, now); }
      if (matchRank(h.match, f) > 0) return h;
    }
    return undefined;
  }

  /** The throttle factor of next-hop `key` at `now` (1: not throttled). */
  factor(key: string, now: number): number {
    return this.live(this.throttles, key, now)?.factor ?? 1;
  }

  /** The throttle of `key`, if any. */
  throttle(key: string, now: number): Hold | undefined { return this.live(this.throttles, key, now); }

  /** Remembers that `id` waits for `h` to end. */
  note(h: Hold, id: string): void {
    if (h.waiting.size < MAX_WAITING) h.waiting.add(id);
  }

  /**
   * A reply matched a suspend pattern: suspends `key` until `until` (a longer running suspension
   * is kept; an operator's is never replaced). @returns the suspension when it is new or longer.
   */
  suspendByReply(key: string, until: number, reason: string, now: number): Hold | undefined {
    const cur = this.live(this.suspends, key, now);
    if (cur && (cur.source === 'operator' || (cur.until ?? Infinity) >= until)) return undefined;
    const h: Hold = { destination: key, match: { kind: 'key', key }, kind: 'suspend', source: 'reply', until, reason, since: now, waiting: cur?.waiting ?? new Set(), changedAt: now };
    this.set(h);
    this.persist(h);
    return h;
  }

  /**
   * A reply matched a throttle pattern: `key`'s limits times `factor` until `until`, or, while
   * throttled, times `factor` again when the delivery started after the last cut (deliveries that
   * ran side by side count once). @returns the throttle.
   */
  throttleByReply(key: string, factor: number, until: number, reason: string, now: number, startedAt: number): Hold {
    const cur = this.live(this.throttles, key, now);
    const compound = cur !== undefined && startedAt >= cur.changedAt;
    const f = cur ? (compound ? Math.max(MIN_FACTOR, (cur.factor ?? 1) * factor) : cur.factor ?? factor) : Math.max(MIN_FACTOR, factor);
    const h: Hold = {
      destination: key, match: { kind: 'key', key }, kind: 'throttle', source: 'reply', until: Math.max(until, cur?.until ?? 0), reason,
      factor: f, since: cur?.since ?? now, waiting: new Set(), changedAt: cur && !compound ? cur.changedAt : now,
    };
    this.set(h);
    this.persist(h);
    return h;
  }

  /**
   * `postline queue suspend`: suspends every destination `name` matches, until `until` (absent:
   * until resumed). Written to the store before it answers.
   * @throws PostlineError ERR_BAD_DESTINATION; the store's error when it cannot be written.
   */
  async suspendByOperator(name: string, until: number | undefined, now: number): Promise<Hold> {
    const match = parseDestinationMatch(name);
    if (!match) throw badDestination(name);
    const destination = destinationText(match);
    const cur = this.suspends.get(destination);
    const h: Hold = { destination, match, kind: 'suspend', source: 'operator', ...(until !== undefined ? { until } : {}), reason: 'suspended by the operator', since: now, waiting: cur?.waiting ?? new Set(), changedAt: now };
    await this.o.store.put(record(h));
    this.set(h);
    this.o.logger.warn({ destination, until: until !== undefined ? new Date(until).toISOString() : 'resume' }, 'destination suspended by the operator');
    return h;
  }

  /**
   * `postline queue resume`: ends the suspensions and throttles named `name`, and those of the
   * next-hop keys it matches (`factsOf` gives what is known of a key). Their waiting mail is made
   * due again (onResume). @returns the states ended.
   * @throws PostlineError ERR_BAD_DESTINATION, ERR_NOT_SUSPENDED (nothing to resume); the store's error.
   */
  async resume(name: string, factsOf: (key: string) => DestinationFacts | undefined): Promise<Hold[]> {
    const match = parseDestinationMatch(name);
    if (!match) throw badDestination(name);
    const text = destinationText(match);
    const hit = (h: Hold): boolean => {
      if (h.destination === text) return true;
      const f = h.match.kind === 'key' ? factsOf(h.match.key) : undefined;
      return f !== undefined && matchRank(match, f) > 0;
    };
    const ended = [...this.suspends.values(), ...this.throttles.values()].filter(hit);
    if (ended.length === 0) throw new PostlineError('ERR_NOT_SUSPENDED', `${text} is neither suspended nor throttled`, { temporary: false });
    for (const h of ended) await this.o.store.remove(h.destination, h.kind);
    for (const h of ended) this.drop(h.kind === 'suspend' ? this.suspends : this.throttles, h);
    this.o.logger.info({ destinations: ended.map((h) => `${h.destination} ${h.kind}`) }, 'destination resumed by the operator');
    this.wake(ended);
    return ended;
  }

  /** Every state in force at `now` (suspensions first). */
  list(now: number): Hold[] {
    const alive = (h: Hold): boolean => h.until === undefined || h.until > now;
    return [...[...this.suspends.values()].filter(alive), ...[...this.throttles.values()].filter(alive)];
  }

  /** Counts in force at `now` (metrics). */
  counts(now: number): { suspended: number; throttled: number } {
    let suspended = 0;
    let throttled = 0;
    for (const h of this.suspends.values()) if (h.until === undefined || h.until > now) suspended++;
    for (const h of this.throttles.values()) if (h.until === undefined || h.until > now) throttled++;
    return { suspended, throttled };
  }

  /** Ends every state whose time is up (logged, removed from the store). @returns the throttled keys that ended. */
  sweep(now: number): string[] {
    for (const h of [...this.suspends.values()]) if (h.until !== undefined && h.until <= now) this.end(this.suspends, h, now);
    const ended: string[] = [];
    for (const h of [...this.throttles.values()]) {
      if (h.until !== undefined && h.until <= now) { this.end(this.throttles, h, now); ended.push(h.destination); }
    }
    return ended;
  }

  private live(map: Map<string, Hold>, key: string, now: number): Hold | undefined {
    const h = map.get(key);
    if (!h) return undefined;
    if (h.until !== undefined && h.until <= now) { this.end(map, h, now); return undefined; }
    return h;
  }

  private set(h: Hold): void {
    const map = h.kind === 'suspend' ? this.suspends : this.throttles;
    map.delete(h.destination);
    map.set(h.destination, h);
    if (map.size > MAX_HOLDS) {
      const oldest = [...map.values()].find((x) => x.source === 'reply');
      if (oldest) this.drop(map, oldest);
    }
    this.named = [...this.suspends.values()].filter((x) => x.match.kind !== 'key');
  }

  private drop(map: Map<string, Hold>, h: Hold): void {
    if (map.get(h.destination) === h) map.delete(h.destination);
    this.named = [...this.suspends.values()].filter((x) => x.match.kind !== 'key');
  }

  private end(map: Map<string, Hold>, h: Hold, now: number): void {
    this.drop(map, h);
    this.forget(h.destination, h.kind);
    this.o.logger.info({ destination: h.destination, since: new Date(h.since).toISOString(), ms: now - h.since }, h.kind === 'suspend' ? 'destination resumed: its suspension ended' : 'destination throttle ended');
    h.waiting.clear(); // they were postponed to about this time, spread: no need to wake them all at once
  }

  private wake(hs: readonly Hold[]): void {
    const ids = hs.flatMap((h) => [...h.waiting]);
    for (const h of hs) h.waiting.clear();
    if (ids.length > 0) this.o.onResume?.(ids);
  }

  private persist(h: Hold): void {
    this.o.store.put(record(h)).catch((err: unknown) => this.o.logger.error({ err, destination: h.destination }, 'cannot store the destination state; kept in memory'));
  }

  private forget(destination: string, kind: Hold['kind']): void {
    this.o.store.remove(destination, kind).catch((err: unknown) => this.o.logger.error({ err, destination }, 'cannot remove the stored destination state'));
  }
}

/** The stored form of a state. */
function record(h: Hold): DestinationStateRecord {
  return {
    destination: h.destination, kind: h.kind, source: h.source, reason: h.reason, since: h.since,
    ...(h.until !== undefined ? { until: h.until } : {}), ...(h.factor !== undefined ? { factor: h.factor } : {}),
  };
}

/** A destination name that is none of the forms. */
export function badDestination(name: string): PostlineError {
  return new PostlineError('ERR_BAD_DESTINATION', `bad destination "${name}": expected a domain, ".domain", "[host]", "[host]:port" or a next-hop key such as mx:example.com:25`, { temporary: false });
}
