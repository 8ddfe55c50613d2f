/**
 * DNS blocklists and allow lists (RFC 5782), as Postfix's postscreen weighs them.
 *
 * Owns: the query names (RFC 5782 2.1 reversed IPv4 octets, 2.4 reversed IPv6 nibbles, 3 domain
 * lists), which answers count (only A records in 127.0.0.0/8; 127.255.255.x means the list refused
 * our query, never "listed"; optional code patterns like postscreen's `zone=127.0.0.[2..11]`), the
 * score (sum of the weights of the zones listing a client; negative weights for allow lists), the
 * answer cache (positive answers for their TTL, negative ones for `negativeTtlS`, in-flight
 * lookups shared), and each zone's self-test (RFC 5782 5: 127.0.0.2 listed, 127.0.0.1 not;
 * ::FFFF:7F00:2 / ::FFFF:7F00:1 for IPv6; TEST / INVALID for domain lists) at start and every
 * `selfTestIntervalMs`: a zone that fails is disabled (and enabled again when it passes), so a
 * hijacking resolver cannot make every client listed. A lookup never rejects: a timeout or a DNS
 * failure counts as not listed and is logged.
 */
import type { Logger } from 'pino';
import { DnsError, type Resolver } from '../dns/types.js';
import { reversedName } from './ip.js';
import { isIP } from 'node:net';

/** One configured list (config policy.dnsbl.zones[]). */
export interface DnsblZone {
  readonly zone: string;
  readonly weight: number;
  readonly codes?: readonly string[];
  readonly ipv6: boolean;
  readonly kind: 'ip' | 'domain';
}

export interface DnsblOptions {
  readonly zones: readonly DnsblZone[];
  readonly resolver: Resolver;
  readonly logger: Logger;
  /** Seconds a "not listed" answer is cached (policy.dnsblNegativeTtlS). */
  readonly negativeTtlS: number;
  /** Cache entries at most (oldest forgotten first). */
  readonly cacheEntries: number;
  /** Self-test period, ms. */
  readonly selfTestIntervalMs: number;
  /** Called when a zone is disabled or enabled again by its self-test. */
  readonly onZoneState?: (zone: string, enabled: boolean, why: string) => void;
  readonly now?: () => number;
}

/** The answer of one zone about one name. */
export interface ZoneAnswer {
  readonly zone: string;
  /** 'listed': a counting 127/8 answer; 'refused': the list refused the query (127.255.255.x). */
  readonly result: 'listed' | 'not-listed' | 'refused' | 'error';
  /** The A records returned (when any). */
  readonly codes: readonly string[];
}

/** The verdict about one client address. */
export interface DnsblVerdict {
  /** Sum of the weights of the (enabled) zones that list the address. */
  readonly score: number;
  /** Zones that list it, highest positive weight first. */
  readonly listedBy: readonly string[];
}

// A code pattern's octet may itself contain "..", so split it carefully: rebuild splitting on '.'
// outside brackets.
function splitOctets(pattern: string): string[] {
  const out: string[] = [];
  let cur = '';
  let depth = 0;
  for (const ch of pattern) {
    if (ch === '[') depth++;
    if (ch === ']') depth--;
    if (ch === '.' && depth === 0) { out.push(cur); cur = ''; continue; }
    cur += ch;
  }
  out.push(cur);
  return out;
}

/** A pattern of postscreen's form: "127.0.0.2", "127.0.0.[2..11]", "127.0.[0;1].[2..4;9]" as a test of an answer. */
export function codeMatcher(pattern: string): (address: string) => boolean {
  const octets = splitOctets(pattern);
  const tests = octets.map((p) => {
    if (!p.startsWith('[')) { const n = Number(p); return (x: number) => x === n; }
    const alts = p.slice(1, -1).split(';').map((alt) => {
      const m = /^(\d+)\.\.(\d+)$/.exec(alt);
      if (m) { const lo = Number(m[1]); const hi = Number(m[2]); return (x: number) => x >= lo && x <= hi; }
      const n = Number(alt);
      return (x: number) => x === n;
    });
    return (x: number) => alts.some((f) => f(x));
  });
  return (address) => {
    const o = address.split('.').map(Number);
    return o.length === 4 && tests.length === 4 && tests.every((t, i) => t(o[i]!));
  };
}

/** True for an answer in 127.0.0.0/8 (RFC 5782 2.3: the only range a list answers with). */
export function isListAnswer(a: string): boolean {
  return isIP(a) === 4 && a.startsWith('127.');
}

