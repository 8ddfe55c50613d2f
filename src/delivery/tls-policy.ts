/**
 * Outbound TLS policy: which security level a delivery uses toward its next hop, and the
 * certificate check of one connection.
 *
 * Sources, first match wins: a `delivery.tlsPolicies` rule matching the next hop (like Postfix's
 * smtp_tls_policy_maps: "domain", ".domain" for its subdomains, "[host]" / "[host]:port" for a
 * route or the relay host), then the hop's own setting (`delivery.tls` for MX delivery, the route's
 * or relay host's `tls`), then for MX delivery without a matching rule an MTA-STS policy
 * (RFC 8461; mta-sts.ts) may raise the level to verify (enforce) or ask for a logged check (testing).
 *
 * RFCs: RFC 3207 (STARTTLS), RFC 6125 6.4 (names in certificates: DNS-ID, one leftmost wildcard
 * label, via node:tls checkServerIdentity), RFC 7672 3 / Postfix TLS_README (the level names),
 * RFC 8461 4.2 (MTA-STS: the certificate must chain to a trusted root and name the MX host).
 * Owns: level resolution and the certificate verdict; it opens no connection.
 */
import { readFileSync, statSync } from 'node:fs';
import { isIP } from 'node:net';
import * as nodeTls from 'node:tls';
import type { PeerCertificate } from 'node:tls';
import type { TlsLevel, TlsPolicyRule, TlsSettings } from '../config/delivery-tls.js';
import type { PostlineConfig } from '../config/schema.js';
import { PostlineError } from '../core/errors.js';
import { reply } from '../core/reply.js';
import type { HopTls, SmtpNextHop as NextHop } from '../routing/types.js';

export type { TlsLevel };

/** The TLS policy of one delivery toward its next hop (before the host is known). */
export interface HopTlsPolicy {
  readonly level: TlsLevel;
  readonly implicit: boolean;
  readonly caFile?: string;
  readonly servername?: string;
  /** Where it came from, for diagnostics: "delivery.tls", "delivery.tlsPolicies .example.test", "relayhost", "MTA-STS". */
  readonly source: string;
  /** True when a tlsPolicies rule decided (MTA-STS is then not consulted). */
  readonly explicit: boolean;
}

/** What one connection does about TLS (SmtpClient option). */
export interface ConnectionTls {
  readonly level: TlsLevel;
  readonly implicit: boolean;
  /**
   * Names the certificate is checked against: enforced for verify and secure, the `verified` fact
   * otherwise. "x" is a host name or address (RFC 6125 matching); ".x" any subdomain of x.
   */
  readonly names: readonly string[];
  /** SNI; absent for an address. */
  readonly servername?: string;
  /** Trusted CAs (PEM) when a caFile is configured; absent: Node's CA store. */
  readonly ca?: readonly string[];
  readonly source: string;
  /** MTA-STS testing: the check runs and a failure is logged, never enforced (RFC 8461 5). */
  readonly reportOnly?: string;
}

/** The verdict on a TLS session's certificate. */
export interface CertificateVerdict {
  /** Chain valid against the trusted CAs and a name matched. */
  readonly verified: boolean;
  /** Why not, one line (absent when verified). */
  readonly reason?: string;
}

const RANK: Record<TlsLevel, number> = { none: 0, opportunistic: 1, required: 2, verify: 3, secure: 3 };

/** True when `level` refuses plaintext (required and above). */
export const requiresTls = (level: TlsLevel): boolean => RANK[level] >= RANK.required;
/** True when `level` checks the certificate (verify, secure). */
export const verifiesCertificate = (level: TlsLevel): boolean => RANK[level] >= RANK.verify;

/** The object form of any configured TLS setting ('starttls' = required, 'implicit' = required + implicit). */
export function settingsOf(t: HopTls): TlsSettings {
  if (typeof t === 'object') return t;
  if (t === 'starttls') return { mode: 'required', implicit: false };
  if (t === 'implicit') return { mode: 'required', implicit: true };
  return { mode: t, implicit: false };
}

