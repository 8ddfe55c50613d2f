/**
 * The internal consumer `unsubscribe` (transport internal, src/local/internal-agent.ts): mail to
 * the List-Unsubscribe mailto: address (unsubscribe+TOKEN@unsubscribe.mailtoDomain, RFC 2369 3.2)
 * does what the one-click POST does. A local route sends that domain here:
 *
 *   local: { routes: [{ match: "unsub.example.com", transport: internal, target: unsubscribe }] }
 *
 * Each recipient is consumed (delivered, 250 2.0.0) and a good token's `recipient.unsubscribed`
 * (source "mailto") goes with its result, so the scheduler writes it in the same commit as the
 * delivery. A recipient that is not an unsubscribe address or whose token does not verify is
 * consumed too, with no event (no DSN to whoever sent it: the address may be forged). Trouble
 * reading the event log defers (451 4.3.0).
 */
import type { Logger } from '../core/log.js';
import type { RecipientResult } from '../delivery/types.js';
import type { InternalConsumer } from '../local/internal-agent.js';
import { mailtoToken, type Engagement } from './engagement.js';
import { TokenError } from './tokens.js';

/** The consumer's name in local routes (`target: unsubscribe`). */
export const UNSUBSCRIBE_CONSUMER = 'unsubscribe';

/** The `unsubscribe` consumer over `eng` (never throws). */
export function unsubscribeConsumer(eng: Pick<Engagement, 'unsubscribeEvent'>, logger: Logger): InternalConsumer {
  return async (req) => Promise.all(req.recipients.map(async (r): Promise<RecipientResult> => {
    const done = (diagnostic: string): RecipientResult => ({ idx: r.idx, outcome: 'delivered', code: 250, dsnStatus: '2.0.0', diagnostic, remote: false });
    const token = mailtoToken(r.address);
    if (!token) {
      logger.warn({ queueId: req.queueId, recipient: r.address }, 'mail to the unsubscribe consumer without a token: discarded');
      return done('250 2.0.0 not an unsubscribe address: discarded');
    }
    try {
      const { token: t, event } = await eng.unsubscribeEvent(token, 'mailto');
      logger.info({ queueId: req.queueId, of: t.queueId, recipient: t.recipient, scope: t.scope }, 'recipient unsubscribed by mail');
      return { ...done('250 2.0.0 unsubscribed'), events: [event] };
    } catch (err) {
      if (err instanceof TokenError) {
        logger.warn({ queueId: req.queueId, recipient: r.address, why: err.reason }, 'unsubscribe mail with a bad token: discarded');
        return done(`250 2.0.0 bad unsubscribe token (${err.reason}): discarded`);
      }
      const text = `451 4.3.0 cannot record the unsubscribe: ${(err as Error)?.message ?? String(err)}`.replace(/[\r\n]+/g, ' ');
      return { idx: r.idx, outcome: 'deferred', code: 451, dsnStatus: '4.3.0', diagnostic: text, remote: false };
    }
  }));
}