/** True for 127.255.255.x: the list refused to answer (over quota, open resolver), never "listed". */
export function isRefusalAnswer(a: string): boolean {
  return a.startsWith('127.255.255.');
}

interface CacheEntry { readonly answer: ZoneAnswer; readonly expires: number }

interface ZoneState {
  readonly cfg: DnsblZone;
  readonly matches: ((a: string) => boolean) | undefined;
  enabled: boolean;
  lastTest: number;
  why: string;
}

/** The DNS list checker of one server (shared by every session). */
export class Dnsbl {
  private readonly zones: ZoneState[];
  private readonly cache = new Map<string, CacheEntry>();
  private readonly inflight = new Map<string, Promise<ZoneAnswer>>();
  private timer: NodeJS.Timeout | undefined;
  private readonly now: () => number;
  /** Lookups answered from the cache / sent to DNS / timed out or failed (for tests and figures). */
  readonly stats = { cached: 0, queried: 0, failed: 0 };

  constructor(private readonly opts: DnsblOptions) {
    this.now = opts.now ?? Date.now;
    this.zones = opts.zones.map((cfg) => {
      const ms = cfg.codes?.map(codeMatcher);
      return { cfg, matches: ms ? (a: string) => ms.some((m) => m(a)) : undefined, enabled: true, lastTest: 0, why: '' };
    });
  }

  /** True when there is at least one zone. */
  get active(): boolean {
    return this.zones.length > 0;
  }

