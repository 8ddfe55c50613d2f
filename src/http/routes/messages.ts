/**
 * Route group "messages": POST /api/v1/messages (JSON composed into MIME), POST
 * /api/v1/messages/raw (an RFC 5322 message as is), GET /api/v1/messages/{queueId} (status and
 * attempts, from the queue and the event log).
 *
 * Sending: each recipient becomes its own queue entry (one `submit` each, all in flight together so
 * they share group commits); the 202 answer comes only after every commit. Checks, in order:
 * key and scope (401/403), schema (400), sender domain (403), sendAt bound (400), rate (429), free
 * space (503), size (413); then submit's own refusals mapped by errors.ts.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { Envelope } from '../../core/envelope.js';
import { apiMaxBodyBytes } from '../../config/schema.js';
import { crashPoint } from '../../core/crashpoints.js';
import { R, replyToString } from '../../core/reply.js';
import { toPostlineError } from '../../core/errors.js';
import type { MessageMeta, MessageOrigin, Submitted } from '../../core/session.js';
import type { StoredEvent } from '../../events/record.js';
import type { ApiKeyRecord } from '../api-keys.js';
import { checkSender, requireScope } from '../auth.js';
import { composeMessage, has8bit, normalizeRaw, utf8InHeader } from '../compose.js';
import type { ApiContext } from '../context.js';
import { apiErrors, errorSchema, statusOfPostlineError, toErrorAnswer } from '../errors.js';
import { addressOf, type AcceptedAnswer, type MessageStatusAnswer } from '../schemas.js';

const errors = { 400: errorSchema, 401: errorSchema, 403: errorSchema, 409: errorSchema, 413: errorSchema, 422: errorSchema, 429: errorSchema, 503: errorSchema };

/** Recipients without duplicates (compared in lower case), in order. */
function unique(addresses: readonly string[]): string[] {
  const seen = new Set<string>();
  return addresses.filter((a) => {
    const k = a.toLowerCase();
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/** A lower bound of the composed message's size, bytes: text, html and the attachments decoded. */
function contentBytes(m: { text?: string; html?: string; attachments: readonly { content: string }[] }): number {
  let n = (m.text ? Buffer.byteLength(m.text) : 0) + (m.html ? Buffer.byteLength(m.html) : 0);
  for (const a of m.attachments) n += Math.floor((a.content.replace(/=+$/, '').length * 3) / 4);
  return n;
}

const isUtf8 = (a: string): boolean => /[^\x00-\x7f]/.test(a);

/** Registers POST /api/v1/messages, POST /api/v1/messages/raw and GET /api/v1/messages/{queueId} on `app`. */
export function registerMessageRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const { deps, schemas: s } = ctx;
  const r = app.withTypeProvider<ZodTypeProvider>();

  /** sendAt in ms, checked against the queue lifetime. @throws ApiError 400. */
  const sendAtMs = (v: string | number | undefined): number | undefined => {
    if (v === undefined) return undefined;
    const ms = typeof v === 'number' ? v : Date.parse(v);
    const latest = ctx.now() + deps.config.delivery.maxQueueLifetimeMs;
    if (ms > latest) throw apiErrors.invalid([{ in: 'body', path: 'sendAt', reason: `later than the queue lifetime allows (delivery.maxQueueLifetimeMs, ${deps.config.delivery.maxQueueLifetimeMs} ms from now)` }]);
    return ms;
  };

  const http = deps.config.http;
  const maxRecipients = http?.maxRecipientsPerRequest ?? 1000;
  const maxBytes = http?.maxBytesPerRequest ?? 500 * 1024 * 1024;

  /**
   * The checks before composing, on what the request says: recipients per request (400), sender
   * (403), size and size times recipients (413; `bodyBytes` is a lower bound of the message),
   * rate (429, nothing spent yet), free space for every copy (503).
   */
  const admit = async (mailFrom: string, recipients: number, bodyBytes: number, apiKey: ApiKeyRecord): Promise<void> => {
    if (recipients > maxRecipients) {
      throw apiErrors.invalid([{ in: 'body', path: 'to', reason: `${recipients} recipients, more than ${maxRecipients} in one request (http.maxRecipientsPerRequest)` }]);
    }
    checkSender(apiKey, mailFrom);
    checkSize(bodyBytes, recipients);
    if (apiKey.ratePerMinute !== undefined) ctx.rate.check(apiKey.name, apiKey.ratePerMinute, recipients);
    await checkSpace(bodyBytes, recipients);
  };

  /** @throws ApiError 413 when the message, or the message times recipients, is over its limit. */
  const checkSize = (bodyBytes: number, recipients: number): void => {
    if (bodyBytes > deps.config.limits.maxMessageSize) {
      throw apiErrors.tooLarge(`the message is ${bodyBytes} bytes, more than the limit of ${deps.config.limits.maxMessageSize}`);
    }
    if (bodyBytes * recipients > maxBytes) {
      throw apiErrors.tooLarge(`${recipients} copies of a ${bodyBytes}-byte message are ${bodyBytes * recipients} bytes, more than ${maxBytes} in one request (http.maxBytesPerRequest)`);
    }
  };

  /** @throws ApiError 503 when the store's free space is under the reserve plus one copy per recipient. */
  const checkSpace = async (bodyBytes: number, recipients: number): Promise<void> => {
    const need = deps.config.limits.minFreeBytes + bodyBytes * recipients;
    if (need <= 0) return;
    const free = await deps.store.freeBytes().catch(() => Number.POSITIVE_INFINITY);
    if (free < need) throw apiErrors.unavailable('the server is low on disk space for this request; try again later');
  };

  /** After composing: the exact size checks, then the rate tokens are spent. */
  const commit = async (bodyBytes: number, recipients: number, apiKey: ApiKeyRecord): Promise<void> => {
    checkSize(bodyBytes, recipients);
    await checkSpace(bodyBytes, recipients);
    if (apiKey.ratePerMinute !== undefined) ctx.rate.take(apiKey.name, apiKey.ratePerMinute, recipients);
  };

  /**
   * One submit per recipient not on the suppression list, together; the answer once all are
   * settled, suppressed recipients with status "suppressed" (each a message.rejected event, check
   * "suppression"). @throws the mapped error when recipients were to be queued and none was.
   */
  const submitAll = async (req: FastifyRequest, body: Buffer, mailFrom: string, recipients: readonly string[], meta: MessageMeta, origin: MessageOrigin, messageId: string | undefined, apiKey: ApiKeyRecord): Promise<AcceptedAnswer> => {
    const verdicts = recipients.map((address) => deps.suppressions?.check.verdict(mailFrom, address));
    const send = recipients.filter((_, i) => verdicts[i] === undefined);
    await commit(body.length, send.length, apiKey);
    const bodyType = has8bit(body) ? '8BITMIME' as const : '7BIT' as const;
    const headerUtf8 = utf8InHeader(body);
    const results = await Promise.allSettled(send.map((address) => {
      const envelope: Envelope = { mailFrom, recipients: [{ address }], bodyType, smtputf8: headerUtf8 || isUtf8(mailFrom) || isUtf8(address) };
      return deps.sink.submit({ origin, envelope, body, meta, addMissingFields: true }).then((done) => {
        // Under an Idempotency-Key: recorded as each commit lands, so a crash before the answer leaves the IDs.
        ctx.idempotency.noteQueued(req, address, done.queueId);
        return done;
      });
    }));
    await ctx.idempotency.flushed(req);
    crashPoint('api-after-commit-before-answer');
    const ok = results.filter((x): x is PromiseFulfilledResult<Submitted> => x.status === 'fulfilled');
    // Recipients not queued spend no rate.
    if (apiKey.ratePerMinute !== undefined) ctx.rate.refund(apiKey.name, send.length - ok.length);
    if (ok.length === 0 && results.length > 0) throw (results[0] as PromiseRejectedResult).reason;
    const bySent = new Map(send.map((address, i) => [address, results[i]!]));
    return {
      messageId: ok.find((x) => x.value.messageId)?.value.messageId ?? messageId,
      recipients: recipients.map((address, i) => {
        const v = verdicts[i];
        if (v) {
          deps.rejected?.(origin, { reply: replyToString(R.suppressed(address, v.entry.reason)), mailFrom, recipient: address, check: 'suppression' });
          return { address, status: 'suppressed' as const, reason: v.entry.reason };
        }
        const x = bySent.get(address)!;
        if (x.status === 'fulfilled') return { address, queueId: x.value.queueId, status: 'queued' as const };
        const e = toPostlineError(x.reason);
        deps.logger.warn({ err: e, recipient: address }, 'API submission of one recipient failed');
        recordRefusal(origin, e, mailFrom, address);
        return { address, status: 'failed' as const, error: { status: statusOfPostlineError(e), code: e.code, message: e.message } };
      }),
    };
  };

  /** Tells deps.rejected of a refusal (the answer as one line: "403 ERR_API_FORBIDDEN text"). */
  const recordRefusal = (origin: MessageOrigin, err: unknown, mailFrom: string, recipient?: string): void => {
    if (!ctx.refusals) return;
    const a = toErrorAnswer(err);
    if (a.status >= 500 && a.status !== 503) return;
    try {
      ctx.refusals.record(origin, { reply: `${a.status} ${a.body.code} ${a.body.message}`.replace(/[\r\n]+/g, ' '), mailFrom, ...(recipient !== undefined ? { recipient } : {}) });
    } catch { /* never fails a request */ }
  };

  /** Runs `fn`, recording a refusal before passing it on. */
  const recorded = async <T>(origin: MessageOrigin, mailFrom: string, fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (err) {
      recordRefusal(origin, err, mailFrom);
      throw err;
    }
  };

  const meta = (m: { tags?: string[]; metadata?: Record<string, string>; tracking?: { opens?: boolean; clicks?: boolean } }, sendAt: number | undefined): MessageMeta => ({
    ...(m.tags ? { tags: m.tags } : {}),
    ...(m.metadata ? { metadata: m.metadata } : {}),
    ...(sendAt !== undefined ? { sendAt } : {}),
    ...(m.tracking ? { tracking: m.tracking } : {}),
  });

  r.post('/api/v1/messages', {
    schema: {
      tags: ['messages'],
      summary: 'Send a message composed from fields (one queue entry per recipient)',
      security: [{ bearer: [] }],
      headers: s.idempotencyHeaders,
      body: s.sendMessage,
      response: { 202: s.accepted, ...errors },
    },
    onRequest: requireScope(deps.keys, 'send', { maxBodyBytes: apiMaxBodyBytes(deps.config) }),
    preHandler: ctx.idempotency.preHandler,
  }, async (req, reply) => {
    const m = req.body;
    const key = req.apiKey!;
    const mailFrom = addressOf(m.from);
    const origin: MessageOrigin = { kind: 'api', apiKey: key.name, clientAddress: req.ip };
    const answer = await recorded(origin, mailFrom, async () => {
      const at = sendAtMs(m.sendAt);
      const recipients = unique([...m.to, ...m.cc, ...m.bcc].map(addressOf));
      await admit(mailFrom, recipients.length, contentBytes(m), key);
      const composed = await composeMessage(m, deps.config.hostname);
      return submitAll(req, composed.body, mailFrom, composed.recipients, meta(m, at), origin, composed.messageId, key);
    });
    return reply.code(202).send(answer);
  });

  r.post('/api/v1/messages/raw', {
    schema: {
      tags: ['messages'],
      summary: 'Send an RFC 5322 message as is (base64), as SMTP submission would queue it',
      security: [{ bearer: [] }],
      headers: s.idempotencyHeaders,
      body: s.sendRaw,
      response: { 202: s.accepted, ...errors },
    },
    onRequest: requireScope(deps.keys, 'send', { maxBodyBytes: apiMaxBodyBytes(deps.config) }),
    preHandler: ctx.idempotency.preHandler,
  }, async (req, reply) => {
    const m = req.body;
    const key = req.apiKey!;
    const origin: MessageOrigin = { kind: 'api', apiKey: key.name, clientAddress: req.ip };
    const answer = await recorded(origin, m.mailFrom, async () => {
      const at = sendAtMs(m.sendAt);
      const recipients = unique(m.rcptTo);
      const raw = Buffer.from(m.raw, 'base64');
      await admit(m.mailFrom, recipients.length, raw.length, key);
      const body = normalizeRaw(raw);
      return submitAll(req, body, m.mailFrom, recipients, meta(m, at), origin, undefined, key);
    });
    return reply.code(202).send(answer);
  });

  r.get('/api/v1/messages/:queueId', {
    schema: {
      tags: ['messages'],
      summary: 'A message: envelope, size, metadata, and per recipient its status and every attempt',
      security: [{ bearer: [] }],
      params: s.queueParams,
      response: { 200: s.messageStatus, 400: errorSchema, 401: errorSchema, 403: errorSchema, 404: errorSchema },
    },
    onRequest: requireScope(deps.keys, 'read'),
  }, async (req) => {
    const id = req.params.queueId;
    const [msg, events] = await Promise.all([deps.store.get(id), readAllEvents(ctx, id)]);
    if (!msg && events.length === 0) throw apiErrors.notFound(`no message ${id} (not queued, and no events of it retained)`);
    return messageStatus(id, msg, events);
  });
}

/** Every retained event of one message (at most 10 pages of 1000). */
async function readAllEvents(ctx: ApiContext, queueId: string): Promise<StoredEvent[]> {
  const out: StoredEvent[] = [];
  let after = 0;
  for (let page = 0; page < 10; page++) {
    const got = await ctx.deps.store.readEvents({ queueId, after, limit: 1000 });
    out.push(...got);
    if (got.length < 1000) break;
    after = got[got.length - 1]!.id;
  }
  return out;
}

type Status = MessageStatusAnswer['recipients'][number]['status'];

/** Builds the GET /api/v1/messages/{queueId} answer from the queue row (if any) and the events. */
export function messageStatus(id: string, msg: Awaited<ReturnType<ApiContext['deps']['store']['get']>>, events: readonly StoredEvent[]): MessageStatusAnswer {
  const received = events.find((e) => e.type === 'message.received');
  // Known only from a refusal (smtpd at end of DATA gives the refused message a queue ID): say so.
  const rejected = !msg && !received ? events.find((e) => e.type === 'message.rejected') : undefined;
  const deleted = events.some((e) => e.type === 'message.deleted');
  const quarantined = events.some((e) => e.type === 'message.quarantined');
  const addresses = msg ? msg.recipients.map((x) => x.address)
    : received?.recipients ? [...received.recipients]
      : [...new Set(events.map((e) => e.recipient).filter((x): x is string => !!x))];
  const recipients = addresses.map((address, i) => {
    const lower = address.toLowerCase();
    const attempts = events
      .filter((e) => e.type.startsWith('recipient.') && e.recipient?.toLowerCase() === lower)
      .map((e) => ({
        at: e.at,
        outcome: e.type.slice('recipient.'.length),
        ...(e.attempt !== undefined ? { attempt: e.attempt } : {}),
        ...(e.remoteHost !== undefined ? { remoteHost: e.remoteHost } : {}),
        ...(e.reply !== undefined ? { reply: e.reply } : {}),
        ...(e.dsn !== undefined ? { dsn: e.dsn } : {}),
        ...(e.bounceClass !== undefined ? { bounceClass: e.bounceClass } : {}),
        ...(e.durationMs !== undefined ? { durationMs: e.durationMs } : {}),
        ...(e.tls !== undefined ? { tls: { version: e.tls.version, cipher: e.tls.cipher, ...(e.tls.verified !== undefined ? { verified: e.tls.verified } : {}) } } : {}),
      }));
    const last = attempts[attempts.length - 1]?.outcome;
    let status: Status;
    const stored = msg?.recipients[i];
    if (rejected && !attempts.length) status = 'rejected';
    else if (stored && stored.status !== 'pending') status = stored.status;
    else if (stored) status = last === 'deferred' ? 'deferred' : 'queued';
    else if (last === 'dropped') status = 'suppressed'; // recipient.dropped: accepted over SMTP and never sent
    else if (last && last !== 'deferred') status = last as Status;
    else status = deleted ? 'deleted' : last === 'deferred' ? 'deferred' : 'queued';
    return { address, status, attempts };
  });
  const tags = msg?.tags ?? received?.tags ?? [];
  const metadata = msg?.metadata ?? received?.metadata ?? {};
  const messageId = msg?.messageId ?? received?.messageId ?? events.find((e) => e.messageId)?.messageId;
  const size = msg?.size ?? received?.size;
  const arrivedAt = msg?.arrivedAt ?? received?.at;
  return {
    queueId: id,
    ...(messageId !== undefined ? { messageId } : {}),
    mailFrom: msg?.mailFrom ?? received?.mailFrom ?? rejected?.mailFrom ?? '',
    ...(rejected?.reply !== undefined ? { reply: rejected.reply } : {}),
    ...(size !== undefined ? { size } : {}),
    ...(arrivedAt !== undefined ? { arrivedAt } : {}),
    tags: [...tags],
    metadata: { ...metadata },
    inQueue: !!msg,
    state: msg ? (msg.held ? 'held' : 'queued') : rejected ? 'rejected' : deleted ? 'deleted' : quarantined ? 'quarantined' : 'done',
    ...(msg ? { nextAttemptAt: msg.nextAttemptAt } : {}),
    recipients,
  };
}
