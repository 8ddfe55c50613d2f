/**
 * Builds tracking and unsubscribe for main.ts from the configuration (`tracking`, `unsubscribe`,
 * `feedbackId`): the modifier factories for cleanup's chain, the Engagement service the HTTP
 * routes call, and the link signer (its secret: tracking.secret, else dataDir/link-tokens.key,
 * made at first use; a changed tracking.secret after SIGHUP is taken at the next use).
 */
import type { Clock } from '../core/clock.js';
import type { Logger } from '../core/log.js';
import type { ModifierFactory } from '../cleanup/modifiers.js';
import type { PostlineConfig } from '../config/schema.js';
import { Engagement, type EngagementStore } from './engagement.js';
import { listHeaders, trackingBase, trackingRewriter, type TrackingSettings } from './modifiers.js';
import { LinkSigner, loadLinkSecret } from './tokens.js';

/** What main.ts wires. */
export interface TrackingSetup {
  /** The 'rewrite' (tracking) and 'add' (List-Unsubscribe, Feedback-ID) factories; they do nothing while their section is off. */
  readonly factories: readonly ModifierFactory[];
  /** For the HTTP routes (/t/o, /t/c, /u) and the mailto: hook. */
  readonly engagement: Engagement;
  /** The signer (made, and its key file read or written, at the first call). @throws PostlineError ERR_SECRET_FILE. */
  signer(): LinkSigner;
}

/**
 * @param config read at each message and request (live reload).
 * Logs a warning when tracking or unsubscribe is on with no public base URL configured.
 */
export function trackingFromConfig(
  config: TrackingSettings & Pick<PostlineConfig, 'dataDir'>, store: EngagementStore, logger: Logger, clock: Clock,
): TrackingSetup {
  let cached: { secret: string | undefined; signer: LinkSigner } | undefined;
  const signer = (): LinkSigner => {
    const secret = config.tracking.secret;
    if (!cached || cached.secret !== secret) cached = { secret, signer: new LinkSigner(loadLinkSecret(config.dataDir, secret)) };
    return cached.signer;
  };
  const deps = { config: () => config, signer };
  if ((config.tracking.enabled || config.unsubscribe.enabled) && !config.tracking.baseUrl && !config.unsubscribe.baseUrl) {
    const base = trackingBase(config, '');
    logger.warn({ base: base ?? null }, base
      ? 'tracking/unsubscribe links use the http listener\'s address; set tracking.baseUrl to the public URL of the tracking host'
      : 'tracking/unsubscribe is on but there is no http listener and no tracking.baseUrl: no links are added');
  }
  const engagement = new Engagement({ store, signer, machineWindowMs: () => config.tracking.machineWindowMs, logger, clock });
  return { factories: [trackingRewriter(deps), listHeaders(deps)], engagement, signer };
}
