/**
 * Cleanup: the one door into the queue (DESIGN.md). SMTP sessions (MessageSink), and generated
 * DSNs (`inject`) pass through here; nothing else calls QueueStore.createBody/commit.
 *
 * RFCs: RFC 5321 4.4 (Received trace field, 250 only after commit), RFC 5321 6.3 (hop count /
 * loop detection), RFC 6409 8.2/8.3 (submission may add Date and Message-ID), RFC 3848 / RFC 6531
 * (with-protocol types), RFC 8314 4.3 (TLS details in Received). Owns: queue ID assignment, the Received field, the byte rules in
 * incoming.ts, the 'message.queued' event and its log line.
 *
 * Whole messages (the HTTP API, generated DSNs) come in through `submit` (core/session.ts
 * SubmissionSink), or in pieces through `openSubmission` (the sendmail command, src/pickup/;
 * StreamSubmissionSink): same limits, hop check, Received field and commit as SMTP mail. Every commit
 * carries its 'message.received' event (the store writes it in the same transaction: outbox);
 * refusals reported by smtpd (`rejected`) become 'message.rejected' events.
 *
 * Generated mail (`inject`) gets a short "Received: by HOSTNAME (Postline) id QUEUEID; DATE" so
 * it carries a trace like everything else; it is not subject to the size or hop limits (the
 * caller, the scheduler, bounds what it returns of an original).
 */