/** The key a next hop is looked up by in tlsPolicies: its domain for MX delivery, else "[host]:port". */
function ruleMatches(rule: TlsPolicyRule, hop: NextHop): 'exact' | 'suffix' | undefined {
  const m = rule.match.toLowerCase().replace(/\.$/, '');
  if (m.startsWith('[')) {
    if (hop.kind !== 'host' || hop.mxLookup) return undefined;
    const close = m.indexOf(']');
    const host = m.slice(1, close);
    const port = m.slice(close + 1);
    if (host !== hop.host.toLowerCase()) return undefined;
    return port === '' || port === `:${hop.port}` ? 'exact' : undefined;
  }
  const name = (hop.kind === 'mx' ? hop.domain : hop.mxLookup ? hop.host : '').toLowerCase();
  if (!name) return undefined;
  if (m.startsWith('.')) return name.endsWith(m) ? 'suffix' : undefined;
  return name === m ? 'exact' : undefined;
}

/**
 * The matching tlsPolicies rule: an exact one ("domain", "[host]:port", "[host]") first, else
 * the longest matching ".domain". Undefined when none matches.
 */
export function matchingRule(rules: readonly TlsPolicyRule[], hop: NextHop): TlsPolicyRule | undefined {
  let best: TlsPolicyRule | undefined;
  for (const r of rules) {
    const how = ruleMatches(r, hop);
    if (how === 'exact') return r;
    if (how === 'suffix' && (!best || r.match.length > best.match.length)) best = r;
  }
  return best;
}

/**
 * The policy of a delivery to `hop` from the configuration (MTA-STS is applied later, by the
 * agent, to policies that are not `explicit`). Never throws.
 */
export function hopTlsPolicy(d: PostlineConfig['delivery'], hop: NextHop): HopTlsPolicy {
  const rule = matchingRule(d.tlsPolicies, hop);
  const defaults = settingsOf(d.tls);
  const s = rule ?? settingsOf(hop.tls);
  const source = rule ? `delivery.tlsPolicies ${rule.match}` : hop.kind === 'mx' ? 'delivery.tls' : 'next hop tls';
  // A rule or hop without its own CA file uses the default's (delivery.tls.caFile, like smtp_tls_CAfile).
  const caFile = s.caFile ?? defaults.caFile;
  return {
    level: s.mode, implicit: hop.kind === 'host' && s.implicit, source, explicit: rule !== undefined,
    ...(caFile ? { caFile } : {}), ...(s.servername ? { servername: s.servername } : {}),
  };
}

/**
 * The TLS of one connection to host `hostName` (the MX or relay host name, or an address) under
 * `p`. verify checks `servername` or the host name; secure the next-hop domain and its
 * subdomains (Postfix smtp_tls_secure_cert_match = nexthop, dot-nexthop), or `servername`.
 * @throws PostlineError ERR_TLS_CA_FILE (temporary, 4.3.5) when the CA file cannot be read.
 */
export function connectionTls(p: HopTlsPolicy, hop: NextHop, hostName: string, cas: CaFiles, reportOnly?: string): ConnectionTls {
  const domain = hop.kind === 'mx' ? hop.domain : hop.host;
  const names = p.servername ? [p.servername] : p.level === 'secure' ? [domain, `.${domain}`] : [hostName];
  const sni = p.servername ?? (isIP(hostName) ? undefined : hostName);
  return {
    level: p.level, implicit: p.implicit, names, source: p.source,
    ...(sni ? { servername: sni } : {}),
    ...(p.caFile ? { ca: cas.with(p.caFile) } : {}),
    ...(reportOnly ? { reportOnly } : {}),
  };
}

/**
 * Judges a TLS session's certificate: `authorized` (node:tls chain check against the trusted CAs)
 * and a name of `names` (see ConnectionTls.names). Never throws.
 */
export function judgeCertificate(authorized: boolean, authorizationError: unknown, cert: PeerCertificate | undefined, names: readonly string[]): CertificateVerdict {
  if (!cert || Object.keys(cert).length === 0) return { verified: false, reason: 'the server sent no certificate' };
  if (!authorized) return { verified: false, reason: `certificate not trusted: ${errorText(authorizationError)}` };
  for (const n of names) if (nameMatches(cert, n)) return { verified: true };
  return { verified: false, reason: `certificate name mismatch: ${names.join(', ')} not in ${certNames(cert)}` };
}

