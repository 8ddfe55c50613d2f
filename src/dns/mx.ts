/**
 * MX resolution for outbound delivery: the ordered list of hosts and addresses to try.
 *
 * RFCs: RFC 5321 5.1 (MX ordering, random order among equal preference, implicit MX), RFC 7505
 * (null MX "."), RFC 5890/3492 via node:url domainToASCII (IDN names as A-labels), RFC 3463
 * (5.1.2 bad destination system, 5.1.10 null MX, 4.4.3 directory server failure, 4.4.4 unable to route).
 *
 * Owns: deciding from DNS answers whether a domain is deliverable, permanently not (bounce) or not
 * now (defer). A temporary DNS failure never becomes a bounce. An MX host whose name does not
 * resolve is skipped when another one does; when none does, the answer is permanent (5.4.4) if every
 * failure was NXDOMAIN or NODATA and temporary (4.4.3) if any was not, as Postfix does with
 * smtp_defer_if_no_mx_address_found = no (RFC 5321 5.1: an unresolvable MX must be reported as an error).
 */
import { isIP } from 'node:net';
import { toALabel } from '../core/envelope.js';
import { PostlineError } from '../core/errors.js';
import { reply } from '../core/reply.js';
import { DnsError, type Resolver } from './types.js';

export { toALabel };

/** One host to try, with its addresses in order (A records first, then AAAA). */
export interface MxHost {
  /** Host name (A-label, lower case, no trailing dot). */
  readonly name: string;
  /** MX preference; 0 for an implicit MX. */
  readonly preference: number;
  /** True when the domain has no MX and its own address records are used (RFC 5321 5.1). */
  readonly implicit: boolean;
  readonly addresses: readonly string[];
}

/** The stable codes of MxLookupError (PostlineError.code). */
export type MxLookupCode =
  | 'ERR_DNS_BAD_DOMAIN' | 'ERR_DNS_NULL_MX' | 'ERR_DNS_NXDOMAIN' | 'ERR_DNS_TEMPORARY' | 'ERR_DNS_NO_MX'
  | 'ERR_DNS_MX_UNRESOLVED' | 'ERR_DNS_HOST';

/** Why MX resolution gave no host: `temporary` → defer, otherwise bounce; `dsnStatus` for the DSN. */
export class MxLookupError extends PostlineError {
  readonly dsnStatus: string;
  declare readonly code: MxLookupCode;
  constructor(code: MxLookupCode, message: string, temporary: boolean, dsnStatus: string, cause?: unknown) {
    super(code, message, { temporary, reply: reply(temporary ? 451 : dsnStatus === '5.1.10' ? 556 : 550, dsnStatus, message), cause });
    this.name = 'MxLookupError';
    this.dsnStatus = dsnStatus;
  }
}

export interface MxOptions {
  /** Random source in [0,1) for shuffling equal preferences (tests may fix it). */
  readonly random?: () => number;
}


/** Sorts MX records by preference; records with equal preference are shuffled (RFC 5321 5.1). */
export function orderMx<T extends { priority: number }>(records: readonly T[], random: () => number = Math.random): T[] {
  const keyed = records.map((r) => ({ r, k: random() }));
  keyed.sort((a, b) => a.r.priority - b.r.priority || a.k - b.k);
  return keyed.map((x) => x.r);
}

/**
 * Addresses of one host: A records then AAAA (an IP literal is returned as is).
 * @throws DnsError when neither lookup gives an address ('temporary' wins over 'nxdomain'/'nodata').
 */
export async function resolveHostAddresses(resolver: Resolver, host: string): Promise<string[]> {
  if (isIP(host)) return [host];
  const [v4, v6] = await Promise.allSettled([resolver.resolve4(host), resolver.resolve6(host)]);
  const out = [...(v4.status === 'fulfilled' ? v4.value : []), ...(v6.status === 'fulfilled' ? v6.value : [])];
  if (out.length > 0) return out;
  const errs = [v4, v6].flatMap((s) => (s.status === 'rejected' ? [s.reason as unknown] : []));
  const dnsErrs = errs.map((e) => (e instanceof DnsError ? e : new DnsError('temporary', String(e), host)));
  const temp = dnsErrs.find((e) => e.kind === 'temporary');
  if (temp) throw temp;
  if (dnsErrs.some((e) => e.kind === 'nxdomain')) throw new DnsError('nxdomain', `${host}: name does not exist`, host);
  throw new DnsError('nodata', `${host}: no A or AAAA records`, host);
}

