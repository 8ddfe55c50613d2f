/**
 * Traffic shaping (issue 14): the scheduler's one authority for per-destination limits.
 *
 * A destination is a next hop (its key, as the Dispatcher's). Its limits come from the best
 * `delivery.shaping` rule (shaping-rules.ts: a next-hop key, "[host]:port", the recipient domain, or
 * the longest suffix of the domain or of its MX host names), else the defaults
 * (delivery.connectionsPerDestination, delivery.messagesPerConnection, no rate):
 * - connections at once: the Dispatcher asks `concurrency(key)` (the agent's pool follows it);
 * - message rates: a token bucket per limit and destination (token-bucket.ts). A message without a
 *   token reserves the next free slot: within `shortWaitMs` it waits in memory, else the round
 *   postpones it (no attempt counted) to that slot, which stays reserved for it, so a backlog is
 *   spread over time and each message is looked at about once more;
 * - messages per connection and connections per minute: handed to the agent with each request
 *   (DeliveryShaping; the agent asks `beforeConnect` before it opens a connection).
 * MX host names are looked up here (through `mxNames`, the agent's resolver) only while some rule
 * or suspension is a suffix, and cached for an hour (a failed lookup for a minute).
 *
 * Adaptive: a remote reply matching `delivery.throttlePatterns` suspends the destination (its mail
 * postponed, no attempt) or throttles it (limits times the pattern's factor) for a while
 * (destination-holds.ts, persisted). Rules and patterns are re-read when the configuration object
 * changes (SIGHUP: config/live.ts) and apply to the next delivery.
 */
import type { ShapingRule } from '../config/delivery-shaping.js';
import type { PostlineConfig } from '../config/schema.js';
import type { Clock } from '../core/clock.js';
import type { Logger } from '../core/log.js';
import type { DeliveryShaping, RecipientResult } from '../delivery/types.js';
import type { NextHop } from '../routing/types.js';
import { DestinationHolds, type Hold } from './destination-holds.js';
import { MemoryDestinationStateStore, type DestinationStateStore } from './destination-store.js';
import { bestRule, compilePatterns, compileRules, factsOfKey, hopFacts, limitsOf, matchPattern, type BaseLimits, type CompiledPatterns, type CompiledRules, type DestinationFacts } from './shaping-rules.js';
import { reserveAll, TokenBucket } from './token-bucket.js';

/** `pace` answer when the round was aborted while it waited. */
export const ABORTED: unique symbol = Symbol('aborted');

export interface ShapingOptions {
  /** The running configuration (read at each use: a reload applies to the next delivery). */
  readonly config: PostlineConfig;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly random: () => number;
  /** Where suspensions and throttles are kept across restarts (default: memory only). */
  readonly store?: DestinationStateStore;
  /** MX host names of a domain (for suffix rules); absent: suffixes match domains and route hosts only. */
  readonly mxNames?: (domain: string) => Promise<readonly string[]>;
  /** Queue IDs that waited for a suspension the operator ended: make them due now. */
  readonly onResume?: (ids: readonly string[]) => void;
  /** Longest wait in memory for a rate slot, ms (default 1000); a later slot postpones the message. */
  readonly shortWaitMs?: number;
}

/** What the scheduler keeps per destination (next-hop key). */
export interface ShapedDestination {
  readonly key: string;
  facts: DestinationFacts;
  rule: ShapingRule | undefined;
  gen: number;
  base: BaseLimits;
  /** Throttle factor applied (1: none). */
  factor: number;
  maxConnections: number;
  /** Effective message rates, one bucket per limit. */
  readonly buckets: TokenBucket[];
  conn: TokenBucket | undefined;
  readonly request: DeliveryShaping;
}

interface FactsEntry { readonly facts: DestinationFacts; readonly rule: ShapingRule | undefined; readonly gen: number; readonly expires: number }

/** Destinations (and rule look-ups) remembered at most; the least recently used are forgotten. */
const MAX_STATES = 100_000;
/** Rate slots reserved for postponed messages at most (beyond: such a message asks again when it is back). */
const MAX_RESERVATIONS = 200_000;
/** A reserved slot not taken within this long after its time is given up (ms). */
const STALE_MS = 60_000;
const MX_TTL_MS = 3_600_000;
const MX_FAILED_TTL_MS = 60_000;

