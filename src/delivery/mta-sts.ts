/**
 * MTA-STS (RFC 8461) for outbound MX delivery: which policy applies to a recipient domain, kept
 * in a cache for its max_age (in memory and in `dataDir/mta-sts.json`, so it survives a restart),
 * and which MX hosts it allows (mailauth's validateMx, with RFC 8461 4.1's one-label wildcards).
 *
 * RFC 8461 5.1 (policy application): a valid TXT record whose id differs from the cached policy's
 * (or no cached policy) triggers a fetch; a failed fetch or lookup, or no TXT record, leaves the
 * cached policy in force until it expires. TXT answers (and their absence) are reused for
 * `dnsCacheMs`, so a busy domain costs one TXT query per interval, not one per message.
 * TLS-RPT (RFC 8460) is not implemented. Owns: the policy cache; it decides nothing about a
 * delivery (the agent applies the policy, tls-policy.ts the certificate check).
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { validateMx } from 'mailauth/lib/mta-sts.js';
import type { MtaStsConfig } from '../config/delivery-tls.js';
import type { Logger } from '../core/log.js';
import type { Resolver } from '../dns/types.js';
import { fetchPolicy, lookupPolicyId, type FetchedPolicy } from './mta-sts-fetch.js';
import type { CaFiles } from './tls-policy.js';

/** A cached policy. */
export interface StsPolicy extends FetchedPolicy {
  /** When it was fetched and when it expires (fetch + max_age), ms since epoch. */
  readonly fetchedAt: number;
  readonly expiresAt: number;
}

export interface MtaStsOptions {
  readonly resolver: Resolver;
  /** Read at each use (live reload). */
  readonly config: () => MtaStsConfig;
  /** Folder of the cache file. */
  readonly dataDir: string;
  readonly logger: Logger;
  readonly cas: CaFiles;
  readonly now?: () => number;
}

/** The cache file's name in dataDir. */
export const STS_CACHE_FILE = 'mta-sts.json';
const FILE_VERSION = 1;
/** A changed cache is written at most this often, ms. */
const WRITE_DELAY_MS = 1000;

/**
 * True when MX host `mx` is allowed by `policy` (RFC 8461 4.1): equal to an `mx` pattern, or
 * matching a "*.example.com" pattern in exactly its leftmost label.
 */
export function mxAllowed(mx: string, policy: Pick<StsPolicy, 'mode' | 'mx'>): boolean {
  const host = mx.toLowerCase().replace(/\.$/, '');
  const v = validateMx(host, { mode: policy.mode, mx: [...policy.mx] });
  if (!v.valid) return false;
  if (!v.match?.startsWith('.')) return true;
  // mailauth lets "*.example.com" match at any depth; the RFC allows one label only.
  return !host.slice(0, host.length - v.match.length).includes('.');
}

/** The MTA-STS policy cache. One per delivery agent. */
export class MtaSts {
  private readonly policies = new Map<string, StsPolicy>();
  /** Domain -> when its TXT record was last asked for (bounded, oldest first). */
  private readonly checked = new Map<string, number>();
  private readonly inflight = new Map<string, Promise<StsPolicy | undefined>>();
  private readonly file: string;
  private readonly now: () => number;
  private writeTimer?: NodeJS.Timeout;
  private dirty = false;

  constructor(private readonly o: MtaStsOptions) {
    this.file = join(o.dataDir, STS_CACHE_FILE);
    this.now = o.now ?? Date.now;
    this.load();
  }

  /**
   * The policy in force for `domain` (A-label, lower case) in mode enforce or testing; undefined
   * when it has none, or mode none, or MTA-STS is off. Never throws (failures are logged and
   * leave the cached policy in force, RFC 8461 5.1).
   */
  async policyFor(domain: string): Promise<StsPolicy | undefined> {
    const c = this.o.config();
    if (!c.enabled) return undefined;
    const now = this.now();
    const last = this.checked.get(domain);
    const p = last !== undefined && now - last < c.dnsCacheMs ? this.current(domain, now) : await this.refresh(domain, c);
    return p && p.mode !== 'none' ? p : undefined;
  }

  /** Writes a changed cache now (at close). Never throws. */
  flush(): void {
    if (this.writeTimer) clearTimeout(this.writeTimer);
    this.writeTimer = undefined;
    if (this.dirty) this.save();
  }

  /** Cached policies (tests, operators). */
  cached(): StsPolicy[] {
    return [...this.policies.values()];
  }

  private current(domain: string, now: number): StsPolicy | undefined {
    const p = this.policies.get(domain);
    return p && p.expiresAt > now ? p : undefined;
  }

