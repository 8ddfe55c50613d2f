/**
 * What the tracking and unsubscribe endpoints do once a request arrived (the HTTP routes are in
 * src/http/routes/tracking.ts): check the token, then record `recipient.opened`,
 * `recipient.clicked` or `recipient.unsubscribed` in the event log (store.appendEvents: these
 * events record no queue change). Each event carries the message's Message-ID, sender, tags and
 * metadata (from its queue row while it is queued, else from its `message.received` event), the
 * client's address and user agent, and for opens and clicks whether it is the first of its kind
 * for that message and recipient (`first`) and whether a machine made it (`machine`, machine.ts).
 *
 * "First" looks at the event log (at most LOOKUP_EVENTS events of the message, oldest first) and at
 * the opens and clicks this process recorded lately (the log shows an event only once it is
 * durable, up to half a second later). Unsubscribing changes nothing here: the suppression list
 * (src/suppression/) turns `recipient.unsubscribed` into an entry for the event's `scope`.
 */
import type { Clock } from '../core/clock.js';
import type { Logger } from '../core/log.js';
import type { EventRecord, StoredEvent } from '../events/record.js';
import type { QueueStore } from '../spool/types.js';
import { classifyRequest } from './machine.js';
import { TokenError, type LinkSigner, type LinkToken } from './tokens.js';

/** The store calls made here. */
export type EngagementStore = Pick<QueueStore, 'appendEvents' | 'readEvents' | 'get'>;

/** What is known of the request. */
export interface HitFacts {
  /** User-Agent ('' when none; cut to 512 characters). */
  readonly userAgent: string;
  readonly clientAddress: string;
  readonly method: string;
}

/** How an unsubscribe came: an RFC 8058 POST, our confirmation page's form, or mail to the mailto: address. */
export type UnsubscribeSource = 'one-click' | 'page' | 'mailto';

/** The calls the HTTP routes (and the mailto: hook) make. */
export interface EngagementEndpoints {
  /** Records an open. @throws TokenError (answer 400). Recording failures are logged, not thrown. */
  open(token: string, f: HitFacts): Promise<void>;
  /** Records a click. @returns the original URL to redirect to. @throws TokenError (answer 400). */
  click(token: string, f: HitFacts): Promise<string>;
  /** Checks an unsubscribe token without recording anything (the confirmation page). @throws TokenError. */
  checkUnsubscribe(token: string): LinkToken;
  /**
   * Records `recipient.unsubscribed` for the token's recipient and scope.
   * @throws TokenError (400), StoreError when it cannot be recorded (answer 503: the sender retries).
   */
  unsubscribeByToken(token: string, source: UnsubscribeSource, f?: HitFacts): Promise<LinkToken>;
}

/** Events of one message read to find earlier opens/clicks, the delivery and the metadata. */
export const LOOKUP_EVENTS = 500;
/** Opens and clicks remembered for the "first" check, at most. */
const RECENT_MAX = 10_000;
const MAX_UA = 512;

/** Options of Engagement. */
export interface EngagementOptions {
  readonly store: EngagementStore;
  readonly signer: () => LinkSigner;
  /** tracking.machineWindowMs, read at each request. */
  readonly machineWindowMs: () => number;
  readonly logger: Logger;
  readonly clock: Clock;
}

/** What the log and the queue say about one message. */
interface MessageFacts {
  readonly fields: Pick<EventRecord, 'mailFrom' | 'messageId' | 'tags' | 'metadata'>;
  readonly first: boolean;
  readonly deliveredAt: number | undefined;
}

const same = (a: string | undefined, b: string): boolean => (a ?? '').toLowerCase() === b.toLowerCase();

/** Records opens, clicks and unsubscribes (see the file comment). */
export class Engagement implements EngagementEndpoints {
  private readonly recent = new Map<string, true>();

  constructor(private readonly o: EngagementOptions) {}

  async open(token: string, f: HitFacts): Promise<void> {
    const t = this.o.signer().verify(token, 'open');
    await this.hit('recipient.opened', t, f);
  }

  async click(token: string, f: HitFacts): Promise<string> {
    const t = this.o.signer().verify(token, 'click');
    let target: URL;
    try {
      target = new URL(t.url!);
    } catch {
      throw new TokenError('the URL in it is not absolute');
    }
    if (target.protocol !== 'http:' && target.protocol !== 'https:') throw new TokenError('the URL in it is not http or https');
    await this.hit('recipient.clicked', t, f, target.href);
    return target.href;
  }

  checkUnsubscribe(token: string): LinkToken {
    return this.o.signer().verify(token, 'unsubscribe');
  }

  async unsubscribeByToken(token: string, source: UnsubscribeSource, f?: HitFacts): Promise<LinkToken> {
    const { token: t, event } = await this.unsubscribeEvent(token, source, f);
    await this.o.store.appendEvents([event]);
    this.o.logger.info({ queueId: t.queueId, recipient: t.recipient, scope: t.scope, source }, 'recipient unsubscribed');
    return t;
  }

