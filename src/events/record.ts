/**
 * Typed events: past-tense records of every state change (DESIGN.md "durable event log").
 *
 * An event is written by the store in the SAME commit as the state change it records (an outbox):
 * a crash can never leave a change without its event, nor an event without its change. The store
 * gives each a monotonically increasing `id` (the cursor every reader keeps: the log sink, metrics,
 * webhooks, the API's history, `postline events`). Nothing else is a second source of truth.
 *
 * One flat record shape (like KumoMTA's log records), with the fields that apply to its type.
 * Model: KumoMTA crates/kumo-log-types (facts only; no code taken).
 */
import type { ForwardedFacts } from '../core/session.js';
import type { BounceClass } from '../feedback/classes.js';

/** Event types known today. Past tense. */
export const EVENT_TYPES = [
  'message.received', // accepted and queued (cleanup)
  'message.rejected', // refused at RCPT or end of DATA (smtpd), or by the API; `reply` is what we answered
  'recipient.delivered', // the next hop took it and owns it (final)
  'recipient.relayed', // delivered to a hop without DSN while NOTIFY=SUCCESS was asked (final)
  'recipient.deferred', // temporary failure; retried
  'recipient.bounced', // permanent failure (final)
  'recipient.expired', // queue lifetime ran out (final)
  'message.held', // operator: no delivery until released
  'message.released',
  'message.flushed', // operator: next attempt now
  'message.deleted', // operator removed it (no DSN)
  'message.quarantined', // a damaged entry was moved aside
  'dsn.queued', // a DSN about `queueId` was queued as `dsnQueueId`
  'dsn.dropped', // a DSN could not be sent anywhere (double bounce without a postmaster route)
  'recipient.complained', // a feedback-loop report (ARF) about mail to this recipient (src/feedback/consumer.ts)
  'recipient.opened', // the open pixel was fetched (src/tracking/): userAgent, clientAddress, first, machine
  'recipient.clicked', // a tracked link was followed: url, userAgent, clientAddress, first, machine
  'recipient.unsubscribed', // one-click or mailto: unsubscribe (RFC 8058, RFC 2369): scope (sender domain), source
  'recipient.suppressed', // added to the suppression list (src/suppression/): recipient, scope, reason, source
  'suppression.removed', // taken off the suppression list (operator, API, or cleared by a delivery)
  'recipient.dropped', // accepted over SMTP (suppression.mode drop) and never delivered: it is suppressed
] as const;

/**
 * Types reserved for what comes next (shaping); readers
 * must accept any type they do not know and pass it on.
 */
export const RESERVED_EVENT_TYPES = [
  'destination.suspended',
] as const;

export type KnownEventType = (typeof EVENT_TYPES)[number];
export type EventType = KnownEventType | (typeof RESERVED_EVENT_TYPES)[number];

/** The final recipient outcomes, and deferral. */
export type RecipientEventType = 'recipient.delivered' | 'recipient.relayed' | 'recipient.deferred' | 'recipient.bounced' | 'recipient.expired';

/** How a message came in (copied into its events). */
export interface EventOrigin {
  /** 'smtp' | 'api' | 'dsn' (generated notice) | 'local' (the sendmail command: submit socket or maildrop). */
  readonly kind: string;
  /** Listener name for SMTP. */
  readonly listener?: string;
  /** API key name for the HTTP API. */
  readonly apiKey?: string;
  readonly clientAddress?: string;
  /** HELO/EHLO name. */
  readonly clientName?: string;
  readonly authUser?: string;
  /** The client's host name (XCLIENT NAME). */
  readonly clientHost?: string;
  /** The proxy (PROXY protocol) or XCLIENT client that named the client. */
  readonly proxyAddress?: string;
  /** XFORWARD attributes: the up-stream client of a content filter (name, addr, port, proto, helo, ident, source). */
  readonly forwarded?: ForwardedFacts;
  /** Kind 'local': the user who ran the sendmail command; `localUserSource` 'claimed' (told over the submit socket, unchecked) or 'uid' (the maildrop file's owner, `localUid`). */
  readonly localUser?: string;
  readonly localUid?: number;
  readonly localUserSource?: string;
}

