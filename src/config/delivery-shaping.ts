/**
 * Configuration schema of outbound traffic shaping (src/scheduler/shaping.ts applies it): the
 * per-destination rules (`delivery.shaping`: connections, messages per connection, message and
 * connection rates) and the reply patterns that suspend or throttle a destination for a while
 * (`delivery.throttlePatterns`). Also the one parser of destination names, shared by the rules,
 * the patterns' targets and `postline queue suspend|resume DESTINATION`.
 */
import { z } from 'zod';

/**
 * A destination name, parsed. Forms (ASCII case-insensitive, a trailing dot ignored):
 * - `example.com`: mail for that recipient domain (MX delivery: the next hop's domain);
 * - `.example.com` or `*.example.com`: its subdomains, and every domain whose MX hosts (or whose
 *   route's host) are under example.com, e.g. `.outlook.com` for all mail hosted at Outlook;
 * - `[host]` or `[host]:port`: a route or the relay host by its host name or address (as in
 *   delivery.tlsPolicies);
 * - `mx:example.com:25` or `host:10.0.0.1:25`: a next-hop key as the logs print it.
 */
export type DestinationMatch =
  | { readonly kind: 'key'; readonly key: string }
  | { readonly kind: 'host'; readonly host: string; readonly port?: number }
  | { readonly kind: 'domain'; readonly domain: string }
  | { readonly kind: 'suffix'; readonly suffix: string };

const LABELS = /^[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?)*$/;
const HOSTISH = /^[^\s[\]@]{1,255}$/;

/**
 * Parses a destination name (forms in DestinationMatch), lower-cased. @returns undefined when it
 * is none of the forms (never throws).
 */
export function parseDestinationMatch(text: string): DestinationMatch | undefined {
  const s = text.trim().toLowerCase();
  if (s.length === 0 || s.length > 300) return undefined;
  const key = /^(mx|host):(.+):(\d{1,5})$/.exec(s);
  if (key) {
    const name = key[2]!.replace(/\.$/, '');
    if (!HOSTISH.test(name) || Number(key[3]) > 65535) return undefined;
    return { kind: 'key', key: `${key[1]}:${name}:${Number(key[3])}` };
  }
  const host = /^\[([^\]\s]+)\](?::(\d{1,5}))?$/.exec(s);
  if (host) {
    const port = host[2] === undefined ? undefined : Number(host[2]);
    if (port !== undefined && (port < 1 || port > 65535)) return undefined;
    return { kind: 'host', host: host[1]!.replace(/\.$/, ''), ...(port !== undefined ? { port } : {}) };
  }
  const suffix = /^(?:\*\.|\.)(.+)$/.exec(s);
  const name = (suffix ? suffix[1]! : s).replace(/\.$/, '');
  if (!LABELS.test(name)) return undefined;
  return suffix ? { kind: 'suffix', suffix: `.${name}` } : { kind: 'domain', domain: name };
}

/** The canonical text of a parsed destination (what `queue destinations` prints and the table stores). */
export function destinationText(m: DestinationMatch): string {
  switch (m.kind) {
    case 'key': return m.key;
    case 'host': return `[${m.host}]${m.port !== undefined ? `:${m.port}` : ''}`;
    case 'domain': return m.domain;
    case 'suffix': return m.suffix;
  }
}

const destinationName = z.string().min(1).max(300).refine((s) => parseDestinationMatch(s) !== undefined, {
  message: 'expected "domain", ".domain" or "*.domain", "[host]", "[host]:port", or a next-hop key such as "mx:example.com:25"',
});

const rate = z.number().positive().max(1_000_000);

/**
 * One rule: limits for the destinations it matches (first the most specific: a next-hop key, then
 * "[host]:port", "[host]", an exact domain, then the longest matching suffix). A key left out
 * keeps the default (delivery.connectionsPerDestination, delivery.messagesPerConnection, no rate).
 */
