/**
 * Log sink: one log line per event, in the spirit of Postfix's maillog ("queueId: to=<...>,
 * relay=..., delay=1.23, dsn=2.0.0, status=sent (250 ...)"), with the same facts as structured
 * pino fields (queueId, from, to, relay, delay in seconds, dsn, status, reply). Subscribes only.
 */
import type { Logger } from '../core/log.js';
import type { EventBus } from './bus.js';
import type { PostlineEvent, RecipientOutcome } from './types.js';

/** Postfix status words per outcome event. */
const STATUS: Record<RecipientOutcome['type'], string> = {
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

function outcomeLine(logger: Logger, e: RecipientOutcome): void {
  const status = STATUS[e.type];
  const delay = delaySeconds(e.delayMs);
  const relay = e.relay ?? 'none';
  const fields = { queueId: e.queueId, from: e.mailFrom, to: e.recipient, relay, delay: Number(delay), dsn: e.dsn, status, reply: e.reply, attempt: e.attempt };
  const text = `${e.queueId}: to=<${e.recipient}>, relay=${relay}, delay=${delay}, dsn=${e.dsn}, status=${status} (${e.reply})`;
  if (e.type === 'recipient.deferred') logger.info(fields, text);
  else if (e.type === 'recipient.bounced' || e.type === 'recipient.expired') logger.warn(fields, text);
  else logger.info(fields, text);
}

/** Writes the log line of one event. Never throws for a well-formed event. */
export function logEvent(logger: Logger, e: PostlineEvent): void {
  switch (e.type) {
    case 'message.queued':
      logger.info({ queueId: e.queueId, from: e.mailFrom, size: e.size, nrcpt: e.recipients.length, origin: e.origin.kind, client: e.origin.clientAddress, messageId: e.messageId },
        `${e.queueId}: from=<${e.mailFrom}>, size=${e.size}, nrcpt=${e.recipients.length} (queue active)`);
      return;
    case 'recipient.delivered': case 'recipient.relayed': case 'recipient.deferred': case 'recipient.bounced': case 'recipient.expired':
      outcomeLine(logger, e);
      return;
    case 'message.removed':
      logger.info({ queueId: e.queueId, reason: e.reason }, e.reason === 'deleted' ? `${e.queueId}: removed (deleted by operator)` : `${e.queueId}: removed`);
      return;
    case 'message.quarantined':
      logger.error({ queueId: e.queueId, reason: e.reason }, `${e.queueId}: quarantined: ${e.reason}`);
      return;
    case 'dsn.queued':
      logger.info({ queueId: e.queueId, dsnQueueId: e.dsnQueueId, kind: e.kind, to: e.to }, `${e.queueId}: sender ${DSN_WORDS[e.kind]} notification: ${e.dsnQueueId}`);
      return;
    case 'dsn.dropped':
      logger.warn({ queueId: e.queueId, reason: e.reason }, `${e.queueId}: DSN dropped: ${e.reason}`);
      return;
    case 'message.held': case 'message.released': case 'message.flushed':
      logger.info({ queueId: e.queueId, action: e.type.slice('message.'.length) }, `${e.queueId}: ${e.type.slice('message.'.length)} by operator`);
      return;
  }
}

/**
 * Subscribes `logger` to every event on `bus`.
 * @returns the unsubscribe function.
 */
export function attachLogSink(bus: EventBus, logger: Logger): () => void {
  return bus.subscribe((e) => logEvent(logger, e));
}