/** One check's result (RFC 8601 2.7; 'policy': a DKIM key shorter than auth.minKeyBits). */
export type AuthResult = 'pass' | 'fail' | 'softfail' | 'neutral' | 'none' | 'temperror' | 'permerror' | 'policy';

/**
 * What inbound verification (src/auth/) found for a message received on an mx listener: one flat
 * record of scalars, plus one entry per DKIM signature.
 */
export interface AuthOutcome {
  /** SPF of the MAIL FROM identity (RFC 7208 2.4; postmaster@HELO for the null sender). */
  readonly spf: AuthResult;
  /** The domain SPF checked for MAIL FROM. */
  readonly spfDomain?: string;
  /** SPF of the HELO identity (RFC 7208 2.3); 'none' for an address literal or a name without a dot. */
  readonly spfHelo: AuthResult;
  /** 'pass' when a signature passed; else 'temperror' when one had a DNS failure; else the first signature's result; 'none' unsigned. */
  readonly dkim: AuthResult;
  /** Every DKIM signature, top first: d=, s= and its result. */
  readonly dkimSignatures?: readonly { readonly domain: string; readonly selector: string; readonly result: AuthResult }[];
  /** DMARC (RFC 7489) for the From: domain. */
  readonly dmarc: AuthResult;
  /** The From: domain DMARC evaluated. */
  readonly dmarcDomain?: string;
  /** The policy that applies to it (p=, or sp= for a subdomain), when a record was found. */
  readonly dmarcPolicy?: 'none' | 'quarantine' | 'reject';
  /** What we did about a DMARC failure (after pct=): 'quarantine' (header added) or 'reject' (refused). */
  readonly dmarcAction?: 'none' | 'quarantine' | 'reject';
  /** ARC chain validation (RFC 8617): none | pass | fail. */
  readonly arc: AuthResult;
  /** Instances in the ARC chain as received (0 without one). */
  readonly arcChain?: number;
  /** True when we added an ARC set (arc.* configured and the message is forwarded). */
  readonly arcSealed?: boolean;
}

/** The results on one line for logs: "spf=pass helo=none dkim=pass dmarc=fail/quarantine arc=none sealed". */
export function authSummary(a: AuthOutcome): string {
  const action = a.dmarcAction && a.dmarcAction !== 'none' ? `/${a.dmarcAction}` : '';
  return `spf=${a.spf} helo=${a.spfHelo} dkim=${a.dkim} dmarc=${a.dmarc}${action} arc=${a.arc}${a.arcSealed ? ' sealed' : ''}`;
}