  /** Runs the self-tests now and then every selfTestIntervalMs (timer unref'd). */
  start(): Promise<void> {
    if (!this.timer && this.zones.length) {
      this.timer = setInterval(() => void this.selfTest(), this.opts.selfTestIntervalMs);
      this.timer.unref();
    }
    return this.selfTest();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Zone states, for operators and tests. */
  zoneStates(): { zone: string; enabled: boolean; why: string; lastTest: number }[] {
    return this.zones.map((z) => ({ zone: z.cfg.zone, enabled: z.enabled, why: z.why, lastTest: z.lastTest }));
  }

  /**
   * Self-tests every zone (RFC 5782 5). A zone whose test address is not listed, or whose "never
   * listed" address is, gets disabled; a DNS failure leaves its state as it was (and is logged).
   */
  async selfTest(): Promise<void> {
    await Promise.all(this.zones.map(async (z) => {
      const tests: [string, boolean][] = z.cfg.kind === 'domain'
        ? [[`test.${z.cfg.zone}`, true], [`invalid.${z.cfg.zone}`, false]]
        : [[reversedName('127.0.0.2', z.cfg.zone)!, true], [reversedName('127.0.0.1', z.cfg.zone)!, false],
          ...(z.cfg.ipv6 ? [[reversedName('::ffff:7f00:2', z.cfg.zone)!, true], [reversedName('::ffff:7f00:1', z.cfg.zone)!, false]] as [string, boolean][] : [])];
      let failure: string | undefined;
      let unsure = false;
      for (const [name, want] of tests) {
        const a = await this.query(z, name, false);
        if (a.result === 'error' || a.result === 'refused') { unsure = true; continue; }
        const listed = a.codes.some((c) => isListAnswer(c) && !isRefusalAnswer(c));
        if (listed !== want) { failure = `${name}: ${want ? 'not listed' : `listed (${a.codes.join(',')})`}, expected ${want ? 'listed' : 'not listed'}`; break; }
      }
      z.lastTest = this.now();
      if (failure) {
        if (z.enabled) {
          z.enabled = false;
          z.why = failure;
          this.opts.logger.warn({ zone: z.cfg.zone, why: failure }, 'dnsbl zone failed its self-test: disabled');
          this.opts.onZoneState?.(z.cfg.zone, false, failure);
        }
      } else if (!unsure && !z.enabled) {
        z.enabled = true;
        z.why = '';
        this.opts.logger.info({ zone: z.cfg.zone }, 'dnsbl zone passed its self-test: enabled again');
        this.opts.onZoneState?.(z.cfg.zone, true, 'self-test passed');
      } else if (unsure) {
        this.opts.logger.info({ zone: z.cfg.zone }, 'dnsbl zone self-test inconclusive (DNS failure or refused query)');
      }
    }));
    for (const k of [...this.cache.keys()]) if (k.startsWith('selftest:')) this.cache.delete(k);
  }

  /**
   * Looks `address` up in every enabled IP zone (IPv6 only in zones with ipv6: true).
   * Never rejects: failures count as not listed.
   */
  async lookupAddress(address: string): Promise<DnsblVerdict> {
    const v6 = isIP(address) === 6;
    const zones = this.zones.filter((z) => z.enabled && z.cfg.kind === 'ip' && (!v6 || z.cfg.ipv6));
    const answers = await Promise.all(zones.map(async (z) => {
      const name = reversedName(address, z.cfg.zone);
      return { z, a: name ? await this.query(z, name, true) : undefined };
    }));
    let score = 0;
    const listed: { zone: string; weight: number }[] = [];
    for (const { z, a } of answers) {
      if (a?.result !== 'listed' || !z.enabled) continue;
      score += z.cfg.weight;
      listed.push({ zone: z.cfg.zone, weight: z.cfg.weight });
    }
    listed.sort((x, y) => y.weight - x.weight);
    return { score, listedBy: listed.map((l) => l.zone) };
  }

  /**
   * Looks a domain up in one domain list (RFC 5782 3, DBL style), e.g. for a doctor command.
   * @throws RangeError when `zone` is not a configured domain zone.
   */
  async lookupDomain(zone: string, domain: string): Promise<ZoneAnswer> {
    const z = this.zones.find((x) => x.cfg.zone === zone && x.cfg.kind === 'domain');
    if (!z) throw new RangeError(`${zone} is not a configured domain list`);
    return this.query(z, `${domain.replace(/\.$/, '').toLowerCase()}.${z.cfg.zone}`, true);
  }

  private query(z: ZoneState, name: string, useCache: boolean): Promise<ZoneAnswer> {
    const key = useCache ? name : `selftest:${name}`;
    const hit = this.cache.get(key);
    if (hit && hit.expires > this.now()) {
      this.stats.cached++;
      return Promise.resolve(hit.answer);
    }
    const pending = this.inflight.get(key);
    if (pending) return pending;
    const p = this.resolve(z, name).then((r) => {
      this.inflight.delete(key);
      if (useCache && r.ttlS > 0) this.remember(key, r.answer, r.ttlS);
      return r.answer;
    });
    this.inflight.set(key, p);
    return p;
  }

  private async resolve(z: ZoneState, name: string): Promise<{ answer: ZoneAnswer; ttlS: number }> {
    this.stats.queried++;
    const r = this.opts.resolver;
    try {
      const recs = r.resolve4Ttl ? await r.resolve4Ttl(name) : (await r.resolve4(name)).map((address) => ({ address, ttl: 60 }));
      const codes = recs.map((x) => x.address);
      const inRange = recs.filter((x) => isListAnswer(x.address));
      if (inRange.some((x) => isRefusalAnswer(x.address))) {
        this.opts.logger.warn({ zone: z.cfg.zone, codes }, 'dnsbl refused our query (127.255.255.x): not counted as listed');
        return { answer: { zone: z.cfg.zone, result: 'refused', codes }, ttlS: 60 };
      }
      const counting = inRange.filter((x) => !z.matches || z.matches(x.address));
      if (counting.length === 0) return { answer: { zone: z.cfg.zone, result: 'not-listed', codes }, ttlS: this.opts.negativeTtlS };
      const ttl = Math.max(1, Math.min(...counting.map((x) => x.ttl)));
      return { answer: { zone: z.cfg.zone, result: 'listed', codes }, ttlS: ttl };
    } catch (err) {
      if (err instanceof DnsError && (err.kind === 'nxdomain' || err.kind === 'nodata')) {
        return { answer: { zone: z.cfg.zone, result: 'not-listed', codes: [] }, ttlS: this.opts.negativeTtlS };
      }
      this.stats.failed++;
      this.opts.logger.info({ zone: z.cfg.zone, err: (err as Error).message }, 'dnsbl lookup failed: counted as not listed');
      return { answer: { zone: z.cfg.zone, result: 'error', codes: [] }, ttlS: 0 };
    }
  }

  private remember(key: string, answer: ZoneAnswer, ttlS: number): void {
    if (this.cache.size >= this.opts.cacheEntries) {
      const oldest = this.cache.keys().next().value;
      if (oldest !== undefined) this.cache.delete(oldest);
    }
    this.cache.set(key, { answer, expires: this.now() + ttlS * 1000 });
  }
}
