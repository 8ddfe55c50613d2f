/**
 * DNS resolver interface (DESIGN.md convention 6) used by MX delivery, the DNS lists and inbound
 * verification (SPF, DKIM, DMARC, ARC). The real one wraps node:dns with configurable servers
 * ("127.0.0.1:5353") and adds `lookup`, answers with their TTLs from our own stub client
 * (wire.ts, client.ts: node:dns gives TTLs for A and AAAA only); cache.ts caches by those TTLs.
 * Tests run a real DNS server on loopback.
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
  /**
   * @param ttl for 'nxdomain' / 'nodata' from `lookup`: how long the negative answer may be cached,
   *        seconds (RFC 2308 5: the SOA's TTL or MINIMUM, the smaller); absent when the answer had no SOA.
   */
  constructor(readonly kind: DnsErrorKind, message: string, readonly hostname: string, readonly ttl?: number) {
    super(message);
    this.name = 'DnsError';
  }
}

/** The record types `Resolver.lookup` answers. */
export type RecordType = 'A' | 'AAAA' | 'MX' | 'TXT' | 'PTR';

/** The shape of one record of each type: addresses and names as strings, TXT as its character-strings. */
export interface RecordData {
  readonly A: string;
  readonly AAAA: string;
  readonly MX: MxRecord;
  readonly TXT: string[];
  readonly PTR: string;
}

/** An answer: the records (CNAMEs followed) and how long it may be cached, seconds (the smallest TTL in it). */
export interface RecordSet<T> {
  readonly records: T[];
  readonly ttl: number;
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
  /**
   * Names of an address (PTR records of its in-addr.arpa / ip6.arpa name, RFC 1035 3.5, RFC 3596
   * 2.5). Rejects with DnsError (a TypeError for a string that is not an IP address).
   */
  resolvePtr?(address: string): Promise<string[]>;
  /**
   * Records of one type with their TTL (CNAME chains followed). Rejects with DnsError; negative
   * answers carry the time they may be cached (`DnsError.ttl`). Names are queried as given (A-labels).
   */
  lookup?<T extends RecordType>(name: string, type: T): Promise<RecordSet<RecordData[T]>>;
}
