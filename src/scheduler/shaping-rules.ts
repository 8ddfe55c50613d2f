/**
 * Which traffic shaping rule (delivery.shaping) and which reply pattern (delivery.throttlePatterns)
 * apply: destination names matched against what is known of a destination (its next-hop key, its
 * host, the recipient domain, its MX host names), and the limits a rule gives. Pure functions; the
 * state lives in shaping.ts.
 */
import { parseDestinationMatch, type DestinationMatch, type ShapingRule, type ThrottlePattern } from '../config/delivery-shaping.js';
import type { PostlineConfig } from '../config/schema.js';
import type { NextHop } from '../routing/types.js';

/** What is known of one destination when its rule is chosen. Names lower case, no trailing dot. */
export interface DestinationFacts {
  /** The next-hop key ("mx:example.com:25", "host:10.0.0.1:25"). */
  readonly key: string;
  readonly hop: NextHop;
  /** The recipient domain of the mail (MX delivery: the next hop's domain). */
  readonly domain: string;
  /** Host names the mail goes to: the MX hosts (when looked up) or the route's host name. */
  readonly names: readonly string[];
}

/** How well a destination name matches (0: not at all; higher wins). */
const RANK = { key: 4_000_000, hostPort: 3_000_000, host: 2_000_000, domain: 1_000_000 } as const;

/**
 * How well `m` matches `f`: a next-hop key, then "[host]:port", "[host]", the exact domain, then a
 * suffix by its length (subdomains of the recipient domain, or a host name under it).
 * @returns 0 when it does not match.
 */
export function matchRank(m: DestinationMatch, f: DestinationFacts): number {
  switch (m.kind) {
    case 'key': return m.key === f.key ? RANK.key : 0;
    case 'host': {
      if (f.hop.kind !== 'host' || m.host !== f.hop.host.toLowerCase()) return 0;
      if (m.port === undefined) return RANK.host;
      return m.port === f.hop.port ? RANK.hostPort : 0;
    }
    case 'domain': return m.domain === f.domain ? RANK.domain : 0;
    case 'suffix': return f.domain.endsWith(m.suffix) || f.names.some((n) => n.endsWith(m.suffix)) ? m.suffix.length : 0;
  }
}

/** A destination name that can only be decided with the MX host names (a suffix). */
export const needsNames = (m: DestinationMatch): boolean => m.kind === 'suffix';

/** The configured rules, parsed once per configuration array. */
export interface CompiledRules {
  readonly rules: readonly { readonly rule: ShapingRule; readonly match: DestinationMatch }[];
  /** Some rule is a suffix (MX host names are worth looking up). */
  readonly wantsNames: boolean;
}

/** Parses `rules` (validated by the schema; a name that does not parse is skipped). */
export function compileRules(rules: readonly ShapingRule[]): CompiledRules {
  const out: { rule: ShapingRule; match: DestinationMatch }[] = [];
  for (const rule of rules) {
    const match = parseDestinationMatch(rule.match);
    if (match) out.push({ rule, match });
  }
  return { rules: out, wantsNames: out.some((r) => needsNames(r.match)) };
}

/** The best rule for `f` (highest rank; the first of equals), or undefined. */
export function bestRule(c: CompiledRules, f: DestinationFacts): ShapingRule | undefined {
  let best: ShapingRule | undefined;
  let rank = 0;
  for (const r of c.rules) {
    const n = matchRank(r.match, f);
    if (n > rank) { rank = n; best = r.rule; }
  }
  return best;
}

/** One message rate: `count` per `periodMs`. */
export interface RateLimit { readonly count: number; readonly periodMs: number }

/** The limits of one destination before any throttle. */
export interface BaseLimits {
  /** Deliveries (connections) at once. */
  readonly maxConnections: number;
  readonly messagesPerConnection: number;
  readonly messageRates: readonly RateLimit[];
  readonly connectionsPerMinute?: number;
  /** The rule's match text, when a rule decided. */
  readonly rule?: string;
}

/** The limits `rule` gives (defaults from `d` for what it leaves out). */
export function limitsOf(rule: ShapingRule | undefined, d: Pick<PostlineConfig['delivery'], 'connectionsPerDestination' | 'messagesPerConnection'>): BaseLimits {
  const rates: RateLimit[] = [];
  if (rule?.messagesPerSecond) rates.push({ count: rule.messagesPerSecond, periodMs: 1000 });
  if (rule?.messagesPerMinute) rates.push({ count: rule.messagesPerMinute, periodMs: 60_000 });
  if (rule?.messagesPerHour) rates.push({ count: rule.messagesPerHour, periodMs: 3_600_000 });
  return {
    maxConnections: rule?.maxConnections ?? d.connectionsPerDestination,
    messagesPerConnection: rule?.messagesPerConnection ?? d.messagesPerConnection,
    messageRates: rates,
    ...(rule?.connectionsPerMinute ? { connectionsPerMinute: rule.connectionsPerMinute } : {}),
    ...(rule ? { rule: rule.match } : {}),
  };
}

/** The configured patterns, compiled once per configuration array. */
export type CompiledPatterns = readonly { readonly re: RegExp; readonly p: ThrottlePattern }[];

/** Compiles `patterns` case-insensitive (validated by the schema; a bad one is skipped). */
export function compilePatterns(patterns: readonly ThrottlePattern[]): CompiledPatterns {
  const out: { re: RegExp; p: ThrottlePattern }[] = [];
  for (const p of patterns) {
    try { out.push({ re: new RegExp(p.match, 'i'), p }); } catch { /* the schema refused it already */ }
  }
  return out;
}

/** The first pattern matching a remote reply ("421 4.7.28 text"), or undefined. */
export function matchPattern(c: CompiledPatterns, reply: string): ThrottlePattern | undefined {
  for (const x of c) if (x.re.test(reply)) return x.p;
  return undefined;
}

/** The facts of a next hop for the mail of `domain` (host names: the hop's host unless it is an address). */
export function hopFacts(key: string, hop: NextHop, domain: string, mxNames?: readonly string[]): DestinationFacts {
  const names = mxNames ?? (hop.kind === 'host' && !/^[\d.:]+$/.test(hop.host) ? [hop.host.toLowerCase().replace(/\.$/, '')] : []);
  return { key, hop, domain: domain.toLowerCase().replace(/\.$/, ''), names };
}

/** What a next-hop key alone tells ("mx:example.com:25", "host:10.0.0.1:25"), or undefined for another text. */
export function factsOfKey(key: string): DestinationFacts | undefined {
  const m = /^(mx|host):(.+):(\d+)$/.exec(key);
  if (!m) return undefined;
  const port = Number(m[3]);
  const hop: NextHop = m[1] === 'mx' ? { kind: 'mx', domain: m[2]!, port, tls: 'opportunistic' } : { kind: 'host', host: m[2]!, port, tls: 'opportunistic' };
  return hopFacts(key, hop, m[2]!);
}
