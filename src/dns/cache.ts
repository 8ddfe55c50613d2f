/**
 * A caching Resolver: answers kept for their TTL (RFC 1035 3.2.1; RFC 2181 8), negative answers
 * (NXDOMAIN, NODATA) for the SOA's negative TTL (RFC 2308 5) or a default, never temporary
 * failures. Used by inbound verification (SPF, DKIM, DMARC, ARC): the same TXT, A and MX records
 * are asked for message after message.
 *
 * Owns: the entry bound (least recently used dropped first), the TTL floor and ceiling, and
 * sharing one lookup among callers asking the same question at the same time.
 */
import { DnsError, type MxRecord, type RecordData, type RecordSet, type RecordType, type Resolver } from './types.js';
import { reverseName } from './client.js';

export interface DnsCacheOptions {
  /** Answers kept at most (positive and negative); the least recently used goes first. */
  readonly maxEntries: number;
  /** Longest time an answer is kept, seconds, whatever its TTL. */
  readonly maxTtlS: number;
  /** How long a negative answer without a SOA is kept, seconds (capped by maxTtlS). */
  readonly negativeTtlS: number;
  /** ms since epoch (tests). */
  readonly now?: () => number;
}

/** What the cache counted since it was made. */
export interface DnsCacheStats {
  readonly hits: number;
  readonly misses: number;
  readonly entries: number;
}

type Entry = { readonly expires: number; readonly set?: RecordSet<unknown>; readonly error?: DnsError };

/** A Resolver whose lookups go through the cache; the inner one must have `lookup`. */
export class CachingResolver implements Resolver {
  private readonly entries = new Map<string, Entry>();
  private readonly pending = new Map<string, Promise<RecordSet<unknown>>>();
  private readonly now: () => number;
  private hits = 0;
  private misses = 0;

  /** @throws TypeError when `inner` has no `lookup`. */
  constructor(private readonly inner: Resolver, private readonly opts: DnsCacheOptions) {
    if (!inner.lookup) throw new TypeError('CachingResolver needs a resolver with lookup()');
    this.now = opts.now ?? Date.now;
  }

  /** Records of `type` for `name`, from the cache when fresh. Rejects with DnsError (a cached negative answer too). */
  async lookup<T extends RecordType>(name: string, type: T): Promise<RecordSet<RecordData[T]>> {
    const key = `${type} ${name.trim().replace(/\.$/, '').toLowerCase()}`;
    const hit = this.entries.get(key);
    if (hit) {
      if (hit.expires > this.now()) {
        this.hits++;
        this.entries.delete(key); // most recently used last
        this.entries.set(key, hit);
        if (hit.error) throw hit.error;
        const set = hit.set as RecordSet<RecordData[T]>;
        return { records: [...set.records], ttl: Math.max(0, Math.ceil((hit.expires - this.now()) / 1000)) };
      }
      this.entries.delete(key);
    }
    const inFlight = this.pending.get(key);
    if (inFlight) {
      this.hits++;
      const set = (await inFlight) as RecordSet<RecordData[T]>;
      return { records: [...set.records], ttl: set.ttl };
    }
    this.misses++;
    const p = this.inner.lookup!(name, type);
    this.pending.set(key, p);
    try {
      const set = await p;
      this.remember(key, { set }, set.ttl);
      return { records: [...set.records], ttl: set.ttl };
    } catch (err) {
      if (err instanceof DnsError && err.kind !== 'temporary') this.remember(key, { error: err }, err.ttl ?? this.opts.negativeTtlS);
      throw err;
    } finally {
      this.pending.delete(key);
    }
  }

  resolveMx(domain: string): Promise<MxRecord[]> {
    return this.records(domain, 'MX');
  }

  resolve4(host: string): Promise<string[]> {
    return this.records(host, 'A');
  }

  resolve6(host: string): Promise<string[]> {
    return this.records(host, 'AAAA');
  }

  resolveTxt(name: string): Promise<string[][]> {
    return this.records(name, 'TXT');
  }

  async resolve4Ttl(host: string): Promise<{ address: string; ttl: number }[]> {
    const set = await this.lookup(host, 'A');
    return set.records.map((address) => ({ address, ttl: set.ttl }));
  }

  resolvePtr(address: string): Promise<string[]> {
    return this.records(reverseName(address), 'PTR');
  }

  /** Hits (cached or shared in flight), misses, entries kept. */
  stats(): DnsCacheStats {
    return { hits: this.hits, misses: this.misses, entries: this.entries.size };
  }

  private async records<T extends RecordType>(name: string, type: T): Promise<RecordData[T][]> {
    return (await this.lookup(name, type)).records;
  }

  private remember(key: string, e: Omit<Entry, 'expires'>, ttlS: number): void {
    const ttl = Math.min(Math.max(0, ttlS), this.opts.maxTtlS);
    if (ttl <= 0 || this.opts.maxEntries <= 0) return;
    this.entries.delete(key);
    this.entries.set(key, { ...e, expires: this.now() + ttl * 1000 });
    while (this.entries.size > this.opts.maxEntries) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
    }
  }
}
