/**
 * Cleanup: the one door into the queue (DESIGN.md). SMTP sessions (MessageSink), and generated
 * DSNs (`inject`) pass through here; nothing else calls QueueStore.createBody/commit.
 *
 * RFCs: RFC 5321 4.4 (Received trace field, 250 only after commit), RFC 5321 6.3 (hop count /
 * loop detection), RFC 6409 8.2/8.3 (submission may add Date and Message-ID), RFC 3848 / RFC 6531
 * (with-protocol types), RFC 8314 4.3 (TLS details in Received). Owns: queue ID assignment, the Received field, the byte rules in
 * incoming.ts, the 'message.queued' event and its log line.
 *
 * Generated mail (`inject`) gets a short "Received: by HOSTNAME (Postline) id QUEUEID; DATE" so
 * it carries a trace like everything else; it is not subject to the size or hop limits (the
 * caller, the scheduler, bounds what it returns of an original).
 */
import { isAscii } from 'node:buffer';
import { systemClock, type Clock } from '../core/clock.js';
import type { Envelope } from '../core/envelope.js';
import { PostlineError, toPostlineError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { newQueueId } from '../core/queue-id.js';
import { R } from '../core/reply.js';
import type { PostlineConfig } from '../config/schema.js';
import type { EventBus } from '../events/bus.js';
import { getHeaderFields, headerSection, parseHeaderFields } from '../rfc5322/header.js';
import type { IncomingMessage, MessageSink, SessionInfo } from '../core/session.js';
import type { BodyWriter, MessageOrigin, NewMessage, QueuedMessage, QueueStore } from '../spool/types.js';
import { CleanupMessage } from './incoming.js';
import { buildReceived, receivedProtocol } from './received.js';
import { soleRecipient, uniqueRecipients } from './recipients.js';

/** The configuration keys cleanup reads. */
export type CleanupConfig = Pick<PostlineConfig, 'hostname'> & {
  readonly limits: Pick<PostlineConfig['limits'], 'maxMessageSize' | 'maxReceivedHeaders'>;
  /** received.tlsDetails (default true): TLS version and cipher in the Received field. */
  readonly received?: Partial<PostlineConfig['received']>;
};

/** Constructor options of Cleanup. */
export interface CleanupOptions {
  readonly store: QueueStore;
  /** hostname, limits.maxMessageSize (bytes), limits.maxReceivedHeaders. */
  readonly config: CleanupConfig;
  readonly events: EventBus;
  readonly logger: Logger;
  readonly clock?: Clock;
  /** Called with each committed message (the scheduler's `enqueued`), before the event is emitted. */
  readonly onQueued?: (msg: QueuedMessage) => void;
}

/** The MessageSink smtpd streams into, plus `inject` for generated messages. */
export class Cleanup implements MessageSink {
  private readonly store: QueueStore;
  private readonly config: CleanupConfig;
  private readonly events: EventBus;
  private readonly logger: Logger;
  private readonly clock: Clock;
  private readonly onQueued?: (msg: QueuedMessage) => void;

  /** @throws PostlineError when an option is missing. */
  constructor(opts: CleanupOptions) {
    if (!opts.store || !opts.config || !opts.events || !opts.logger) {
      throw new PostlineError('ERR_CLEANUP_OPTIONS', 'Cleanup needs store, config, events and logger', { temporary: false });
    }
    this.store = opts.store;
    this.config = opts.config;
    this.events = opts.events;
    this.logger = opts.logger;
    this.clock = opts.clock ?? systemClock;
    this.onQueued = opts.onQueued;
  }

  /**
   * Starts a message for this mail transaction: assigns the queue ID and opens its body.
   * @throws PostlineError: 452 4.3.1 below the free-space reserve (StoreError full), 552 5.3.4 when
   *         the declared SIZE is over the limit, 503 without recipients, 451 4.3.0 otherwise.
   */
  async begin(s: SessionInfo, envelope: Envelope): Promise<IncomingMessage> {
    if (!envelope.recipients.length) {
      throw new PostlineError('ERR_NO_RECIPIENTS', 'no recipients', { temporary: false, reply: R.badSequence('need RCPT command') });
    }
    const limits = this.config.limits;
    if (envelope.declaredSize !== undefined && envelope.declaredSize > limits.maxMessageSize) {
      throw new PostlineError('ERR_SIZE', 'declared size over the limit', { temporary: false, reply: R.sizeExceeded });
    }
    const id = newQueueId(this.clock.now());
    envelope = this.withoutDuplicates(id, envelope);
    const body = await this.openBody(id);
    const origin: MessageOrigin = {
      kind: 'smtp', clientAddress: s.clientAddress, listener: s.listener.name,
      ...(s.heloName !== undefined ? { clientName: s.heloName } : {}),
      ...(s.authUser !== undefined ? { authUser: s.authUser } : {}),
    };
    const received = buildReceived({
      heloName: s.heloName, clientAddress: s.clientAddress, hostname: this.config.hostname,
      protocol: receivedProtocol({ esmtp: s.esmtp, tls: !!s.tls, authenticated: !!s.authUser, smtputf8: envelope.smtputf8 }),
      queueId: id,
      forRecipient: soleRecipient(envelope.recipients),
      date: this.clock.now(),
      tls: s.tls && this.config.received?.tlsDetails !== false ? s.tls : undefined,
    });
    return new CleanupMessage(id, body, {
      received,
      addMissingFields: s.listener.role === 'submission' && !!s.authUser,
      hostname: this.config.hostname,
      maxReceived: limits.maxReceivedHeaders,
      maxSize: limits.maxMessageSize,
      now: () => this.clock.now(),
      smtputf8: envelope.smtputf8,
      // Our Received field is part of the header section too ("for <UTF-8 address>").
      commit: (messageId, utf8Headers) => this.commit(id, envelope, origin, body, messageId, utf8Of(envelope, received, utf8Headers)),
    });
  }

  /**
   * Queues a locally generated message (a DSN: origin.kind 'dsn') through the same commit path.
   * @param body the complete message, CRLF line endings; a Received "by" field is prepended.
   * @returns the new queue ID, once the message is durable.
   * @throws PostlineError (452 4.3.1 disk full, 451 4.3.0 other store errors).
   */
  async inject(envelope: Envelope, body: Buffer, origin: MessageOrigin): Promise<string> {
    if (!envelope.recipients.length) throw new PostlineError('ERR_NO_RECIPIENTS', 'inject without recipients', { temporary: false });
    const id = newQueueId(this.clock.now());
    envelope = this.withoutDuplicates(id, envelope);
    const writer = await this.openBody(id);
    try {
      const received = buildReceived({ hostname: this.config.hostname, queueId: id, date: this.clock.now() });
      await writeAll(writer, [Buffer.from(received, 'utf8'), body]);
      const head = headerSection(body);
      const messageId = getHeaderFields(parseHeaderFields(head), 'message-id')[0]?.value.trim();
      return await this.commit(id, envelope, origin, writer, messageId || undefined, utf8Of(envelope, received, envelope.smtputf8 ? !isAscii(head) : undefined));
    } catch (err) {
      await writer.abort();
      throw toPostlineError(err);
    }
  }

  /**
   * The envelope with duplicate recipients removed (recipients.ts: same address, NOTIFY and ORCPT,
   * compared in lower case, as Postfix's cleanup does). smtpd answered 250 to each RCPT and counted
   * each toward limits.maxRecipients, as Postfix's smtpd does; only the queue sees one.
   */
  private withoutDuplicates(id: string, envelope: Envelope): Envelope {
    const recipients = uniqueRecipients(envelope.recipients);
    if (recipients === envelope.recipients) return envelope;
    this.logger.debug({ queueId: id, given: envelope.recipients.length, kept: recipients.length }, 'duplicate recipients removed');
    return { ...envelope, recipients };
  }

  private async openBody(id: string): Promise<BodyWriter> {
    try {
      return await this.store.createBody(id);
    } catch (err) {
      const e = toPostlineError(err);
      this.logger.warn({ queueId: id, err: e.message, code: e.code }, 'cannot start message');
      throw e;
    }
  }

  /** Commits, then announces: 'message.queued' event and one log line. */
  private async commit(id: string, env: Envelope, origin: MessageOrigin, body: BodyWriter, messageId: string | undefined, utf8Headers: boolean | undefined): Promise<string> {
    const msg: NewMessage = {
      id, mailFrom: env.mailFrom, bodyType: env.bodyType, smtputf8: env.smtputf8,
      ...(utf8Headers !== undefined ? { utf8Headers } : {}),
      ...(env.ret !== undefined ? { ret: env.ret } : {}),
      ...(env.envid !== undefined ? { envid: env.envid } : {}),
      origin,
      recipients: env.recipients.map((r) => ({
        address: r.address,
        ...(r.notify !== undefined ? { notify: r.notify } : {}),
        ...(r.orcpt !== undefined ? { orcpt: r.orcpt } : {}),
      })),
      arrivedAt: this.clock.now(),
    };
    const q = await this.store.commit(msg, body);
    this.onQueued?.(q);
    const recipients = env.recipients.map((r) => r.address);
    this.events.emit({
      type: 'message.queued', at: this.clock.now(), queueId: id, mailFrom: env.mailFrom, recipients,
      size: q.size, origin, ...(messageId !== undefined ? { messageId } : {}),
    });
    this.logger.info({
      queueId: id, from: env.mailFrom, recipients, size: q.size, messageId,
      client: origin.clientAddress ?? origin.kind, helo: origin.clientName, authUser: origin.authUser,
    }, 'message queued');
    return id;
  }
}

/**
 * The stored `utf8Headers` flag (spool/types.ts): for SMTPUTF8 mail, whether the client's header
 * section or our Received field holds non-ASCII; undefined for other mail (never needed).
 */
function utf8Of(env: Envelope, received: string, clientHeaders: boolean | undefined): boolean | undefined {
  if (!env.smtputf8) return undefined;
  return clientHeaders === true || !isAscii(Buffer.from(received, 'utf8'));
}

/** Writes buffers to a body stream honouring backpressure; rejects on a stream error. */
async function writeAll(body: BodyWriter, parts: readonly Buffer[]): Promise<void> {
  const s = body.stream;
  for (const p of parts) {
    if (s.destroyed) break; // the commit reports the stream's error
    if (!s.write(p)) {
      await new Promise<void>((resolve) => {
        const done = (): void => { s.off('drain', done); s.off('close', done); s.off('error', done); resolve(); };
        s.on('drain', done);
        s.on('close', done);
        s.on('error', done);
      });
    }
  }
}
