/**
 * Egress sources and pools (issue 14 "Source IP pools"): which local address and EHLO name a
 * delivery leaves from. A message gets a pool from the first `egress.rules` entry it matches
 * (sender domain, API key, tag), else `egress.defaultPool`; a source of the pool is picked by
 * weight among those with room today under their warm-up ramp. The scheduler keys its
 * concurrency by egress path (destination x source: each source gets the destination's
 * connection cap, like one Postfix transport per address), and the agent binds the connection
 * to the source's address and says its EHLO name.
 *
 * Warm-up counts (messages per source per UTC day) are kept in memory and written to a file
 * (`dataDir/egress-counts.json`, temp file + rename) every few seconds and at stop, so they
 * survive a restart; a crash loses at most the last few seconds of counts.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { EgressConfig, EgressSourceConfig } from '../config/egress-schema.js';
import type { Clock } from '../core/clock.js';
import type { Logger } from '../core/log.js';

/** What a delivery needs of its source. */
export interface EgressSource {
  readonly name: string;
  readonly address?: string;
  readonly ehloName?: string;
}

/** The message facts pool rules match on. */
export interface EgressFacts {
  readonly mailFrom: string;
  readonly apiKey?: string;
  readonly tags?: readonly string[];
}

/** A pick: a source, or the time (ms) when one of the pool has room again (warm-up caps all reached). */
export type EgressPick = { readonly source: EgressSource } | { readonly waitUntil: number };

const DAY_MS = 86_400_000;
const PATH_MARK = '|src=';

/** The dispatcher's key of an egress path: the next-hop key and the source name. */
export function egressPathKey(nextHopKey: string, source: string): string {
  return `${nextHopKey}${PATH_MARK}${source}`;
}

/** The next-hop key of a dispatcher key (an egress path key, or a next-hop key as it is). */
export function destinationOfPath(key: string): string {
  const i = key.lastIndexOf(PATH_MARK);
  return i < 0 ? key : key.slice(0, i);
}
const FLUSH_MS = 5000;

const dayOf = (ms: number): number => Math.floor(ms / DAY_MS);

/** The warm-up cap of `s` on UTC day `day` (days since epoch), or Infinity. */
export function warmupCap(s: EgressSourceConfig, day: number): number {
  if (!s.warmup) return Infinity;
  const start = dayOf(Date.parse(`${s.warmup.start}T00:00:00Z`));
  const i = day - start;
  if (i < 0) return 0; // the ramp has not begun: this source sends nothing yet
  return i < s.warmup.perDay.length ? s.warmup.perDay[i]! : Infinity;
}

function domainMatches(pattern: string, domain: string): boolean {
  const p = pattern.toLowerCase().replace(/\.$/, '');
  return p.startsWith('*.') ? domain.endsWith(p.slice(1)) : domain === p;
}

export class Egress {
  private counts = new Map<string, number>(); // source name -> messages today
  private day = -1;
  private dirty = false;
  private timer: NodeJS.Timeout | undefined;

  /**
   * @param o.config the live `egress` section (read at each pick, so SIGHUP applies)
   * @param o.file where warm-up counts are kept (undefined: memory only)
   */
  constructor(private readonly o: { readonly config: () => EgressConfig; readonly clock: Clock; readonly logger: Logger; readonly file?: string }) {
    this.load();
  }

  /** True when some pool is configured (otherwise every pick is undefined and nothing changes). */
  get enabled(): boolean {
    return this.o.config().pools.length > 0;
  }

  /** The pool name of a message, or undefined (no rule and no default pool). */
  poolOf(m: EgressFacts): string | undefined {
    const e = this.o.config();
    const domain = m.mailFrom.slice(m.mailFrom.lastIndexOf('@') + 1).toLowerCase();
    for (const r of e.rules) {
      if (r.senderDomain !== undefined && (m.mailFrom === '' || !domainMatches(r.senderDomain, domain))) continue;
      if (r.apiKey !== undefined && r.apiKey !== m.apiKey) continue;
      if (r.tag !== undefined && !(m.tags ?? []).includes(r.tag)) continue;
      return r.pool;
    }
    return e.defaultPool;
  }

  /**
   * A source for one delivery of `m` (weighted among the pool's sources with room under today's
   * warm-up cap), or the start of the next UTC day when none has room, or undefined when the
   * message has no pool. Does not count: `sent` does, once the delivery starts.
   */
  pick(m: EgressFacts, random: () => number = Math.random): EgressPick | undefined {
    const e = this.o.config();
    const poolName = this.poolOf(m);
    const pool = poolName === undefined ? undefined : e.pools.find((p) => p.name === poolName);
    if (!pool) return undefined;
    const now = this.o.clock.now();
    this.rollOver(now);
    const today = dayOf(now);
    const byName = new Map(e.sources.map((s) => [s.name, s]));
    const open = pool.sources.filter((ps) => {
      const s = byName.get(ps.source);
      return s !== undefined && (this.counts.get(s.name) ?? 0) < warmupCap(s, today);
    });
    if (open.length === 0) return { waitUntil: (today + 1) * DAY_MS + Math.floor(random() * 600_000) };
    const total = open.reduce((n, s) => n + s.weight, 0);
    let x = random() * total;
    let chosen = open[open.length - 1]!;
    for (const s of open) {
      x -= s.weight;
      if (x < 0) { chosen = s; break; }
    }
    const s = byName.get(chosen.source)!;
    return { source: { name: s.name, ...(s.address ? { address: s.address } : {}), ...(s.ehloName ? { ehloName: s.ehloName } : {}) } };
  }

  /** Counts one message sent from `source` today (for its warm-up cap). */
  sent(source: string): void {
    this.rollOver(this.o.clock.now());
    this.counts.set(source, (this.counts.get(source) ?? 0) + 1);
    this.dirty = true;
  }

  /** Messages sent today per source (for `queue destinations` and tests). */
  today(): ReadonlyMap<string, number> {
    this.rollOver(this.o.clock.now());
    return this.counts;
  }

  /** Starts the periodic write of the counts. */
  start(): void {
    if (this.o.file && !this.timer) {
      this.timer = setInterval(() => this.flush(), FLUSH_MS);
      this.timer.unref();
    }
  }

  /** Stops the timer and writes the counts once more. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.flush();
  }

  /** Writes the counts when they changed (temp file, then rename). Never throws; a failure is logged. */
  flush(): void {
    if (!this.o.file || !this.dirty) return;
    const tmp = `${this.o.file}.tmp`;
    try {
      writeFileSync(tmp, JSON.stringify({ day: this.day, counts: Object.fromEntries(this.counts) }), { mode: 0o600 });
      renameSync(tmp, this.o.file);
      this.dirty = false;
    } catch (err) {
      this.o.logger.warn({ err, file: this.o.file }, 'cannot write egress warm-up counts');
    }
  }

  private load(): void {
    if (!this.o.file) return;
    try {
      const data = JSON.parse(readFileSync(this.o.file, 'utf8')) as { day?: unknown; counts?: Record<string, unknown> };
      if (typeof data.day !== 'number' || typeof data.counts !== 'object' || data.counts === null) return;
      this.day = data.day;
      for (const [k, v] of Object.entries(data.counts)) if (typeof v === 'number' && v >= 0) this.counts.set(k, v);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.o.logger.warn({ err, file: this.o.file }, 'egress warm-up counts unreadable; starting from zero');
    }
  }

  private rollOver(now: number): void {
    const d = dayOf(now);
    if (d === this.day) return;
    this.day = d;
    this.counts = new Map();
    this.dirty = true;
  }
}
