/**
 * Configuration schema of outbound TLS (src/delivery/tls-policy.ts applies it): the TLS setting of
 * a next hop (`delivery.tls`, `delivery.relayhost.tls`, `delivery.routes[].tls`), the per-destination
 * rules (`delivery.tlsPolicies`, like Postfix's smtp_tls_policy_maps) and MTA-STS (RFC 8461,
 * `delivery.mtaSts`). Kept apart from schema.ts so that file stays one screenful per section.
 */
import { z } from 'zod';

/**
 * Security levels, weakest first (Postfix smtp_tls_security_level in brackets):
 * none (none), opportunistic (may), required (encrypt), verify (verify: chain and the MX or relay
 * host name), secure (secure: chain and the next-hop domain or a subdomain of it).
 */
export const TLS_LEVELS = ['none', 'opportunistic', 'required', 'verify', 'secure'] as const;
export type TlsLevel = (typeof TLS_LEVELS)[number];

/** The object form of a TLS setting. */
export const tlsSettingsSchema = z.object({
  mode: z.enum(TLS_LEVELS),
  /**
   * PEM file of CA certificates trusted (for verify / secure) in addition to Node's CA store;
   * the default entry's file is also used for MTA-STS verification (like Postfix smtp_tls_CAfile).
   */
  caFile: z.string().min(1).optional(),
  /** Name sent as SNI and checked in the certificate instead of the host name (verify). */
  servername: z.string().min(1).optional(),
  /** TLS from the first byte (port 465 style, Postfix smtp_tls_wrappermode); never for MX delivery. */
  implicit: z.boolean().default(false),
}).strict();
export type TlsSettings = z.infer<typeof tlsSettingsSchema>;

/**
 * One TLS setting: a level name, the object form, or the older spellings: `starttls` (= required)
 * and, for routes and the relay host, `implicit` (= required with implicit TLS).
 */
export const hopTlsSchema = z.union([
  z.enum([...TLS_LEVELS, 'starttls', 'implicit']),
  tlsSettingsSchema,
]);
export type HopTlsSetting = z.infer<typeof hopTlsSchema>;

/** MX delivery's default: as hopTlsSchema, without implicit TLS (port 25 never wraps). */
export const mxTlsSchema = z.union([
  z.enum([...TLS_LEVELS, 'starttls']),
  tlsSettingsSchema.refine((s) => !s.implicit, { message: 'implicit TLS is not used for MX delivery (port 25)', path: ['implicit'] }),
]);

/**
 * A per-destination rule. `match`: "example.test" (that next-hop domain: the recipient domain for
 * MX delivery), ".example.test" (every subdomain of it), "[host]" or "[host]:port" (a route or the
 * relay host with that host name or address, as in Postfix's policy table).
 */
export const tlsPolicyRuleSchema = tlsSettingsSchema.extend({
  match: z.string().min(1).regex(/^(\[[^\]\s]+\](:\d{1,5})?|\.?[^\s[\]]+)$/, 'expected "domain", ".domain", "[host]" or "[host]:port"'),
}).strict();
export type TlsPolicyRule = z.infer<typeof tlsPolicyRuleSchema>;

/** MTA-STS (RFC 8461) for MX delivery. */
export const mtaStsSchema = z.object({
  /** Look up and apply recipient domains' MTA-STS policies (MX delivery only). */
  enabled: z.boolean().default(true),
  /** Longest wait for a policy fetch (HTTPS GET), ms; a fetch that fails counts as no new policy. */
  fetchTimeoutMs: z.number().int().positive().max(120_000).default(20_000),
  /** Largest policy file, bytes (RFC 8461 3.3 suggests 64 KiB). */
  maxPolicyBytes: z.number().int().positive().max(1024 * 1024).default(64 * 1024),
  /** How long a `_mta-sts` TXT answer (or its absence) is reused before asking DNS again, ms. */
  dnsCacheMs: z.number().int().min(0).default(300_000),
  /** Policies kept (in memory and in dataDir/mta-sts.json); the ones expiring first are dropped. */
  cacheEntries: z.number().int().positive().max(1_000_000).default(10_000),
  /** Tests: PEM CA file trusted for the policy host in addition to Node's CA store. */
  caFile: z.string().min(1).optional(),
  /** Tests: the port of the policy host (443 in real use). */
  port: z.number().int().min(1).max(65535).default(443),
}).strict();
export type MtaStsConfig = z.infer<typeof mtaStsSchema>;

/** The CA files named in a delivery section, with their key paths (for resolving and checking). */
interface DeliveryTlsFiles {
  tls: HopTlsSetting | z.infer<typeof mxTlsSchema>;
  relayhost?: { tls: HopTlsSetting } | undefined;
  routes: { tls: HopTlsSetting }[];
  tlsPolicies: TlsPolicyRule[];
  mtaSts: MtaStsConfig;
}

/**
 * Makes every `caFile` of the delivery section absolute (relative to `baseDir`, in place) and
 * checks that each is readable by `exists`. Returns the dotted key of the first missing file, or
 * undefined when all are there.
 */
export function resolveDeliveryCaFiles(d: DeliveryTlsFiles, baseDir: string, resolvePath: (base: string, p: string) => string, exists: (p: string) => boolean): string | undefined {
  const spots: { key: string; get: () => string | undefined; set: (v: string) => void }[] = [];
  const add = (key: string, holder: { caFile?: string | undefined }) => spots.push({ key, get: () => holder.caFile, set: (v) => { holder.caFile = v; } });
  if (typeof d.tls === 'object') add('delivery.tls.caFile', d.tls);
  if (d.relayhost && typeof d.relayhost.tls === 'object') add('delivery.relayhost.tls.caFile', d.relayhost.tls);
  d.routes.forEach((r, i) => { if (typeof r.tls === 'object') add(`delivery.routes.${i}.tls.caFile`, r.tls); });
  d.tlsPolicies.forEach((r, i) => add(`delivery.tlsPolicies.${i}.caFile`, r));
  add('delivery.mtaSts.caFile', d.mtaSts);
  for (const s of spots) {
    const v = s.get();
    if (v === undefined) continue;
    s.set(resolvePath(baseDir, v));
    if (!exists(s.get()!)) return s.key;
  }
  return undefined;
}