  /**
   * The `recipient.unsubscribed` event of a token, not written (the mailto: consumer returns it
   * with its delivery result, so it is written in the same commit). @throws TokenError.
   */
  async unsubscribeEvent(token: string, source: UnsubscribeSource, f?: HitFacts): Promise<{ token: LinkToken; event: EventRecord }> {
    const t = this.checkUnsubscribe(token);
    const m = await this.facts(t, undefined);
    const event: EventRecord = {
      type: 'recipient.unsubscribed', at: this.o.clock.now(), queueId: t.queueId,
      ...(t.recipient ? { recipient: t.recipient } : {}),
      scope: t.scope!, source, ...m.fields,
      ...(f ? { userAgent: f.userAgent.slice(0, MAX_UA), clientAddress: f.clientAddress } : {}),
    };
    return { token: t, event };
  }

  /** Records an open or click; a failure to record is logged (the answer goes out anyway). */
  private async hit(type: 'recipient.opened' | 'recipient.clicked', t: LinkToken, f: HitFacts, url?: string): Promise<void> {
    const key = `${type}|${t.queueId}|${t.recipient.toLowerCase()}`;
    try {
      const m = await this.facts(t, type);
      const now = this.o.clock.now();
      const first = m.first && !this.recent.has(key);
      this.remember(key);
      const v = classifyRequest({
        userAgent: f.userAgent, clientAddress: f.clientAddress, method: f.method,
        ...(m.deliveredAt !== undefined ? { sinceDeliveryMs: now - m.deliveredAt } : {}),
      }, this.o.machineWindowMs());
      await this.o.store.appendEvents([{
        type, at: now, queueId: t.queueId, ...(t.recipient ? { recipient: t.recipient } : {}), ...m.fields,
        ...(url !== undefined ? { url } : {}),
        userAgent: f.userAgent.slice(0, MAX_UA), clientAddress: f.clientAddress, first, machine: v.machine,
        ...(v.reason ? { machineReason: v.reason } : {}),
      }]);
    } catch (err) {
      this.o.logger.warn({ err: (err as Error).message, queueId: t.queueId, type }, 'cannot record a tracking event');
    }
  }

  private remember(key: string): void {
    this.recent.delete(key);
    this.recent.set(key, true);
    if (this.recent.size > RECENT_MAX) this.recent.delete(this.recent.keys().next().value!);
  }

  /** The message's fields for the event, whether no `type` event of this recipient came before, and its delivery time. */
  private async facts(t: LinkToken, type: string | undefined): Promise<MessageFacts> {
    const types = ['message.received', 'recipient.delivered', 'recipient.relayed', ...(type ? [type] : [])];
    const [msg, events] = await Promise.all([
      this.o.store.get(t.queueId).catch(() => undefined),
      this.o.store.readEvents({ queueId: t.queueId, types, limit: LOOKUP_EVENTS }).catch((): StoredEvent[] => []),
    ]);
    const received = events.find((e) => e.type === 'message.received');
    const forRecipient = (e: StoredEvent): boolean => !t.recipient || same(e.recipient, t.recipient);
    const delivered = events.find((e) => (e.type === 'recipient.delivered' || e.type === 'recipient.relayed') && forRecipient(e));
    const earlier = type ? events.some((e) => e.type === type && same(e.recipient, t.recipient)) : false;
    const tags = msg?.tags ?? received?.tags;
    const metadata = msg?.metadata ?? received?.metadata;
    const messageId = msg?.messageId ?? received?.messageId;
    const mailFrom = msg?.mailFrom ?? received?.mailFrom;
    return {
      fields: {
        ...(mailFrom !== undefined ? { mailFrom } : {}),
        ...(messageId !== undefined ? { messageId } : {}),
        ...(tags?.length ? { tags } : {}),
        ...(metadata && Object.keys(metadata).length ? { metadata } : {}),
      },
      first: !earlier,
      deliveredAt: delivered?.at,
    };
  }
}

/** The local part of the mailto: unsubscribe address: "unsubscribe+TOKEN". */
export const MAILTO_PREFIX = 'unsubscribe+';

/**
 * The token of a mailto: unsubscribe address (unsubscribe+TOKEN@mailtoDomain), or undefined when
 * `address` is not one (mailto.ts, the internal `unsubscribe` consumer, reads it).
 */
export function mailtoToken(address: string): string | undefined {
  const at = address.lastIndexOf('@');
  const local = at < 0 ? address : address.slice(0, at);
  if (local.slice(0, MAILTO_PREFIX.length).toLowerCase() !== MAILTO_PREFIX) return undefined;
  const token = local.slice(MAILTO_PREFIX.length);
  return token.length ? token : undefined;
}
