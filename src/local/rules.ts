/**
 * The local recipient rules cleanup applies at acceptance (routing/aliases.ts LocalRecipientRules):
 * `local.aliases` expanded, and `local.routes` in mode hold, compiled from the configuration and
 * compiled again when a reload (config/live.ts) replaced one of the arrays they come from.
 */
import type { PostlineConfig } from '../config/schema.js';
import { aliasMap, type LocalRecipientRules } from '../routing/aliases.js';
import { compileLocalRoutes } from '../routing/local-routes.js';

/**
 * @returns a function giving the current rules (undefined when there are neither aliases nor
 *          routes: cleanup then does no lookup at all).
 */
export function localRecipientRules(config: Pick<PostlineConfig, 'local' | 'relay'>): () => LocalRecipientRules | undefined {
  let from: readonly unknown[] = [];
  let rules: LocalRecipientRules | undefined;
  return () => {
    const l = config.local;
    const now = [l.aliases, l.routes, l.aliasLimits, config.relay.localDomains];
    if (now.some((v, i) => v !== from[i])) {
      from = now;
      const aliases = aliasMap(l.aliases).map;
      const hasHold = l.routes.some((r) => r.mode === 'hold');
      const routes = hasHold ? compileLocalRoutes(l.routes, config.relay.localDomains.map((d) => (typeof d === 'string' ? d : d.domain))) : undefined;
      rules = aliases.size === 0 && !routes ? undefined : {
        aliases,
        limits: l.aliasLimits,
        holds: (address) => routes?.find(address)?.mode === 'hold',
      };
    }
    return rules;
  };
}
