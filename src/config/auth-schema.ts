/**
 * The configuration keys of email authentication, part of the schema in schema.ts (split by job):
 * DKIM signing keys (`dkim.keys`), inbound verification (`auth.*`) and ARC sealing (`arc.*`).
 * Every key has a default; the README documents each one.
 */
import { z } from 'zod';

/** One DKIM signing key (src/dkim/): `postline dkim keygen` writes one into dataDir/dkim/. */
export const dkimKeySchema = z.object({
  /** The signing domain (d=): mail whose From: domain is this one or below it is signed. */
  domain: z.string().min(1).max(253),
  /** The selector (s=): the key is published at SELECTOR._domainkey.DOMAIN. */
  selector: z.string().regex(/^[A-Za-z0-9]([A-Za-z0-9.-]{0,250}[A-Za-z0-9])?$/, 'expected a DNS label (letters, digits, "-", ".")'),
  algorithm: z.enum(['rsa-sha256', 'ed25519-sha256']).default('rsa-sha256'),
  /** PEM private key file (PKCS#8 or PKCS#1); a relative path is relative to the configuration file's folder. */
  privateKey: z.string().min(1),
}).strict();

/**
 * Inbound verification on mx listeners (src/auth/): SPF (MAIL FROM and HELO), DKIM, DMARC, ARC, and
 * an Authentication-Results field. On by default for clients that are neither authenticated nor
 * in relay.trustedNetworks (as OpenDKIM's InternalHosts and OpenDMARC's IgnoreHosts leave out
 * local senders); a DMARC reject is refused only with dmarc.reject.
 */
export const authSchema = z.object({
  /** Verify and add Authentication-Results on mx listeners. */
  enabled: z.boolean().default(true),
  /** The authserv-id of our Authentication-Results (RFC 8601 2.5); default: hostname. */
  authservId: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/, 'expected a host name like mx.example.com').optional(),
  /** Also verify mail from authenticated clients and relay.trustedNetworks. */
  verifyTrusted: z.boolean().default(false),
  /** RSA DKIM/ARC keys shorter than this give dkim=policy (RFC 8301 3.2: 1024 at least). */
  minKeyBits: z.number().int().min(512).max(8192).default(1024),
  /** Longest wait for DNS answers at the end of DATA (SPF: from the start of the message), ms; later ones are temperror. */
  timeoutMs: z.number().int().min(100).max(120_000).default(10_000),
  dmarc: z.object({
    /** Refuse a DMARC failure whose policy (after pct=) is reject: 550 5.7.1 at the end of DATA. Else it is marked like quarantine. */
    reject: z.boolean().default(false),
  }).strict().prefault({}),
  /** Resolver for verification; absent: delivery.dns. */
  dns: z.object({
    servers: z.array(z.string().min(1)).optional(),
    timeoutMs: z.number().int().positive().default(3000),
    tries: z.number().int().positive().default(2),
  }).strict().optional(),
  /** The answer cache of verification lookups (TXT, A, AAAA, MX, PTR): by TTL, bounded. */
  dnsCache: z.object({
    entries: z.number().int().min(0).max(10_000_000).default(20_000),
    /** Longest time an answer is kept, s, whatever its TTL. */
    maxTtlS: z.number().int().min(0).default(3600),
    /** How long NXDOMAIN/NODATA without a SOA is kept, s (with one: its negative TTL, RFC 2308). */
    negativeTtlS: z.number().int().min(0).default(300),
  }).strict().prefault({}),
}).strict();

/** ARC sealing (RFC 8617) of mail verified on an mx listener that Postline passes on; absent: none. */
export const arcSchema = z.object({
  /** The sealing domain (d=); the key is published at SELECTOR._domainkey.DOMAIN. */
  domain: z.string().min(1).max(253),
  selector: z.string().regex(/^[A-Za-z0-9]([A-Za-z0-9.-]{0,250}[A-Za-z0-9])?$/, 'expected a DNS label (letters, digits, "-", ".")'),
  /** PEM RSA private key file (mailauth seals with rsa-sha256 only); relative to the configuration file's folder. */
  privateKey: z.string().min(1),
  /**
   * Seal every verified mx message (all of it is relayed onward: Postline delivers only by SMTP).
   * false: only mail for recipients whose delivery.routes entry has arcSeal: true.
   */
  sealRelayed: z.boolean().default(true),
}).strict();
