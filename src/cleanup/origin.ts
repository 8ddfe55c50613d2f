/**
 * Facts cleanup records about where a message came from: the origin of an SMTP session's
 * messages, the Received comment of local mail, and the events of recipients dropped by the
 * suppression list. Kept apart from cleanup.ts by size only.
 */
import type { Envelope } from '../core/envelope.js';
import type { MessageMeta, MessageOrigin, SessionInfo } from '../core/session.js';
import type { EventRecord } from '../events/record.js';

/** The Received comment of local mail: "from userid 1000" (maildrop), "from user alice" (claimed over the socket). */
export function localComment(o: MessageOrigin): string {
  if (o.localUid !== undefined) return `from userid ${o.localUid}`;
  return `from user ${o.localUser ?? 'unknown'}`;
}

/**
 * The recipient.dropped events of a transaction's dropped recipients (suppressed, drop mode): one
 * each, with the list entry that matched, in the message's commit (or alone when none is queued).
 */
export function droppedEvents(id: string, env: Envelope, origin: MessageOrigin, at: number, messageId: string | undefined, meta?: MessageMeta): EventRecord[] {
  return (env.dropped ?? []).map((d) => ({
    type: 'recipient.dropped', at, queueId: id, mailFrom: env.mailFrom, recipient: d.address, origin,
    reason: d.reason, scope: d.scope, match: d.match, check: 'suppression',
    ...(messageId !== undefined ? { messageId } : {}),
    ...(meta?.tags ? { tags: meta.tags } : {}),
    ...(meta?.metadata ? { metadata: meta.metadata } : {}),
  }));
}

/** The origin of an SMTP session's messages. */
export function originOf(s: SessionInfo): MessageOrigin {
  return {
    kind: 'smtp', clientAddress: s.clientAddress, listener: s.listener.name,
    ...(s.heloName !== undefined ? { clientName: s.heloName } : {}),
    ...(s.authUser !== undefined ? { authUser: s.authUser } : {}),
    ...(s.clientName !== undefined ? { clientHost: s.clientName } : {}),
    ...(s.proxy ? { proxyAddress: s.proxy.address } : {}),
    ...(s.forwarded ? { forwarded: { ...s.forwarded } } : {}),
  };
}

