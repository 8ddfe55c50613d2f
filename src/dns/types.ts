/**
 * DNS resolver interface (DESIGN.md convention 6) used by MX delivery. The real one wraps node:dns
 * with configurable servers ("127.0.0.1:5353"); tests run a real DNS server on loopback.
 */

export interface MxRecord {
  readonly exchange: string;
  readonly priority: number;
}

/**
 * Errors: a lookup rejects with a DnsError whose `kind` tells the caller what to do:
 * - 'nxdomain': the name does not exist (permanent, 5.1.2 for a recipient domain)
 * - 'nodata': the name exists but has no record of that type
 * - 'temporary': SERVFAIL, timeout, refused, network trouble (defer, never bounce)
 */
export type DnsErrorKind = 'nxdomain' | 'nodata' | 'temporary';

export class DnsError extends Error {
  constructor(readonly kind: DnsErrorKind, message: string, readonly hostname: string) {
    super(message);
    this.name = 'DnsError';
  }
}

export interface Resolver {
  /** MX records of `domain` (A-label form). Rejects with DnsError. */
  resolveMx(domain: string): Promise<MxRecord[]>;
  /** IPv4 addresses. Rejects with DnsError. */
  resolve4(host: string): Promise<string[]>;
  /** IPv6 addresses. Rejects with DnsError. */
  resolve6(host: string): Promise<string[]>;
  /**
   * TXT records of `name`, each as its list of character-strings (RFC 1035 3.3.14; join them for
   * DKIM, RFC 6376 3.6.2.2). Optional for resolvers that only serve delivery. Rejects with DnsError.
   */
  resolveTxt?(name: string): Promise<string[][]>;
  /** IPv4 addresses with their TTLs, seconds (DNS lists cache by TTL). Rejects with DnsError. */
  resolve4Ttl?(host: string): Promise<{ address: string; ttl: number }[]>;
}