import { droppedEvents, localComment, originOf } from './origin.js';
import { isAscii } from 'node:buffer';
import { systemClock, type Clock } from '../core/clock.js';
import type { Envelope } from '../core/envelope.js';
import { PostlineError, toPostlineError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { newQueueId } from '../core/queue-id.js';
import { R } from '../core/reply.js';
import type { PostlineConfig } from '../config/schema.js';
import { authSummary, type EventRecord } from '../events/record.js';
import type {
  IncomingMessage, IncomingSubmission, MessageMeta, MessageOrigin, MessageSink, Rejection, SessionInfo, StreamSubmissionSink, Submission,
  SubmissionSink, SubmissionStart, Submitted,
} from '../core/session.js';
import type { BodyWriter, NewMessage, QueuedMessage, QueueStore } from '../spool/types.js';
import { CleanupMessage, type CommitFacts } from './incoming.js';
import { DiscardedMessage } from './discard.js';
import { ModifierChain, type ModifierContext, type ModifierFactory } from './modifiers.js';
import { validateMeta, type MetaLimits } from './meta.js';
import { buildReceived, receivedProtocol } from './received.js';
import { soleRecipient, uniqueRecipients } from './recipients.js';
import { expandAliases, type LocalRecipientRules } from '../routing/aliases.js';

/** The configuration keys cleanup reads. */
export type CleanupConfig = Pick<PostlineConfig, 'hostname'> & {
  readonly limits: Pick<PostlineConfig['limits'], 'maxMessageSize' | 'maxReceivedHeaders'> & Partial<MetaLimits>;
  /** received.tlsDetails (default true): TLS version and cipher in the Received field. */
  readonly received?: Partial<PostlineConfig['received']>;
};

/** Constructor options of Cleanup. */
export interface CleanupOptions {
  readonly store: QueueStore;
  /** hostname, limits.maxMessageSize (bytes), limits.maxReceivedHeaders. */
  readonly config: CleanupConfig;
  readonly logger: Logger;
  readonly clock?: Clock;
  /** Called with each committed message (the scheduler's `enqueued`). */
  readonly onQueued?: (msg: QueuedMessage) => void;
  /**
   * True when the session's client is authenticated or trusted (relay.trustedNetworks): only then
   * are X-Postline-Tags / X-Postline-Metadata read (policy mayRelay). Default: authenticated only.
   */
  readonly isTrusted?: (s: SessionInfo) => boolean;
  /**
   * Told how long each accepted message took, ms: from `begin` (the DATA or BDAT command) or the
   * start of `submit` to the durable commit (the accept latency histogram of src/metrics/).
   */
  readonly onAccepted?: (ms: number) => void;
  /**
   * The modifier factories (modifiers.ts: DKIM signing, later verification), read for each new
   * message (so a reload takes effect for the next one); the chain sorts them by stage.
   */
  readonly modifiers?: () => readonly ModifierFactory[];
  /**
   * Local recipient rules (aliases.ts: `local.aliases` expanded at acceptance, `local.routes` in
   * hold mode), read for each new message (a reload applies to the next one). Absent: none.
   */
  readonly local?: () => LocalRecipientRules | undefined;
}

const DEFAULT_META_LIMITS: MetaLimits = { maxTags: 32, maxTagLength: 128, maxMetadataBytes: 4096 };

/** The MessageSink smtpd streams into, plus `inject` for generated messages. */
export class Cleanup implements MessageSink, SubmissionSink, StreamSubmissionSink {
  private readonly store: QueueStore;
  private readonly config: CleanupConfig;
  private readonly logger: Logger;
  private readonly clock: Clock;
  private readonly onQueued?: (msg: QueuedMessage) => void;

  /** @throws PostlineError when an option is missing. */
  constructor(opts: CleanupOptions) {
    if (!opts.store || !opts.config || !opts.logger) {
      throw new PostlineError('ERR_CLEANUP_OPTIONS', 'Cleanup needs store, config and logger', { temporary: false });
    }
    this.store = opts.store;
    this.config = opts.config;
    this.logger = opts.logger;
    this.clock = opts.clock ?? systemClock;
    this.onQueued = opts.onQueued;
    this.isTrusted = opts.isTrusted ?? ((s) => s.authUser !== undefined);
    this.onAccepted = opts.onAccepted;
    this.modifiers = opts.modifiers ?? (() => []);
    this.local = opts.local ?? (() => undefined);
  }

  private readonly local: () => LocalRecipientRules | undefined;

  private readonly modifiers: () => readonly ModifierFactory[];

  /** The modifier chain of one message. @throws PostlineError (451 4.3.0) when a factory fails. */
  private chainFor(ctx: ModifierContext): ModifierChain {
    const factories = this.modifiers();
    if (!factories.length) return ModifierChain.EMPTY;
    try {
      return ModifierChain.create(factories, ctx);
    } catch (err) {
      const e = toPostlineError(err);
      this.logger.error({ queueId: ctx.queueId, err: e.message }, 'cannot start the modifiers of a message');
      throw e;
    }
  }

  private readonly onAccepted: ((ms: number) => void) | undefined;

  private readonly isTrusted: (s: SessionInfo) => boolean;

  /** The metadata bounds (limits.maxTags, maxTagLength, maxMetadataBytes), read at each use (live reload). */
  private metaLimits(): MetaLimits {
    const l = this.config.limits;
    return { maxTags: l.maxTags ?? DEFAULT_META_LIMITS.maxTags, maxTagLength: l.maxTagLength ?? DEFAULT_META_LIMITS.maxTagLength, maxMetadataBytes: l.maxMetadataBytes ?? DEFAULT_META_LIMITS.maxMetadataBytes };
  }

  /**
   * Starts a message for this mail transaction: assigns the queue ID and opens its body.
   * @throws PostlineError: 452 4.3.1 below the free-space reserve (StoreError full), 552 5.3.4 when
   *         the declared SIZE is over the limit, 503 without recipients, 451 4.3.0 otherwise.
   */
  async begin(s: SessionInfo, envelope: Envelope): Promise<IncomingMessage> {
    if (!envelope.recipients.length && !envelope.dropped?.length) {
      throw new PostlineError('ERR_NO_RECIPIENTS', 'no recipients', { temporary: false, reply: R.badSequence('need RCPT command') });
    }
    const limits = this.config.limits;
    if (envelope.declaredSize !== undefined && envelope.declaredSize > limits.maxMessageSize) {
      throw new PostlineError('ERR_SIZE', 'declared size over the limit', { temporary: false, reply: R.sizeExceeded });
    }
    const started = this.clock.now();
    const id = newQueueId(started);
    if (!envelope.recipients.length) return this.discard(id, envelope, originOf(s));
    envelope = this.recipientsOf(id, envelope);
    const held = this.holds(envelope);
    const origin = originOf(s);
    const ctx: ModifierContext = { queueId: id, envelope, origin, session: s, role: s.listener.role, trusted: this.isTrusted(s) };
    const chain = this.chainFor(ctx);
    const body = await this.openBody(id);
    const received = buildReceived({
      heloName: s.heloName, clientAddress: s.clientAddress, hostname: this.config.hostname,
      ...(s.clientName !== undefined ? { clientName: s.clientName } : {}),
      protocol: receivedProtocol({ esmtp: s.clientProto ? s.clientProto === 'ESMTP' : s.esmtp, tls: !!s.tls, authenticated: !!s.authUser, smtputf8: envelope.smtputf8 }),
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
      ...(this.isTrusted(s) ? { readMeta: this.metaLimits() } : {}),
      bodyType: envelope.bodyType, chain, rechain: () => this.chainFor(ctx), reopen: () => this.openBody(id),
      // Our Received field is part of the header section too ("for <UTF-8 address>").
      commit: async (f, w) => {
        const queueId = await this.commit(id, envelope, origin, w, withUtf8(f, envelope, received), [], held);
        this.onAccepted?.(this.clock.now() - started);
        return queueId;
      },
    });
  }

  /**
   * Every recipient was dropped (suppressed, drop mode): the data is read and counted, nothing is
   * stored, and the recipient.dropped events are written at the end (relaxed, like a refusal's).
   */
  private discard(id: string, env: Envelope, origin: MessageOrigin): IncomingMessage {
    return new DiscardedMessage(id, this.config.limits.maxMessageSize, async () => {
      const events = droppedEvents(id, env, origin, this.clock.now(), undefined);
      try {
        await this.store.appendEvents(events);
      } catch (err) {
        const e = toPostlineError(err);
        this.logger.warn({ queueId: id, err: e.message }, 'cannot record dropped recipients');
        throw e;
      }
      this.logger.info({ queueId: id, from: env.mailFrom, dropped: events.map((e) => e.recipient), client: origin.clientAddress }, 'message dropped: every recipient is suppressed');
    });
  }

  /**
   * Records a refusal by smtpd as a 'message.rejected' event (written in the next group commit).
   * Never throws and never waits: a failed write is logged.
   */
  rejected(s: SessionInfo, r: Rejection): void {
    const origin: MessageOrigin = originOf(s);
    const e: EventRecord = {
      type: 'message.rejected', at: this.clock.now(), reason: r.stage, reply: r.reply, origin,
      ...(r.check !== undefined ? { check: r.check } : {}),
      ...(r.queueId !== undefined ? { queueId: r.queueId } : {}),
      ...(r.mailFrom !== undefined ? { mailFrom: r.mailFrom } : {}),
      ...(r.recipient !== undefined ? { recipient: r.recipient } : {}),
    };
    this.store.appendEvents([e]).catch((err: unknown) => this.logger.warn({ err: (err as Error).message }, 'cannot record a rejection event'));
  }

  /**
   * Records a refusal by the API (or another whole-message door: `stage` 'local' for the sendmail
   * command's socket and the maildrop) as 'message.rejected'. Never throws.
   */
  rejectedSubmission(origin: MessageOrigin, r: Omit<Rejection, 'stage'>, stage: 'api' | 'local' = 'api'): void {
    const e: EventRecord = {
      type: 'message.rejected', at: this.clock.now(), reason: stage, reply: r.reply, origin,
      ...(r.check !== undefined ? { check: r.check } : {}),
      ...(r.mailFrom !== undefined ? { mailFrom: r.mailFrom } : {}),
      ...(r.recipient !== undefined ? { recipient: r.recipient } : {}),
    };
    this.store.appendEvents([e]).catch((err: unknown) => this.logger.warn({ err: (err as Error).message }, 'cannot record a rejection event'));
  }

  /**
   * Queues one whole message (the HTTP API; core/session.ts SubmissionSink): the size and hop
   * limits, a Received field ("from api (key NAME) by HOST with HTTP"), Date/Message-ID when
   * missing (default for the API), X-Postline-* fields removed, metadata validated, one commit
   * with its 'message.received' event. @returns the queue ID, Message-ID and size once durable.
   * @throws PostlineError: 552 5.3.4 size, 554 5.4.6 hops, 554 5.6.0 bad metadata (MetadataError),
   *         452 4.3.1 below the free-space reserve, 451 4.3.0 other store errors.
   */
  async submit(sub: Submission): Promise<Submitted> {
    if (!sub.envelope.recipients.length) {
      throw new PostlineError('ERR_NO_RECIPIENTS', 'no recipients', { temporary: false, reply: R.badSequence('need recipients') });
    }
    if (sub.body.length > this.config.limits.maxMessageSize) {
      throw new PostlineError('ERR_SIZE', `message is ${sub.body.length} bytes, over ${this.config.limits.maxMessageSize}`, { temporary: false, reply: R.sizeExceeded });
    }
    const { body, ...start } = sub;
    const msg = await this.openSubmission(start);
    msg.write(body);
    await msg.drain();
    return msg.finish();
  }

  /**
   * Starts a whole message whose bytes follow in pieces (core/session.ts StreamSubmissionSink: the
   * sendmail command's submit socket and the maildrop, src/pickup/), under the same rules as
   * `submit`: limits.maxMessageSize counted as the bytes arrive, the hop limit, the Received field
   * ("by HOST (Postline, from userid N)" for kind 'local'), Date/Message-ID when missing (default
   * for 'api' and 'local'), metadata, one commit with its 'message.received' event. Modifiers see
   * role 'api' for the API, 'submission' for local mail (our own users' mail, like authenticated
   * submission), 'dsn' otherwise; all of them trusted.
   * @throws PostlineError before any byte: 503 no recipients, 554 5.6.0 bad metadata, 452 4.3.1 / 451 4.3.0 store errors.
   */
  async openSubmission(sub: SubmissionStart): Promise<IncomingSubmission> {
    const envelope = sub.envelope;
    if (!envelope.recipients.length) {
      throw new PostlineError('ERR_NO_RECIPIENTS', 'no recipients', { temporary: false, reply: R.badSequence('need recipients') });
    }
    const meta = sub.meta ? validateMeta(sub.meta, this.metaLimits()) : undefined;
    const started = this.clock.now();
    const id = newQueueId(started);
    const env = this.recipientsOf(id, envelope);
    const held = this.holds(env);
    const kind = sub.origin.kind;
    const ctx: ModifierContext = { queueId: id, envelope: env, origin: sub.origin, role: kind === 'api' ? 'api' : kind === 'local' ? 'submission' : 'dsn', trusted: true, ...(meta ? { meta } : {}) };
    const chain = this.chainFor(ctx);
    const body = await this.openBody(id);
    const received = buildReceived({
      hostname: this.config.hostname, queueId: id, date: this.clock.now(),
      ...(kind === 'api' ? { viaApi: sub.origin.apiKey ?? 'unknown' } : {}),
      ...(kind === 'local' ? { viaLocal: localComment(sub.origin) } : {}),
      forRecipient: soleRecipient(env.recipients),
    });
    let result: { messageId: string | undefined; meta: MessageMeta | undefined } | undefined;
    const msg = new CleanupMessage(id, body, {
      received,
      addMissingFields: sub.addMissingFields ?? (kind === 'api' || kind === 'local'),
      hostname: this.config.hostname,
      maxReceived: this.config.limits.maxReceivedHeaders,
      maxSize: this.config.limits.maxMessageSize,
      now: () => this.clock.now(),
      smtputf8: env.smtputf8,
      bodyType: env.bodyType, chain, rechain: () => this.chainFor(ctx), reopen: () => this.openBody(id),
      // Whole messages come from an authenticated door (API key, local command): X-Postline-*
      // fields are read; the Submission's own fields win over them, field by field.
      readMeta: this.metaLimits(),
      commit: async (f, w) => {
        const merged = { ...f.meta, ...meta };
        const { tracking: _tracking, ...kept } = merged; // read by the tracking modifier, not stored
        const m = kept.tags || kept.metadata || kept.sendAt !== undefined ? kept : undefined;
        result = { messageId: f.messageId, meta: m };
        return this.commit(id, env, sub.origin, w, { ...withUtf8(f, env, received), meta: m }, [], held);
      },
    });
    return {
      queueId: id,
      write: (chunk) => msg.write(chunk),
      drain: () => msg.drain(),
      size: () => msg.size(),
      abort: () => msg.abort(),
      finish: async () => {
        const queueId = await msg.finish();
        this.onAccepted?.(this.clock.now() - started);
        return { queueId, ...(result?.messageId !== undefined ? { messageId: result.messageId } : {}), size: msg.size() };
      },
    };
  }

  /**
   * Queues a locally generated message (a DSN: origin.kind 'dsn') through the same commit path.
   * @param body the complete message, CRLF line endings; a Received "by" field is prepended.
   * @param events more events to write in the same commit (the scheduler's 'dsn.queued' about the
   *        original; its `dsnQueueId` is filled in here).
   * @returns the new queue ID, once the message is durable.
   * @throws PostlineError (452 4.3.1 disk full, 451 4.3.0 other store errors).
   */
  async inject(envelope: Envelope, body: Buffer, origin: MessageOrigin, events: readonly EventRecord[] = []): Promise<string> {
    if (!envelope.recipients.length) throw new PostlineError('ERR_NO_RECIPIENTS', 'inject without recipients', { temporary: false });
    const id = newQueueId(this.clock.now());
    envelope = this.recipientsOf(id, envelope);
    const held = this.holds(envelope);
    const ctx: ModifierContext = { queueId: id, envelope, origin, role: 'dsn', trusted: true };
    const chain = this.chainFor(ctx);
    const writer = await this.openBody(id);
    const received = buildReceived({ hostname: this.config.hostname, queueId: id, date: this.clock.now() });
    // The same byte rules and chain as other mail; no size or hop limit (the scheduler bounds what it returns).
    const msg = new CleanupMessage(id, writer, {
      received, addMissingFields: false, hostname: this.config.hostname,
      maxReceived: Number.MAX_SAFE_INTEGER, maxSize: Number.MAX_SAFE_INTEGER, now: () => this.clock.now(),
      smtputf8: envelope.smtputf8, bodyType: envelope.bodyType, chain, rechain: () => this.chainFor(ctx), reopen: () => this.openBody(id),
      commit: (f, w) => this.commit(id, envelope, origin, w, withUtf8(f, envelope, received),
        events.map((e) => (e.type === 'dsn.queued' ? { ...e, dsnQueueId: id } : e)), held),
    });
    msg.write(body);
    await msg.drain();
    return msg.finish();
  }

  /**
   * The envelope with aliases expanded (aliases.ts: `local.aliases`, ORCPT kept) and duplicate
   * recipients removed (recipients.ts: same address, NOTIFY and ORCPT, compared in lower case, as
   * Postfix's cleanup does). smtpd answered 250 to each RCPT and counted each toward
   * limits.maxRecipients, as Postfix's smtpd does; only the queue sees one.
   * @throws AliasLoopError (554 5.4.6) when an expansion loops or passes `local.aliasLimits`.
   */
  private recipientsOf(id: string, envelope: Envelope): Envelope {
    const rules = this.local();
    const expanded = rules ? expandAliases(envelope.recipients, rules.aliases, rules.limits) : envelope.recipients;
    if (expanded !== envelope.recipients) this.logger.debug({ queueId: id, given: envelope.recipients.length, expanded: expanded.length }, 'aliases expanded');
    const recipients = uniqueRecipients(expanded);
    if (recipients === envelope.recipients) return envelope;
    if (recipients.length !== expanded.length) this.logger.debug({ queueId: id, given: expanded.length, kept: recipients.length }, 'duplicate recipients removed');
    return { ...envelope, recipients };
  }

  /** True when a recipient's local route holds mail (mode hold): the message is committed held. */
  private holds(envelope: Envelope): boolean {
    const rules = this.local();
    return !!rules && envelope.recipients.some((r) => rules.holds(r.address));
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

  /**
   * Commits with its 'message.received' event (same transaction), tells the scheduler, logs one
   * line. `held`: committed on hold, with its 'message.held' event (reason "local route") in the
   * same commit; `postline queue release` lets it go.
   */
  private async commit(
    id: string, env: Envelope, origin: MessageOrigin, body: BodyWriter, f: CommitFacts, more: readonly EventRecord[] = [], held = false,
  ): Promise<string> {
    const { messageId, utf8Headers, meta, prepend } = f;
    const now = this.clock.now();
    const msg: NewMessage = {
      id, mailFrom: env.mailFrom, bodyType: f.sevenBit ? '7BIT' : env.bodyType, smtputf8: env.smtputf8,
      ...(utf8Headers !== undefined ? { utf8Headers } : {}),
      ...(env.ret !== undefined ? { ret: env.ret } : {}),
      ...(env.envid !== undefined ? { envid: env.envid } : {}),
      origin,
      recipients: env.recipients.map((r) => ({
        address: r.address,
        ...(r.notify !== undefined ? { notify: r.notify } : {}),
        ...(r.orcpt !== undefined ? { orcpt: r.orcpt } : {}),
      })),
      arrivedAt: now,
      ...(messageId !== undefined ? { messageId } : {}),
      ...(meta ? { meta } : {}),
      ...(prepend ? { prepend } : {}),
      ...(held ? { held } : {}),
    };
    const recipients = env.recipients.map((r) => r.address);
    const received: EventRecord = {
      type: 'message.received', at: now, queueId: id, mailFrom: env.mailFrom, recipients,
      size: body.bytesWritten() + Buffer.byteLength(prepend, 'utf8'), origin,
      ...(messageId !== undefined ? { messageId } : {}),
      ...(meta?.tags ? { tags: meta.tags } : {}),
      ...(meta?.metadata ? { metadata: meta.metadata } : {}),
      ...(f.auth ? { auth: f.auth } : {}),
    };
    const hold: EventRecord[] = held ? [{
      type: 'message.held', at: now, queueId: id, mailFrom: env.mailFrom, reason: 'local route',
      ...(messageId !== undefined ? { messageId } : {}),
      ...(meta?.tags ? { tags: meta.tags } : {}),
      ...(meta?.metadata ? { metadata: meta.metadata } : {}),
      origin: { kind: origin.kind, ...(origin.listener !== undefined ? { listener: origin.listener } : {}), ...(origin.apiKey !== undefined ? { apiKey: origin.apiKey } : {}) },
    }] : [];
    const dropped = env.dropped?.length ? droppedEvents(id, env, origin, now, messageId, meta) : [];
    const q = await this.store.commit(msg, body, [received, ...dropped, ...more, ...hold]);
    this.onQueued?.(q);
    this.logger.info({
      queueId: id, from: env.mailFrom, recipients, size: q.size, messageId,
      client: origin.clientAddress ?? origin.kind, helo: origin.clientName, authUser: origin.authUser,
      ...(origin.proxyAddress ? { proxy: origin.proxyAddress } : {}),
      ...(origin.forwarded ? { origClient: `${origin.forwarded.name ?? 'unknown'}[${origin.forwarded.addr ?? 'unknown'}]`, origQueueId: origin.forwarded.ident } : {}),
      ...(f.auth ? { auth: authSummary(f.auth) } : {}),
      ...(held ? { held } : {}),
    }, 'message queued');
    return id;
  }
}

/**
 * The facts with the stored `utf8Headers` flag (spool/types.ts): for SMTPUTF8 mail, whether the
 * client's header section, our Received field or a prepended field holds non-ASCII; undefined for
 * other mail (never needed).
 */
function withUtf8(f: CommitFacts, env: Envelope, received: string): CommitFacts {
  if (!env.smtputf8) return { ...f, utf8Headers: undefined };
  const utf8 = f.utf8Headers === true || !isAscii(Buffer.from(received + f.prepend, 'utf8'));
  return { ...f, utf8Headers: utf8 };
}