  private refresh(domain: string, c: MtaStsConfig): Promise<StsPolicy | undefined> {
    const running = this.inflight.get(domain);
    if (running) return running;
    const job = this.lookup(domain, c).finally(() => this.inflight.delete(domain));
    this.inflight.set(domain, job);
    return job;
  }

  private async lookup(domain: string, c: MtaStsConfig): Promise<StsPolicy | undefined> {
    const cachedNow = this.current(domain, this.now());
    let id: string | false;
    try {
      id = await lookupPolicyId(this.o.resolver, domain);
    } catch (err) {
      this.o.logger.info({ domain, err: (err as Error).message }, 'MTA-STS lookup failed; the cached policy (if any) stays in force');
      this.markChecked(domain, c);
      return cachedNow;
    }
    this.markChecked(domain, c);
    if (id === false || cachedNow?.id === id) return cachedNow;
    try {
      const f = await fetchPolicy(domain, id, {
        resolver: this.o.resolver, port: c.port, timeoutMs: c.fetchTimeoutMs, maxBytes: c.maxPolicyBytes,
        ...(c.caFile ? { ca: this.o.cas.with(c.caFile) } : {}),
      });
      const at = this.now();
      const p: StsPolicy = { ...f, fetchedAt: at, expiresAt: at + f.maxAge * 1000 };
      this.store(domain, p, c);
      this.o.logger.info({ domain, id, mode: p.mode, mx: p.mx, maxAge: p.maxAge }, 'MTA-STS policy fetched');
      return p;
    } catch (err) {
      this.o.logger.warn({ domain, id, err: (err as Error).message }, `MTA-STS policy of ${domain} could not be fetched; ${cachedNow ? 'the cached one stays in force' : 'delivering as without a policy'}`);
      return cachedNow;
    }
  }

  private markChecked(domain: string, c: MtaStsConfig): void {
    this.checked.delete(domain);
    this.checked.set(domain, this.now());
    for (const k of this.checked.keys()) {
      if (this.checked.size <= c.cacheEntries) break;
      this.checked.delete(k);
    }
  }

  private store(domain: string, p: StsPolicy, c: MtaStsConfig): void {
    this.policies.set(domain, p);
    if (this.policies.size > c.cacheEntries) {
      // Drop the tenth expiring first (one scan per tenth of the limit, not one per insert).
      const drop = [...this.policies.entries()].sort((a, b) => a[1].expiresAt - b[1].expiresAt).slice(0, Math.max(1, Math.floor(c.cacheEntries / 10)));
      for (const [k] of drop) if (k !== domain) this.policies.delete(k);
    }
    this.dirty = true;
    if (!this.writeTimer) {
      this.writeTimer = setTimeout(() => { this.writeTimer = undefined; this.save(); }, WRITE_DELAY_MS);
      this.writeTimer.unref();
    }
  }

  private load(): void {
    let raw: unknown;
    try {
      raw = JSON.parse(readFileSync(this.file, 'utf8'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.o.logger.warn({ file: this.file, err: (err as Error).message }, 'MTA-STS cache file unreadable; starting empty');
      return;
    }
    const r = raw as { version?: number; policies?: Record<string, StsPolicy> };
    if (r.version !== FILE_VERSION || typeof r.policies !== 'object' || r.policies === null) return;
    const now = this.now();
    for (const [domain, p] of Object.entries(r.policies)) {
      if (isPolicy(p) && p.expiresAt > now) this.policies.set(domain, p);
    }
  }

  private save(): void {
    this.dirty = false;
    const now = this.now();
    const policies: Record<string, StsPolicy> = {};
    for (const [d, p] of this.policies) if (p.expiresAt > now) policies[d] = p;
    const tmp = `${this.file}.tmp`;
    try {
      writeFileSync(tmp, JSON.stringify({ version: FILE_VERSION, policies }), { mode: 0o600 });
      renameSync(tmp, this.file);
    } catch (err) {
      this.o.logger.warn({ file: this.file, err: (err as Error).message }, 'MTA-STS cache not written (kept in memory)');
    }
  }
}

function isPolicy(p: unknown): p is StsPolicy {
  const x = p as Partial<StsPolicy> | null;
  return !!x && typeof x.id === 'string' && (x.mode === 'enforce' || x.mode === 'testing' || x.mode === 'none')
    && Array.isArray(x.mx) && x.mx.every((m) => typeof m === 'string') && typeof x.maxAge === 'number'
    && typeof x.fetchedAt === 'number' && typeof x.expiresAt === 'number';
}
