/**
 * The real DNS resolver: node:dns/promises with configurable servers, timeout and tries; `lookup`
 * and `resolvePtr` (answers with TTLs) ask the same servers through our stub client (client.ts).
 *
 * RFCs: RFC 1035 (queries), RFC 2308 (NXDOMAIN vs NODATA). Owns: mapping c-ares error codes to
 * `DnsError` kinds ('nxdomain' | 'nodata' | 'temporary'), so callers never see raw resolver codes.
 */
import { Resolver as NodeResolver } from 'node:dns/promises';
import { parseServer, reverseName, stubQuery, type StubOptions } from './client.js';
import { DnsError, type MxRecord, type Resolver } from './types.js';

export interface ResolverOptions {
  /** Name servers as "host", "host:port", "[v6]:port"; default: the system's. */
  readonly servers?: readonly string[];
  /** Per-try timeout, ms. */
  readonly timeoutMs: number;
  /** Tries per name server before giving up. */
  readonly tries: number;
}

/**
 * Maps a node:dns error to a DnsError: ENOTFOUND → 'nxdomain', ENODATA → 'nodata', everything
 * else (ESERVFAIL, ETIMEOUT, ECONNREFUSED, EREFUSED, ...) → 'temporary' (never a reason to bounce).
 */
export function toDnsError(err: unknown, hostname: string, rrtype: string): DnsError {
  if (err instanceof DnsError) return err;
  const code = (err as NodeJS.ErrnoException | undefined)?.code ?? 'EUNKNOWN';
  const kind = code === 'ENOTFOUND' ? 'nxdomain' : code === 'ENODATA' ? 'nodata' : 'temporary';
  const what = kind === 'nxdomain' ? 'name does not exist' : kind === 'nodata' ? `no ${rrtype} records` : `lookup failed (${code})`;
  return new DnsError(kind, `${hostname} ${rrtype}: ${what}`, hostname);
}

/**
 * Creates a Resolver (dns/types.ts) on node:dns/promises.
 * @throws TypeError when a server string is not an IP address with optional port (from setServers).
 */
export function createResolver(opts: ResolverOptions): Resolver {
  const r = new NodeResolver({ timeout: opts.timeoutMs, tries: opts.tries });
  if (opts.servers && opts.servers.length > 0) r.setServers([...opts.servers]);
  async function wrap<T>(host: string, rrtype: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw toDnsError(err, host, rrtype);
    }
  }
  // The stub client asks the same servers: the configured ones, else the system's (as c-ares read them).
  let stub: StubOptions | undefined;
  const stubOpts = (): StubOptions => {
    stub ??= { servers: r.getServers().map(parseServer), timeoutMs: opts.timeoutMs, tries: opts.tries };
    return stub;
  };
  return {
    lookup: (name, type) => stubQuery(stubOpts(), name, type),
    resolvePtr: async (address) => (await stubQuery(stubOpts(), reverseName(address), 'PTR')).records,
    resolveMx: (domain) =>
      wrap(domain, 'MX', async () => (await r.resolveMx(domain)).map((m): MxRecord => ({ exchange: m.exchange, priority: m.priority }))),
    resolve4: (host) => wrap(host, 'A', () => r.resolve4(host)),
    resolve6: (host) => wrap(host, 'AAAA', () => r.resolve6(host)),
    resolveTxt: (name) => wrap(name, 'TXT', () => r.resolveTxt(name)),
    resolve4Ttl: (host) => wrap(host, 'A', async () => (await r.resolve4(host, { ttl: true })).map((a) => ({ address: a.address, ttl: a.ttl }))),
  };
}
