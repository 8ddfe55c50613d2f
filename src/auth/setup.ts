/**
 * Builds inbound verification from the configuration (`auth.*`, `arc.*`) for main.ts: the
 * resolver (auth.dns, else delivery.dns) behind a TTL cache (auth.dnsCache), the ARC key, and the
 * modifier factory. Rebuilt on SIGHUP; the cache survives a reload unless its settings changed.
 */
import { isDeepStrictEqual } from 'node:util';
import type { PostlineConfig } from '../config/schema.js';
import type { Logger } from '../core/log.js';
import type { ModifierFactory } from '../cleanup/modifiers.js';
import { CachingResolver } from '../dns/cache.js';
import { createResolver } from '../dns/resolver.js';
import { loadKeys } from '../dkim/keys.js';
import { routeFor } from '../routing/router.js';
import { mailauth, selfCheck } from './mailauth.js';
import { inboundAuth, type AuthSettings } from './modifier.js';
import type { ArcKey } from './seal.js';

type AuthConfigView = Pick<PostlineConfig, 'auth' | 'arc' | 'hostname' | 'delivery'>;

/** What main.ts keeps between reloads. */
export interface AuthSetup {
  /** The verify-stage factory; undefined with auth.enabled false. */
  readonly factory?: ModifierFactory;
  readonly resolver: CachingResolver;
  /** The DNS and cache settings the resolver was made with. */
  readonly dnsSettings: unknown;
}

/**
 * Makes (or remakes, keeping `prev`'s cache when auth.dns, delivery.dns and auth.dnsCache did not
 * change) the verifier for `config`.
 * @throws DkimKeyError when the arc.privateKey file cannot be used (unreadable, not RSA, short).
 */
export function authFromConfig(config: AuthConfigView, logger: Logger, prev?: AuthSetup): AuthSetup {
  const a = config.auth;
  const dnsSettings = { dns: a.dns ?? config.delivery.dns, cache: a.dnsCache };
  const resolver = prev && isDeepStrictEqual(prev.dnsSettings, dnsSettings) ? prev.resolver : new CachingResolver(
    createResolver(dnsSettings.dns), { maxEntries: a.dnsCache.entries, maxTtlS: a.dnsCache.maxTtlS, negativeTtlS: a.dnsCache.negativeTtlS },
  );
  let seal: AuthSettings['seal'];
  if (config.arc) {
    const [k] = loadKeys([{ domain: config.arc.domain, selector: config.arc.selector, algorithm: 'rsa-sha256', privateKey: config.arc.privateKey }]);
    const key: ArcKey = { domain: k!.domain, selector: k!.selector, pem: k!.key.export({ type: 'pkcs8', format: 'pem' }) as string };
    seal = { key, relayed: config.arc.sealRelayed };
  }
  if (!a.enabled) return { resolver, dnsSettings };
  mailauth();
  if (!selfCheck()) logger.warn('mailauth: the relaxed header canonicalization fix did not take; signatures over header fields holding the byte 0xA0 may fail');
  const settings: AuthSettings = {
    authservId: a.authservId ?? config.hostname, verifyTrusted: a.verifyTrusted, minKeyBits: a.minKeyBits, timeoutMs: a.timeoutMs,
    dmarcReject: a.dmarc.reject, ...(seal ? { seal } : {}),
  };
  const factory = inboundAuth({
    settings: () => settings, resolver, logger,
    sealRoute: (rcpt) => routeFor(config.delivery.routes, rcpt)?.arcSeal === true,
  });
  logger.info({ authservId: settings.authservId, dmarcReject: settings.dmarcReject, arcSeal: seal ? `${seal.key.selector}._domainkey.${seal.key.domain}` : undefined }, 'inbound verification on mx listeners');
  return { factory, resolver, dnsSettings };
}