export class Shaping {
  private readonly states = new Map<string, ShapedDestination>();
  private readonly factsCache = new Map<string, FactsEntry>();
  private readonly reservations = new Map<string, number>();
  private readonly mx = new Map<string, { names: readonly string[]; expires: number }>();
  private readonly mxInflight = new Map<string, Promise<{ names: readonly string[]; expires: number }>>();
  /** Suspended and throttled destinations. */
  readonly holds: DestinationHolds;
  private compiled: CompiledRules = { rules: [], wantsNames: false };
  private patterns: CompiledPatterns = [];
  private from: readonly unknown[] = [];
  private gen = 0;
  private lastSweep = 0;
  private readonly shortWait: number;

  constructor(private readonly o: ShapingOptions) {
    this.holds = new DestinationHolds({ store: o.store ?? new MemoryDestinationStateStore(), logger: o.logger, ...(o.onResume ? { onResume: o.onResume } : {}) });
    this.shortWait = Math.max(0, o.shortWaitMs ?? 1000);
    this.refresh();
  }

  /** Loads the stored suspensions and throttles. Never throws. */
  async start(): Promise<void> {
    await this.holds.load(this.o.clock.now());
  }

  /**
   * The destination `key` (next hop `hop`) for mail to `domain`, with its rule's limits and any
   * throttle applied. Synchronous when known; looks up MX host names once when a suffix rule needs them.
   */
  resolve(key: string, hop: NextHop, domain: string): ShapedDestination | Promise<ShapedDestination> {
    this.refresh();
    const now = this.o.clock.now();
    const ck = hop.kind === 'mx' ? key : `${key}\u0000${domain.toLowerCase()}`;
    const c = this.factsCache.get(ck);
    if (c && c.gen === this.gen && c.expires > now) return this.stateFor(key, c.facts, c.rule, now);
    return this.lookup(ck, key, hop, domain);
  }

  /** Deliveries to `key` at once (the Dispatcher's per-destination cap): the rule's maxConnections, throttled. */
  concurrency(key: string): number {
    const s = this.states.get(key);
    if (!s) return this.o.config.delivery.connectionsPerDestination;
    this.applyFactor(s, this.o.clock.now(), false);
    return s.maxConnections;
  }

  /**
   * When `d` is suspended: the time to postpone message `id` to (the suspension's end with a
   * little spread; an open-ended one looks again after delivery.retry.initialMs). Else undefined.
   */
  heldUntil(d: ShapedDestination, id: string, now: number): number | undefined {
    const h = this.holds.suspension(d.facts, now);
    if (!h) return undefined;
    this.holds.note(h, id);
    this.reservations.delete(`${d.key}\u0000${id}`);
    if (h.until === undefined) return now + Math.round(this.o.config.delivery.retry.initialMs * (1 + 0.2 * this.o.random()));
    return h.until + Math.floor(this.o.random() * Math.min(30_000, 0.1 * (h.until - h.since)));
  }

  /**
   * Message rate of `d` for message `id`: undefined when it may go now (after a wait of at most
   * shortWaitMs), ABORTED when `signal` aborted meanwhile, else the time to postpone it to (its
   * reserved slot, kept for it). Never busy-loops: each answer is a slot of its own.
   */
  async pace(d: ShapedDestination, id: string, signal?: AbortSignal): Promise<number | undefined | typeof ABORTED> {
    if (d.buckets.length === 0) return undefined;
    const now = this.o.clock.now();
    const rk = `${d.key}\u0000${id}`;
    let at = this.reservations.get(rk);
    if (at !== undefined) this.reservations.delete(rk);
    if (at === undefined || at < now - STALE_MS) at = reserveAll(d.buckets, now);
    const wait = at - now;
    if (wait <= 0) return undefined;
    if (wait <= this.shortWait) {
      await sleep(wait, signal);
      return signal?.aborted ? ABORTED : undefined;
    }
    this.reserve(rk, at, now);
    return at - Math.floor(this.shortWait / 2);
  }