/**
 * Resolves the hosts to try for mail to `domain` (RFC 5321 5.1), best first.
 * Domain may be a U-label (IDN); it is converted to an A-label.
 * @returns hosts in order, each with ≥1 address; an MX host that does not resolve is skipped.
 * @throws MxLookupError: null MX → permanent 5.1.10; NXDOMAIN or invalid name → permanent 5.1.2;
 *   no MX and no address → permanent 5.4.4; no MX host resolving, every failure NXDOMAIN/NODATA →
 *   permanent 5.4.4 (ERR_DNS_MX_UNRESOLVED); DNS trouble (SERVFAIL, timeout) on the MX lookup or on
 *   every MX host that did not resolve → temporary 4.4.3.
 */
export async function resolveMxHosts(resolver: Resolver, domain: string, opts: MxOptions = {}): Promise<MxHost[]> {
  const name = toALabel(domain);
  if (!name) throw new MxLookupError('ERR_DNS_BAD_DOMAIN', `invalid domain name "${domain}"`, false, '5.1.2');
  let records;
  try {
    records = await resolver.resolveMx(name);
  } catch (err) {
    return implicitMx(resolver, name, err);
  }
  const real = records.filter((r) => r.exchange !== '' && r.exchange !== '.');
  if (real.length === 0 && records.length > 0) {
    throw new MxLookupError('ERR_DNS_NULL_MX', `domain ${name} does not accept mail (null MX, RFC 7505)`, false, '5.1.10');
  }
  if (real.length === 0) return implicitMx(resolver, name, new DnsError('nodata', `${name} MX: no records`, name));
  return resolveExchanges(resolver, name, orderMx(real, opts.random));
}

/** No MX records: the domain itself is the MX when it has addresses (RFC 5321 5.1). */
async function implicitMx(resolver: Resolver, name: string, err: unknown): Promise<MxHost[]> {
  const e = err instanceof DnsError ? err : new DnsError('temporary', String(err), name);
  if (e.kind === 'nxdomain') throw new MxLookupError('ERR_DNS_NXDOMAIN', `domain ${name} does not exist`, false, '5.1.2', e);
  if (e.kind === 'temporary') throw new MxLookupError('ERR_DNS_TEMPORARY', `DNS lookup of MX for ${name} failed temporarily: ${e.message}`, true, '4.4.3', e);
  try {
    const addresses = await resolveHostAddresses(resolver, name);
    return [{ name, preference: 0, implicit: true, addresses }];
  } catch (err2) {
    const e2 = err2 as DnsError;
    if (e2.kind === 'temporary') throw new MxLookupError('ERR_DNS_TEMPORARY', `DNS lookup of ${name} failed temporarily: ${e2.message}`, true, '4.4.3', e2);
    throw new MxLookupError('ERR_DNS_NO_MX', `domain ${name} has no MX and no address records`, false, '5.4.4', e2);
  }
}

async function resolveExchanges(resolver: Resolver, name: string, ordered: readonly { exchange: string; priority: number }[]): Promise<MxHost[]> {
  const settled = await Promise.allSettled(ordered.map((r) => resolveHostAddresses(resolver, toALabel(r.exchange) || r.exchange)));
  const hosts: MxHost[] = [];
  const failures: DnsError[] = [];
  settled.forEach((s, i) => {
    const r = ordered[i]!;
    const host = toALabel(r.exchange) || r.exchange;
    if (s.status === 'fulfilled') hosts.push({ name: host, preference: r.priority, implicit: false, addresses: s.value });
    else failures.push(s.reason instanceof DnsError ? s.reason : new DnsError('temporary', String(s.reason), host));
  });
  if (hosts.length > 0) return hosts;
  const why = failures.map((e) => e.message).join('; ');
  // A soft failure dominates hard ones: the host that failed for now may be the one that exists.
  if (failures.some((e) => e.kind === 'temporary')) {
    throw new MxLookupError('ERR_DNS_TEMPORARY', `DNS lookup of the MX hosts of ${name} failed temporarily: ${why}`, true, '4.4.3');
  }
  throw new MxLookupError('ERR_DNS_MX_UNRESOLVED', `no MX host of ${name} has an address: ${why}`, false, '5.4.4');
}
