/**
 * Log sink: one log line per event, in the spirit of Postfix's maillog ("queueId: to=<...>,
 * relay=..., delay=1.23, dsn=2.0.0, status=sent (250 ...)"), with the same facts as structured
 * pino fields (queueId, from, to, relay, delay in seconds, dsn, status, reply). Subscribes only.
 */
import type { Logger } from '../core/log.js';
import type { EventBus } from './bus.js';
import type { PostlineEvent, RecipientEventType } from './types.js';
import { authSummary } from './record.js';

/** Postfix status words per outcome event. */
const STATUS: Record<RecipientEventType, string> = {
  'recipient.delivered': 'sent',
  'recipient.relayed': 'relayed',
  'recipient.deferred': 'deferred',
  'recipient.bounced': 'bounced',
  'recipient.expired': 'expired',
};

const DSN_WORDS = { failure: 'non-delivery', delay: 'delay', success: 'delivery status' } as const;

/** Seconds with 2 decimals, from ms. */
export function delaySeconds(ms: number): string {
  return (Math.max(0, ms) / 1000).toFixed(2);
}

function outcomeLine(logger: Logger, e: PostlineEvent & { type: RecipientEventType }): void {
  const status = STATUS[e.type];
  const delay = delaySeconds(e.delayMs ?? 0);
  const relay = e.remoteHost ?? 'none';
  const fields = {
    eventId: e.id, queueId: e.queueId, from: e.mailFrom, to: e.recipient, relay, delay: Number(delay), dsn: e.dsn, status,
    reply: e.reply, attempt: e.attempt, ...(e.bounceClass !== undefined ? { bounceClass: e.bounceClass } : {}), ...(e.tls ? { tls: `${e.tls.version}:${e.tls.cipher}`, ...(e.tls.verified !== undefined ? { tlsVerified: e.tls.verified } : {}) } : {}),
  };
  const text = `${e.queueId}: to=<${e.recipient}>, relay=${relay}, delay=${delay}, dsn=${e.dsn}, status=${status} (${e.reply})`;
  if (e.type === 'recipient.bounced' || e.type === 'recipient.expired') logger.warn(fields, text);
  else logger.info(fields, text);
}

const isOutcome = (e: PostlineEvent): e is PostlineEvent & { type: RecipientEventType } => e.type in STATUS;

/** Writes the log line of one event. Never throws for a well-formed event; unknown types get a generic line. */
export function logEvent(logger: Logger, e: PostlineEvent): void {
  if (isOutcome(e)) return outcomeLine(logger, e);
  const q = e.queueId ?? '-';
  switch (e.type) {
    case 'message.received': {
      const n = e.recipients?.length ?? 0;
      const auth = e.auth ? authSummary(e.auth) : undefined;
      logger.info({ eventId: e.id, queueId: e.queueId, from: e.mailFrom, size: e.size, nrcpt: n, origin: e.origin?.kind, client: e.origin?.clientAddress, apiKey: e.origin?.apiKey, messageId: e.messageId, ...(auth ? { auth } : {}) },
        `${q}: from=<${e.mailFrom ?? ''}>, size=${e.size ?? 0}, nrcpt=${n} (queue active)${auth ? `, auth=(${auth})` : ''}`);
      return;
    }
    case 'message.rejected':
      logger.info({ eventId: e.id, queueId: e.queueId, from: e.mailFrom, to: e.recipient, client: e.origin?.clientAddress, stage: e.reason, reply: e.reply },
        `${q}: reject: ${e.reason ?? ''} from ${e.origin?.clientAddress ?? e.origin?.apiKey ?? 'unknown'}: ${e.reply ?? ''}; from=<${e.mailFrom ?? ''}>${e.recipient !== undefined ? ` to=<${e.recipient}>` : ''}`);
      return;
    case 'message.deleted':
      logger.info({ eventId: e.id, queueId: e.queueId }, `${q}: removed (deleted by operator)`);
      return;
    case 'message.quarantined':
      logger.error({ eventId: e.id, queueId: e.queueId, reason: e.reason }, `${q}: quarantined: ${e.reason ?? ''}`);
      return;
    case 'dsn.queued':
      logger.info({ eventId: e.id, queueId: e.queueId, dsnQueueId: e.dsnQueueId, kind: e.dsnKind, to: e.recipient },
        `${q}: sender ${DSN_WORDS[e.dsnKind ?? 'failure']} notification: ${e.dsnQueueId ?? ''}`);
      return;
    case 'dsn.dropped':
      logger.warn({ eventId: e.id, queueId: e.queueId, reason: e.reason }, `${q}: DSN dropped: ${e.reason ?? ''}`);
      return;
    case 'recipient.suppressed': case 'suppression.removed':
      logger.info({ eventId: e.id, type: e.type, to: e.recipient, scope: e.scope, reason: e.reason, source: e.source },
        `suppression: ${e.type === 'recipient.suppressed' ? 'added' : 'removed'} <${e.recipient ?? ''}> scope=${e.scope ?? '*'} reason=${e.reason ?? ''} source=${e.source ?? ''}`);
      return;
    case 'recipient.dropped':
      logger.info({ eventId: e.id, queueId: e.queueId, from: e.mailFrom, to: e.recipient, match: e.match, scope: e.scope, reason: e.reason },
        `${q}: to=<${e.recipient ?? ''}>, status=dropped (suppressed: ${e.match ?? ''} scope=${e.scope ?? '*'} reason=${e.reason ?? ''})`);
      return;
    case 'message.held': case 'message.released': case 'message.flushed':
      logger.info({ eventId: e.id, queueId: e.queueId, action: e.type.slice('message.'.length) }, `${q}: ${e.type.slice('message.'.length)} by operator`);
      return;
    default:
      logger.info({ eventId: e.id, queueId: e.queueId, type: e.type }, `${q}: ${e.type}`);
  }
}

/**
 * Subscribes `logger` to every event on `bus`.
 * @returns the unsubscribe function.
 */
export function attachLogSink(bus: EventBus, logger: Logger): () => void {
  return bus.subscribe((e) => logEvent(logger, e));
}
