/**
 * The events of suppression list changes, the same for every backend:
 *   - `recipient.suppressed`: an entry was added (or replaced): recipient (the address or
 *     '*@domain'), scope, reason, source, detail (description), expiresAt;
 *   - `suppression.removed`: an entry was removed: the same fields as the entry had, and `source`
 *     saying who removed it ('operator', 'api', or the id of the delivery event that cleared it).
 * Neither carries a queue ID: they are about the list, not a message (the triggering event's id is
 * the source; its sender and message fields are copied as context).
 */
import type { EventRecord } from '../events/record.js';
import type { Suppression, SuppressionEventContext } from './types.js';

/** Longest `detail` written into an event, characters. */
const MAX_DETAIL = 500;

function contextFields(c: SuppressionEventContext | undefined): Partial<EventRecord> {
  if (!c) return {};
  return {
    ...(c.mailFrom !== undefined ? { mailFrom: c.mailFrom } : {}),
    ...(c.messageId !== undefined ? { messageId: c.messageId } : {}),
    ...(c.tags !== undefined ? { tags: c.tags } : {}),
    ...(c.metadata !== undefined ? { metadata: c.metadata } : {}),
    ...(c.origin !== undefined ? { origin: c.origin } : {}),
    ...(c.reply !== undefined ? { reply: c.reply } : {}),
    ...(c.dsn !== undefined ? { dsn: c.dsn } : {}),
  };
}

/** The `recipient.suppressed` event of an added entry at `at` (ms). */
export function suppressedEvent(e: Suppression, at: number, context?: SuppressionEventContext): EventRecord {
  return {
    type: 'recipient.suppressed', at, ...contextFields(context),
    recipient: e.address, scope: e.scope, reason: e.reason, source: e.source,
    ...(e.description !== undefined ? { detail: e.description.slice(0, MAX_DETAIL) } : {}),
    ...(e.expiresAt !== undefined ? { expiresAt: e.expiresAt } : {}),
  };
}

/** The `suppression.removed` event of entry `e` (as it was) removed at `at` (ms) by `source`. */
export function removedEvent(e: Suppression, at: number, source: string, context?: SuppressionEventContext): EventRecord {
  return {
    type: 'suppression.removed', at, ...contextFields(context),
    recipient: e.address, scope: e.scope, reason: e.reason, source,
    ...(e.description !== undefined ? { detail: e.description.slice(0, MAX_DETAIL) } : {}),
  };
}
