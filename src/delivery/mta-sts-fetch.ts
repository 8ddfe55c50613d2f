/**
 * MTA-STS policy discovery and fetch (RFC 8461 3.1-3.3) over our own Resolver: the `_mta-sts`
 * TXT record (parsed by mailauth's resolvePolicy) and the policy file from
 * `https://mta-sts.DOMAIN/.well-known/mta-sts.txt` (parsed by mailauth's parsePolicy).
 *
 * mailauth's own fetch (fetchPolicy / getPolicy) is not used: it resolves the policy host with the
 * system resolver, always connects to port 443, trusts only Node's CA store and has no size limit,
 * so it can be neither configured nor tested on loopback. Here the policy host's address comes
 * from our Resolver, the port and an extra CA are settings (`delivery.mtaSts.port` / `caFile`, for
 * tests), the certificate must be valid for `mta-sts.DOMAIN` (3.3), redirects are not followed
 * (3.3), the answer must be 200 with media type text/plain (3.2) and at most maxPolicyBytes.
 * Owns: the network side of MTA-STS; caching and enforcement are mta-sts.ts's.
 */
import { request } from 'node:https';
import { parsePolicy, resolvePolicy } from 'mailauth/lib/mta-sts.js';
import { resolveHostAddresses } from '../dns/mx.js';
import { DnsError, type Resolver } from '../dns/types.js';

/** A parsed policy file (RFC 8461 3.2) with the id of the TXT record it was fetched for. */
export interface FetchedPolicy {
  readonly id: string;
  readonly mode: 'enforce' | 'testing' | 'none';
  /** MX patterns ("mx.example.com", "*.example.net"), lower case. */
  readonly mx: readonly string[];
  /** max_age, seconds. */
  readonly maxAge: number;
}

/** Why discovery or a fetch failed (the caller then keeps a cached policy, RFC 8461 5.1). */
export class MtaStsFetchError extends Error {
  constructor(message: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'MtaStsFetchError';
  }
}

/**
 * The `id` of the domain's `_mta-sts` TXT record (RFC 8461 3.1), or false when there is no
 * (single, valid) record.
 * @throws MtaStsFetchError when the lookup fails temporarily (SERVFAIL, timeout).
 */
export async function lookupPolicyId(resolver: Resolver, domain: string): Promise<string | false> {
  if (!resolver.resolveTxt) return false;
  const txt = resolver.resolveTxt.bind(resolver);
  try {
    // mailauth asks with (name, 'TXT') and treats ENOTFOUND / ENODATA as "no record".
    return await resolvePolicy(domain, {
      resolver: async (name: string) => {
        try {
          return await txt(name);
        } catch (err) {
          if (err instanceof DnsError && err.kind !== 'temporary') throw Object.assign(new Error(err.message), { code: err.kind === 'nxdomain' ? 'ENOTFOUND' : 'ENODATA' });
          throw err;
        }
      },
    });
  } catch (err) {
    // RFC 8461 3.1: more than one STSv1 record counts as none.
    if ((err as { code?: string }).code === 'multi_sts_records') return false;
    throw new MtaStsFetchError(`TXT lookup of _mta-sts.${domain} failed: ${(err as Error).message}`, err);
  }
}

export interface FetchOptions {
  readonly resolver: Resolver;
  /** Port of the policy host (443). */
  readonly port: number;
  /** Trusted CAs (PEM) instead of Node's store; absent: Node's store. */
  readonly ca?: readonly string[];
  readonly timeoutMs: number;
  readonly maxBytes: number;
}

/**
 * Fetches and parses the policy of `domain` for TXT id `id`.
 * @throws MtaStsFetchError (DNS, connection, certificate, status, media type, size, timeout, syntax).
 */
export async function fetchPolicy(domain: string, id: string, o: FetchOptions): Promise<FetchedPolicy> {
  const host = `mta-sts.${domain}`;
  let addresses: string[];
  try {
    addresses = await resolveHostAddresses(o.resolver, host);
  } catch (err) {
    throw new MtaStsFetchError(`policy host ${host} does not resolve: ${(err as Error).message}`, err);
  }
  const text = await get(host, addresses[0]!, o);
  let p;
  try {
    p = parsePolicy(text);
  } catch (err) {
    throw new MtaStsFetchError(`policy of ${domain} is invalid: ${(err as Error).message}`, err);
  }
  return { id, mode: p.mode, mx: (p.mx ?? []).map((m) => m.toLowerCase()), maxAge: p.maxAge ?? 0 };
}

function get(host: string, address: string, o: FetchOptions): Promise<string> {
  const url = `https://${host}${o.port === 443 ? '' : `:${o.port}`}/.well-known/mta-sts.txt`;
  return new Promise((resolve, reject) => {
    const fail = (why: string, cause?: unknown) => { clearTimeout(timer); req.destroy(); reject(new MtaStsFetchError(`fetch of ${url} failed: ${why}`, cause)); };
    const req = request({
      host: address, port: o.port, servername: host, path: '/.well-known/mta-sts.txt', method: 'GET',
      headers: { host: o.port === 443 ? host : `${host}:${o.port}`, accept: 'text/plain' },
      agent: false, rejectUnauthorized: true, ...(o.ca ? { ca: [...o.ca] } : {}),
    }, (res) => {
      const type = String(res.headers['content-type'] ?? '');
      if (res.statusCode !== 200) return fail(`HTTP status ${res.statusCode ?? '?'} (redirects are not followed, RFC 8461 3.3)`);
      if (!/^text\/plain\s*(;|$)/i.test(type)) return fail(`media type "${type}" is not text/plain (RFC 8461 3.2)`);
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > o.maxBytes) fail(`policy larger than ${o.maxBytes} bytes`);
        else chunks.push(c);
      });
      res.on('end', () => { clearTimeout(timer); resolve(Buffer.concat(chunks).toString('utf8')); });
      res.on('error', (err) => fail(err.message, err));
    });
    const timer = setTimeout(() => fail(`no answer within ${o.timeoutMs} ms`), o.timeoutMs);
    req.on('error', (err) => fail(err.message, err));
    req.end();
  });
}
