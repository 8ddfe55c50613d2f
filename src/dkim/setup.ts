/**
 * Builds the DKIM modifier factory from the configuration (`dkim` section) for main.ts: loads the
 * key files (the loader made their paths absolute) and logs each signed message at debug.
 */
import type { PostlineConfig } from '../config/schema.js';
import type { Logger } from '../core/log.js';
import type { ModifierFactory } from '../cleanup/modifiers.js';
import { loadKeys } from './keys.js';
import { dkimSigner } from './signer.js';

/**
 * The signer for `config.dkim`, or undefined when no key is configured.
 * @throws DkimKeyError naming the key file that cannot be used.
 */
export function dkimFromConfig(config: Pick<PostlineConfig, 'dkim'>, logger: Logger, now?: () => number): ModifierFactory | undefined {
  const { keys, headers, signRelayed } = config.dkim;
  if (!keys.length) return undefined;
  const loaded = loadKeys(keys);
  logger.info({ keys: loaded.map((k) => `${k.selector}._domainkey.${k.domain} ${k.algorithm}`) }, 'DKIM signing keys loaded');
  return dkimSigner({
    keys: loaded, ...(headers ? { headers } : {}), signRelayed, ...(now ? { now } : {}),
    onSigned: (queueId, domain, selectors) => logger.debug({ queueId, domain, selectors }, 'DKIM signed'),
  });
}