  /**
   * Reads a delivery's results for replies matching delivery.throttlePatterns (remote replies
   * only, each distinct text once) and suspends or throttles `d` by the first match.
   * @param startedAt when the delivery began (signals of deliveries side by side count once).
   * @returns true when a pattern matched (the destination answered: it is not dead).
   */
  observe(d: ShapedDestination, results: readonly RecipientResult[], startedAt: number): boolean {
    if (this.patterns.length === 0) return false;
    const seen = new Set<string>();
    for (const r of results) {
      if (!r.remote || r.outcome === 'delivered' || seen.has(r.diagnostic)) continue;
      seen.add(r.diagnostic);
      const p = matchPattern(this.patterns, r.diagnostic);
      if (!p) continue;
      const now = this.o.clock.now();
      const until = now + p.durationMs;
      const log = { nextHop: d.key, until: new Date(until).toISOString(), reason: r.diagnostic, pattern: p.match };
      if (p.action === 'suspend') {
        if (this.holds.suspendByReply(d.key, until, r.diagnostic, now)) this.o.logger.warn(log, 'destination suspended: a reply matched delivery.throttlePatterns; its mail waits (no attempts) until then');
      } else {
        const before = d.factor;
        const h = this.holds.throttleByReply(d.key, p.factor ?? 0.5, until, r.diagnostic, now, startedAt);
        this.applyFactor(d, now, false);
        if (d.factor !== before) this.o.logger.warn({ ...log, factor: h.factor, maxConnections: d.maxConnections }, 'destination throttled: a reply matched delivery.throttlePatterns');
      }
      return true;
    }
    return false;
  }

  /** Ends suspensions and throttles whose time is up (at most once a second; the scheduler's scan calls it). */
  sweep(now: number): void {
    if (now - this.lastSweep < 1000) return;
    this.lastSweep = now;
    for (const key of this.holds.sweep(now)) {
      const s = this.states.get(key);
      if (s) this.applyFactor(s, now, false);
    }
  }

  /** `postline queue suspend NAME [--for]`. @throws PostlineError ERR_BAD_DESTINATION; the store's error. */
  async suspend(name: string, forMs?: number): Promise<Hold> {
    const now = this.o.clock.now();
    const h = await this.holds.suspendByOperator(name, forMs !== undefined ? now + forMs : undefined, now);
    if (h.match.kind === 'suffix') this.gen++; // MX host names may be needed now
    return h;
  }

  /** `postline queue resume NAME`. @throws PostlineError ERR_BAD_DESTINATION, ERR_NOT_SUSPENDED; the store's error. */
  async resume(name: string): Promise<Hold[]> {
    const now = this.o.clock.now();
    const ended = await this.holds.resume(name, (key) => this.states.get(key)?.facts ?? factsOfKey(key));
    for (const h of ended) {
      const s = h.match.kind === 'key' ? this.states.get(h.match.key) : undefined;
      if (s) this.applyFactor(s, now, false);
    }
    return ended;
  }

  /** The match text of the rule deciding `key`'s limits now (for `queue destinations`), if any. */
  ruleOf(key: string): string | undefined {
    return this.states.get(key)?.rule?.match;
  }

  private async lookup(ck: string, key: string, hop: NextHop, domain: string): Promise<ShapedDestination> {
    const nameOf = hop.kind === 'mx' ? hop.domain : hop.kind === 'host' && hop.mxLookup ? hop.host : undefined;
    const wants = (this.compiled.wantsNames || this.holds.wantsNames()) && nameOf !== undefined && this.o.mxNames !== undefined;
    const mx = wants ? await this.mxNames(nameOf.toLowerCase()) : undefined;
    const facts = hopFacts(key, hop, hop.kind === 'mx' ? hop.domain : domain, mx?.names);
    const rule = bestRule(this.compiled, facts);
    remember(this.factsCache, ck, { facts, rule, gen: this.gen, expires: mx?.expires ?? Infinity });
    return this.stateFor(key, facts, rule, this.o.clock.now());
  }

  private stateFor(key: string, facts: DestinationFacts, rule: ShapingRule | undefined, now: number): ShapedDestination {
    let s = this.states.get(key);
    if (!s) {
      const made: ShapedDestination = {
        key, facts, rule, gen: -1, base: limitsOf(undefined, this.o.config.delivery), factor: 1, maxConnections: 1, buckets: [], conn: undefined,
        request: {
          get messagesPerConnection() { return made.base.messagesPerConnection; },
          beforeConnect: async (signal?: AbortSignal) => {
            const b = made.conn;
            if (!b) return;
            const t = this.o.clock.now();
            const at = b.reserve(t);
            if (at > t) await sleep(at - t, signal);
          },
        },
      };
      s = made;
    }
    remember(this.states, key, s);
    s.facts = facts;
    if (s.rule !== rule || s.gen !== this.gen) {
      s.rule = rule;
      s.gen = this.gen;
      s.base = limitsOf(rule, this.o.config.delivery);
      this.applyFactor(s, now, true);
    } else {
      this.applyFactor(s, now, false);
    }
    return s;
  }

