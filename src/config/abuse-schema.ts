/**
 * The abuse-resistance parts of the configuration schema (issue 12): network lists, per-client
 * rates, AUTH throttling, DNS lists, the access list, PROXY/XCLIENT/XFORWARD peers. Kept apart from
 * schema.ts by size only; the README documents every key.
 */
import { z } from 'zod';
import { isIP } from 'node:net';

/** "192.0.2.0/24", "2001:db8::/32" or a bare address (a /32 or /128). */
export const cidr = z.string().min(1).refine((c) => {
  const [addr = '', bits, extra] = c.trim().split('/');
  const fam = isIP(addr);
  if (!fam || extra !== undefined) return false;
  if (bits === undefined) return true;
  const n = Number(bits);
  return /^\d+$/.test(bits) && n >= 0 && n <= (fam === 4 ? 32 : 128);
}, 'expected an address or CIDR network such as 192.0.2.0/24');

const perClientRates = {
  connectionsPerMinute: z.number().int().min(0).default(0),
  messagesPerMinute: z.number().int().min(0).default(0),
  recipientsPerMinute: z.number().int().min(0).default(0),
  /** RCPTs refused as unknown users (directory harvest). */
  unknownRecipientsPerMinute: z.number().int().min(0).default(0),
};

export const perClientSchema = z.object({
  ...perClientRates,
  /** The same limits per network (/24 for IPv4, /64 for IPv6); 0 = no limit. */
  perNetwork: z.object(perClientRates).strict().prefault({}),
  /** Prefix lengths of a "network". */
  ipv4Prefix: z.number().int().min(8).max(32).default(24),
  ipv6Prefix: z.number().int().min(16).max(128).default(64),
}).strict();

export const authLimitsSchema = z.object({
  /** Failures counted over this window, ms (a sliding window). */
  windowMs: z.number().int().min(1000).default(3_600_000),
  /** Failures of one (username, address) pair in the window before AUTH answers 454 4.7.0 at once. */
  maxFailuresPerUserAddress: z.number().int().min(1).default(5),
  /** Failures from one address (any user, unknown ones too) before 454 4.7.0. */
  maxFailuresPerAddress: z.number().int().min(1).default(10),
  /** Failures from one /64 (IPv6) or /24 (IPv4) before 454 4.7.0. */
  maxFailuresPerNetwork: z.number().int().min(1).default(30),
  /** Delay before answering a failure, ms, doubled per earlier failure of the address (growing). */
  failureDelayMs: z.number().int().min(0).default(500),
  /** Longest such delay, ms. */
  maxFailureDelayMs: z.number().int().min(0).default(8000),
  /** Password checks (scrypt, on the libuv pool) running at once; more wait their turn. */
  maxConcurrentChecks: z.number().int().min(1).max(64).default(2),
  /** Checks waiting for a slot; beyond this AUTH answers 454 4.7.0 without hashing. */
  maxQueuedChecks: z.number().int().min(0).default(100),
}).strict();

const dnsblZoneSchema = z.object({
  /** The list's DNS zone, e.g. "zen.spamhaus.org". */
  zone: z.string().min(1).regex(/^[A-Za-z0-9._-]+$/, 'expected a DNS zone name'),
  /** Added to the score when the client is listed; negative for allow lists (DNSWL). */
  weight: z.number().int().default(1),
  /**
   * Answers that count (postscreen's zone=127.0.0.[2..11]): each an IPv4 address whose octets may be
   * "n", "[a..b]" or "[a;b;c]". Absent: any 127.0.0.0/8 answer except 127.255.255.x.
   */
  codes: z.array(z.string().regex(/^(\d+|\[[\d.;]+\])(\.(\d+|\[[\d.;]+\])){3}$/, 'expected e.g. 127.0.0.2 or 127.0.0.[2..11]')).optional(),
  /** Also look up IPv6 clients (nibble names) and self-test with ::FFFF:7F00:2 / ::FFFF:7F00:1. */
  ipv6: z.boolean().default(false),
  /** "ip" (client addresses) or "domain" (DBL style, self-tested with TEST / INVALID). */
  kind: z.enum(['ip', 'domain']).default('ip'),
}).strict();

/** Policy checks (issue 12): blocklists, static access lists. */
export const policySchema = z.object({
  /** DNS blocklists and allow lists (RFC 5782); absent or no zones: off. mx listeners only. */
  dnsbl: z.object({
    zones: z.array(dnsblZoneSchema).default([]),
    /** A client whose score (sum of the weights of the zones listing it) reaches this is refused. */
    threshold: z.number().int().default(1),
    /** rcpt: 554 5.7.1 per recipient (postmaster@/abuse@ still accepted); connect: 554 instead of 220. */
    action: z.enum(['rcpt', 'connect']).default('rcpt'),
    /** Longest wait for the answers at the check, ms (no answer counts as not listed). */
    timeoutMs: z.number().int().min(50).default(3000),
    /** How often each zone is self-tested, ms (also at start). */
    selfTestIntervalMs: z.number().int().min(1000).default(3_600_000),
  }).strict().prefault({}),
  /** Resolver for the lists; absent: delivery.dns. */
  dns: z.object({
    servers: z.array(z.string().min(1)).optional(),
    timeoutMs: z.number().int().positive().default(2000),
    tries: z.number().int().positive().default(1),
  }).strict().optional(),
  /** How long a "not listed" answer is cached, s (listed answers are cached for their TTL). */
  dnsblNegativeTtlS: z.number().int().min(0).default(300),
  /** Entries in the blocklist answer cache. */
  dnsblCacheEntries: z.number().int().min(10).default(50_000),
  /**
   * Static access list checked before everything else (postscreen_access_list), first match wins:
   * permit skips the blocklists, pregreet and rate checks; reject answers 554 5.7.1 instead of 220.
   */
  accessList: z.array(z.object({ network: cidr, action: z.enum(['permit', 'reject']) }).strict()).default([]),
  /** Peers allowed to send a PROXY protocol header (listeners with proxyProtocol); others are closed at connect. */
  trustedProxies: z.array(cidr).default([]),
  /** Clients allowed to send XCLIENT (Postfix smtpd_authorized_xclient_hosts); others get 550 5.7.0, and it is not offered to them. */
  xclientNetworks: z.array(cidr).default([]),
  /** Clients allowed to send XFORWARD (Postfix smtpd_authorized_xforward_hosts). */
  xforwardNetworks: z.array(cidr).default([]),
}).strict();