export const shapingRuleSchema = z.object({
  match: destinationName,
  /** Connections (deliveries) to the destination at once. */
  maxConnections: z.number().int().positive().max(10_000).optional(),
  /** Messages sent over one connection before it is closed. */
  messagesPerConnection: z.number().int().positive().max(1_000_000).optional(),
  /** Message rates (token buckets with a burst of a tenth of the figure, at least 1). */
  messagesPerSecond: rate.optional(),
  messagesPerMinute: rate.optional(),
  messagesPerHour: rate.optional(),
  /** New connections opened per minute (a pooled connection reused is not a new one). */
  connectionsPerMinute: rate.optional(),
}).strict();
export type ShapingRule = z.infer<typeof shapingRuleSchema>;

/** Validates a regular expression source (the patterns are compiled case-insensitive). */
function isRegex(s: string): boolean {
  try {
    new RegExp(s, 'i');
    return true;
  } catch {
    return false;
  }
}

/**
 * One adaptive rule: a remote reply (its text as "CODE ENHANCED TEXT", e.g. "421 4.7.28 Our
 * system has detected ...") that matches `match` suspends the destination (its mail waits, no
 * attempt counted) or throttles it (connections and message rates times `factor`, again for each
 * further match while throttled) for `durationMs`; then it resumes by itself.
 */
export const throttlePatternSchema = z.object({
  match: z.string().min(1).max(500).refine(isRegex, { message: 'expected a regular expression' }),
  action: z.enum(['suspend', 'throttle']),
  durationMs: z.number().int().min(1000).max(7 * 24 * 3600_000),
  /** throttle: the share of the limits kept (default 0.5). */
  factor: z.number().gt(0).lt(1).optional(),
}).strict();
export type ThrottlePattern = z.infer<typeof throttlePatternSchema>;

/**
 * The default patterns: the "slow down" replies of the large mailbox providers (as they document
 * them) and the usual words of any server that limits connections or rates.
 */
export const DEFAULT_THROTTLE_PATTERNS: ThrottlePattern[] = [
  // Gmail: 421-4.7.28 "... unusual rate of unsolicited mail ... temporarily rate limited".
  { match: '^4\\d\\d 4\\.7\\.28\\b', action: 'suspend', durationMs: 15 * 60_000 },
  // Gmail: 421-4.7.0 "Try again later, closing connection".
  { match: '^421 4\\.7\\.0\\b.*try again later', action: 'throttle', durationMs: 10 * 60_000, factor: 0.5 },
  // Outlook / Office 365: 451 4.7.650 / 4.7.651 "... temporarily rate limited due to IP reputation".
  { match: '^4\\d\\d 4\\.7\\.65[01]\\b', action: 'suspend', durationMs: 30 * 60_000 },
  // Outlook: 451 4.7.500 "Server busy. Please try again later".
  { match: '^4\\d\\d 4\\.7\\.500\\b', action: 'throttle', durationMs: 10 * 60_000, factor: 0.5 },
  // Yahoo / AOL: 421 4.7.0 [TS01] / [TS02] / [TSS04] "Messages from ... temporarily deferred ...".
  { match: '^421 (4\\.7\\.0 )?\\[TSS?0[124]\\]', action: 'suspend', durationMs: 30 * 60_000 },
  // Anyone: "too many connections", "rate limit(ed)", "too many messages", "slow down".
  { match: '^4\\d\\d .*\\b(too many (connections|concurrent|sessions|messages)|rate limit(ed)?|connection rate|slow down)\\b', action: 'throttle', durationMs: 5 * 60_000, factor: 0.5 },
];

/** delivery.shaping */
export const shapingSchema = z.array(shapingRuleSchema).max(10_000).default([]);
/** delivery.throttlePatterns (absent: the defaults; [] turns adaptive shaping off). */
export const throttlePatternsSchema = z.array(throttlePatternSchema).max(200).default(() => DEFAULT_THROTTLE_PATTERNS.map((p) => ({ ...p })));
