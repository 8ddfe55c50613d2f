/**
 * Our Resolver as mailauth's resolver function `(name, rrtype) => records` (mailauth's DNSResolver
 * type), with a deadline: verification at the end of DATA must not keep the client waiting on a
 * slow DNS server, so a lookup still running at the deadline fails as a timeout (mailauth then
 * reports temperror, never a refusal).
 *
 * Error codes are the node:dns ones mailauth tells apart: ENOTFOUND (NXDOMAIN), ENODATA (no
 * records of that type), ETIMEOUT (timeout, the deadline), ESERVFAIL (other temporary failures).
 */
import { DnsError, type RecordType, type Resolver } from '../dns/types.js';

/** mailauth's resolver function. */
export type MailauthResolver = (name: string, rrtype: string) => Promise<unknown>;

const TYPES = new Set<string>(['A', 'AAAA', 'MX', 'TXT', 'PTR']);

function coded(message: string, code: string): Error {
  return Object.assign(new Error(message), { code });
}

/** The node:dns style code of a DnsError. */
export function dnsCode(err: unknown): string {
  if (!(err instanceof DnsError)) return 'ESERVFAIL';
  if (err.kind === 'nxdomain') return 'ENOTFOUND';
  if (err.kind === 'nodata') return 'ENODATA';
  return /timeout/i.test(err.message) ? 'ETIMEOUT' : 'ESERVFAIL';
}

export interface AdapterOptions {
  /** ms since epoch after which lookups fail with ETIMEOUT; undefined: none (yet). Read at each lookup. */
  readonly deadline: () => number | undefined;
  /** Told about each temporary failure (for logs). */
  readonly onTemporary?: (name: string, rrtype: string, why: string) => void;
  readonly now?: () => number;
}

/**
 * Wraps `r` (with `lookup`) for mailauth: TXT as lists of character-strings, A/AAAA/PTR as strings,
 * MX as { exchange, priority }. Other types answer ENODATA. Rejects with an Error carrying `code`.
 * @throws TypeError when `r` has no `lookup`.
 */
export function mailauthResolver(r: Resolver, opts: AdapterOptions): MailauthResolver {
  const lookup = r.lookup?.bind(r);
  if (!lookup) throw new TypeError('verification needs a resolver with lookup()');
  const now = opts.now ?? Date.now;
  return async (name: string, rrtype: string): Promise<unknown> => {
    const type = String(rrtype).toUpperCase();
    if (!TYPES.has(type)) throw coded(`${name} ${type}: type not asked for`, 'ENODATA');
    const deadline = opts.deadline();
    const left = deadline === undefined ? Infinity : deadline - now();
    if (left <= 0) {
      opts.onTemporary?.(name, type, 'verification deadline passed');
      throw coded(`${name} ${type}: verification deadline passed`, 'ETIMEOUT');
    }
    let timer: NodeJS.Timeout | undefined;
    try {
      const q = lookup(name, type as RecordType);
      const set = left === Infinity ? await q : await Promise.race([
        q,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new DnsError('temporary', `${name} ${type}: verification deadline passed (timeout)`, name)), left);
        }),
      ]);
      return set.records;
    } catch (err) {
      const code = dnsCode(err);
      if (code === 'ETIMEOUT' || code === 'ESERVFAIL') opts.onTemporary?.(name, type, (err as Error).message);
      throw coded((err as Error).message, code);
    } finally {
      if (timer) clearTimeout(timer);
    }
  };
}