function nameMatches(cert: PeerCertificate, name: string): boolean {
  if (!name.startsWith('.')) return nodeTls.checkServerIdentity(name, cert) === undefined;
  const parent = name.slice(1).toLowerCase();
  return dnsNames(cert).some((n) => {
    const base = n.startsWith('*.') ? n.slice(2) : n;
    return (n.startsWith('*.') && base === parent) || base.endsWith(`.${parent}`);
  });
}

/** DNS names of a certificate: its subjectAltName DNS entries, else the subject CN (RFC 6125 6.4.4). */
function dnsNames(cert: PeerCertificate): string[] {
  const san = (cert.subjectaltname ?? '').split(/,\s*/).filter((x) => x.startsWith('DNS:')).map((x) => x.slice(4).toLowerCase());
  if (san.length > 0) return san;
  const cn = cert.subject?.CN;
  return (Array.isArray(cn) ? cn : cn ? [cn] : []).map((x) => String(x).toLowerCase());
}

function certNames(cert: PeerCertificate): string {
  const san = cert.subjectaltname;
  return san ? `the certificate's names (${san})` : `the certificate's subject (CN=${String(cert.subject?.CN ?? '')})`;
}

/** OpenSSL verification codes (TLSSocket.authorizationError) in words. */
const VERIFY_CODES: Record<string, string> = {
  CERT_HAS_EXPIRED: 'certificate has expired',
  CERT_NOT_YET_VALID: 'certificate is not yet valid',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'self-signed certificate',
  SELF_SIGNED_CERT_IN_CHAIN: 'self-signed certificate in the chain',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'unable to verify the first certificate (unknown issuer)',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'issuer not among the trusted CAs',
  UNABLE_TO_GET_ISSUER_CERT: 'issuer certificate not found',
  CERT_REVOKED: 'certificate revoked',
  CERT_SIGNATURE_FAILURE: 'certificate signature failure',
  INVALID_CA: 'invalid CA certificate in the chain',
};

function errorText(e: unknown): string {
  if (e instanceof Error) return e.message;
  if (e === undefined || e === null) return 'unknown reason';
  const code = String(e);
  return VERIFY_CODES[code] ? `${VERIFY_CODES[code]} (${code})` : code;
}

/** Node's default CA store (with NODE_EXTRA_CA_CERTS where the runtime exposes it). */
function defaultCas(): readonly string[] {
  const get = (nodeTls as unknown as { getCACertificates?: (kind: string) => string[] }).getCACertificates;
  return get ? get('default') : nodeTls.rootCertificates;
}

/** How often a CA file is checked for changes, ms. */
const CA_RECHECK_MS = 10_000;

/**
 * CA files read once and checked for changes at most every 10 s (so a replaced file is used
 * without a restart). `with(path)` gives Node's CA store plus the file's certificates.
 */
export class CaFiles {
  private readonly files = new Map<string, { pem: readonly string[]; mtimeMs: number; checkedAt: number }>();

  /** @throws PostlineError ERR_TLS_CA_FILE (temporary, 451 4.3.5) when the file cannot be read or holds no certificate. */
  with(path: string, now = Date.now()): readonly string[] {
    const known = this.files.get(path);
    if (known && now - known.checkedAt < CA_RECHECK_MS) return known.pem;
    try {
      const mtimeMs = statSync(path).mtimeMs;
      if (known && known.mtimeMs === mtimeMs) {
        known.checkedAt = now;
        return known.pem;
      }
      const text = readFileSync(path, 'utf8');
      if (!text.includes('-----BEGIN CERTIFICATE-----')) throw new Error('no PEM certificate in it');
      const pem = [...defaultCas(), text];
      this.files.set(path, { pem, mtimeMs, checkedAt: now });
      return pem;
    } catch (err) {
      const text = `cannot use the TLS CA file ${path}: ${(err as Error).message}`;
      throw new PostlineError('ERR_TLS_CA_FILE', text, { temporary: true, reply: reply(451, '4.3.5', text), cause: err });
    }
  }
}