  /** Sets `s`'s effective limits from its base limits and its throttle factor (when it changed, or `force`). */
  private applyFactor(s: ShapedDestination, now: number, force: boolean): void {
    const f = this.holds.factor(s.key, now);
    if (!force && f === s.factor) return;
    s.factor = f;
    s.maxConnections = Math.max(1, Math.floor(s.base.maxConnections * f));
    const rates = s.base.messageRates;
    rates.forEach((r, i) => {
      const b = s.buckets[i];
      if (b) b.setRate(r.count * f, r.periodMs);
      else s.buckets.push(new TokenBucket(r.count * f, r.periodMs));
    });
    s.buckets.length = rates.length;
    const cpm = s.base.connectionsPerMinute;
    if (cpm === undefined) s.conn = undefined;
    else if (s.conn) s.conn.setRate(cpm * f, 60_000);
    else s.conn = new TokenBucket(cpm * f, 60_000);
  }

  private reserve(rk: string, at: number, now: number): void {
    if (this.reservations.size >= MAX_RESERVATIONS) {
      let n = 0;
      for (const [k, t] of this.reservations) {
        if (++n > 256) break;
        if (t < now - STALE_MS) this.reservations.delete(k);
      }
      if (this.reservations.size >= MAX_RESERVATIONS) return; // it asks again when it is back
    }
    this.reservations.set(rk, at);
  }

  /** MX host names of `domain`, lower case, cached an hour (sites.ts asks too). Never rejects. */
  async mxNamesOf(domain: string): Promise<readonly string[]> {
    if (!this.o.mxNames) return [];
    return (await this.mxNames(domain.toLowerCase())).names;
  }

  /** MX host names of `domain`, cached. Never rejects (a failed lookup gives none, for a minute). */
  private mxNames(domain: string): Promise<{ names: readonly string[]; expires: number }> {
    const now = this.o.clock.now();
    const c = this.mx.get(domain);
    if (c && c.expires > now) return Promise.resolve(c);
    const running = this.mxInflight.get(domain);
    if (running) return running;
    const p = this.o.mxNames!(domain).then(
      (names) => ({ names: names.map((n) => n.toLowerCase().replace(/\.$/, '')).filter(Boolean), expires: this.o.clock.now() + MX_TTL_MS }),
      (err: unknown) => {
        this.o.logger.debug({ err, domain }, 'MX names for traffic shaping not found; suffix rules see none');
        return { names: [] as string[], expires: this.o.clock.now() + MX_FAILED_TTL_MS };
      },
    ).then((v) => {
      this.mxInflight.delete(domain);
      remember(this.mx, domain, v);
      return v;
    });
    this.mxInflight.set(domain, p);
    return p;
  }

  /** Compiles the rules and patterns again when the configuration changed (SIGHUP; also checked at each resolve). */
  refresh(): void {
    const d = this.o.config.delivery;
    const now = [d.shaping, d.throttlePatterns, d.connectionsPerDestination, d.messagesPerConnection];
    if (now.every((v, i) => v === this.from[i])) return;
    const first = this.from.length === 0;
    this.from = now;
    this.compiled = compileRules(d.shaping);
    this.patterns = compilePatterns(d.throttlePatterns);
    this.gen++;
    if (!first) this.o.logger.info({ rules: this.compiled.rules.length, patterns: this.patterns.length }, 'traffic shaping reloaded; it applies to the next delivery');
  }
}

/** Sets `k` in `map` as the most recent entry, forgetting the oldest beyond MAX_STATES. */
function remember<V>(map: Map<string, V>, k: string, v: V): void {
  map.delete(k);
  map.set(k, v);
  if (map.size > MAX_STATES) map.delete(map.keys().next().value as string);
}

/** Waits `ms` or until `signal` aborts. */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => { clearTimeout(t); signal?.removeEventListener('abort', done); resolve(); };
    const t = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}