/** An event before the store numbered it. Fields not applying to the type are absent. */
export interface EventRecord {
  readonly type: EventType;
  /** ms since epoch. */
  readonly at: number;
  /** The message; absent for a rejection before a queue ID existed. */
  readonly queueId?: string;
  /** The recipient (recipient.* events; message.rejected at RCPT). */
  readonly recipient?: string;
  /** The reverse-path ('' for the null sender). */
  readonly mailFrom?: string;
  /** All recipients (message.received). */
  readonly recipients?: readonly string[];
  /** The Message-ID header field's value, with its angle brackets. */
  readonly messageId?: string;
  readonly tags?: readonly string[];
  readonly metadata?: Readonly<Record<string, string>>;
  readonly origin?: EventOrigin;
  /** Message size, bytes (message.received). */
  readonly size?: number;
  /** Next hop key ("mx:example.com", "relay:[smtp.example.net]:587"). */
  readonly nextHop?: string;
  /** Remote MTA "host[addr]:port" that gave the reply. */
  readonly remoteHost?: string;
  /**
   * TLS of the delivery connection, when it used TLS; `verified`: the certificate chain was trusted
   * and named the host (recipient.* events of deliveries since verification was added).
   */
  readonly tls?: { readonly version: string; readonly cipher: string; readonly verified?: boolean };
  /** Enhanced status code ("2.0.0", "4.4.1", "5.1.1"). */
  readonly dsn?: string;
  /** The remote reply, or the reply we gave (message.rejected), or our reason; one line. */
  readonly reply?: string;
  /**
   * recipient.deferred / bounced / expired: why the attempt failed, one of a closed set
   * (src/feedback/classes.ts: InvalidRecipient, BadDomain, MailboxFull, DnsFailure, ...); for
   * expired, the class of the last attempt. Events written before it existed lack it.
   */
  readonly bounceClass?: BounceClass;
  /**
   * An event read from mail that came back (src/feedback/consumer.ts): an asynchronous bounce
   * (`recipient.bounced` after the delivery) or a complaint. `kind` is the report's form (dsn,
   * bounce, arf, complaint), `queueId` the report's own queue entry.
   */
  readonly feedback?: {
    readonly kind: string;
    readonly queueId: string;
    readonly feedbackType?: string;
    readonly userAgent?: string;
    readonly provider?: string;
    readonly reportingMta?: string;
  };
  /** Delivery attempt number (1 = first). */
  readonly attempt?: number;
  /** How long this delivery attempt took, ms. */
  readonly durationMs?: number;
  /** ms from arrival to this outcome. */
  readonly delayMs?: number;
  /**
   * Why (quarantine, drop, rejection stage); for recipient.suppressed, suppression.removed and
   * recipient.dropped the list entry's reason (hard-bounce, soft-bounce, complaint, unsubscribe, manual).
   */
  readonly reason?: string;
  /**
   * The suppression list entry's scope: the sending domain (A-label) or '*' for every sender
   * (recipient.suppressed, suppression.removed, recipient.dropped); recipient.unsubscribed: the
   * sender domain the unsubscribe applies to (the suppression scope).
   */
  readonly scope?: string;
  /**
   * What made a suppression list change: the id of the event (decimal) of an automatic one, else
   * 'operator', 'api' or 'import' (recipient.suppressed, suppression.removed);
   * recipient.unsubscribed: how it came ("one-click" POST, "page" form, "mailto").
   */
  readonly source?: string;
  /** recipient.dropped: the list entry that matched (the address, or '*@domain' for a whole domain). */
  readonly match?: string;
  /** A suppression list entry's description (the bounce reply, the operator's note). */
  readonly detail?: string;
  /** recipient.suppressed: the entry stops applying at this time, ms since epoch. */
  readonly expiresAt?: number;
  /**
   * message.rejected by a policy check: which one ("dnsbl:ZONE", "rate:messagesPerMinute",
   * "rate:perNetwork.recipientsPerMinute", "access", "pregreet", "auth-throttle", "data-rate",
   * "dmarc": a DMARC p=reject failure refused at the end of DATA, "suppression": a recipient on
   * the suppression list, at RCPT or by the API; recipient.dropped carries it too).
   */
  readonly check?: string;
  /** dsn.queued: the queue ID of the DSN and its kind. */
  readonly dsnQueueId?: string;
  readonly dsnKind?: 'failure' | 'delay' | 'success';
  /** message.received on an mx listener: SPF, DKIM, DMARC and ARC results (absent when not verified). */
  readonly auth?: AuthOutcome;
  /** recipient.clicked: the original URL the link led to (where we redirected). */
  readonly url?: string;
  /** recipient.opened / clicked / unsubscribed: the request's User-Agent (at most 512 characters). */
  readonly userAgent?: string;
  /** recipient.opened / clicked / unsubscribed: the HTTP client's address. */
  readonly clientAddress?: string;
  /** recipient.opened / clicked: no earlier event of this type for this message and recipient. */
  readonly first?: boolean;
  /** recipient.opened / clicked: made by a prefetcher, proxy or link scanner, not the recipient (src/tracking/machine.ts). */
  readonly machine?: boolean;
  /** Why `machine` ("apple-mpp", "google-image-proxy", "scanner:barracuda", "soon-after-delivery", ...). */
  readonly machineReason?: string;
}

/** An event as stored: with its cursor. */
export interface StoredEvent extends EventRecord {
  /** Monotonically increasing, never reused (even after pruning). */
  readonly id: number;
}

/** True for a final recipient outcome. */
export function isFinalOutcome(type: string): boolean {
  return type === 'recipient.delivered' || type === 'recipient.relayed' || type === 'recipient.bounced' || type === 'recipient.expired';
}

/** Query of the event log (store.readEvents). */
export interface EventQuery {
  /** Only events with id > after (cursor). Default 0. */
  readonly after?: number;
  /** At most this many (1..10000). */
  readonly limit: number;
  /** Only these types. */
  readonly types?: readonly string[];
  /** Only events about this message. */
  readonly queueId?: string;
  /** Only events at or after this time, ms since epoch. */
  readonly since?: number;
}
