/**
 * Delivery agent interface. An agent takes one delivery request (one message, recipients that share a
 * next hop) and returns one result per recipient. Agents never touch the store; the scheduler writes
 * the outcomes. The SMTP agent (smtp-agent.ts) is the one place that decides retry vs bounce for SMTP
 * replies and connection trouble (like Postfix's smtp_trouble).
 */
import type { Readable } from 'node:stream';
import type { EnvelopeFacts, IndexedRecipient } from '../core/envelope.js';
import type { NextHop } from '../routing/types.js';
import type { EventRecord } from '../events/record.js';
import type { BounceClass } from '../feedback/classes.js';

/** A recipient to deliver: its index in the queued message (passed back in the result), address, NOTIFY, ORCPT. */
export type DeliveryRecipient = IndexedRecipient;

/** One delivery: a message and the recipients of one next hop (`H`: the kinds of hop the agent takes). */
export interface DeliveryRequest<H extends NextHop = NextHop> extends EnvelopeFacts {
  readonly queueId: string;
  /** Body size in bytes (for SIZE=). */
  readonly size: number;
  readonly recipients: readonly DeliveryRecipient[];
  readonly nextHop: H;
  /** Opens the body (CRLF lines, not dot-stuffed). May be called more than once (one per attempt/MX). */
  openBody(): Readable;
  /** Aborts the attempt (shutdown); the agent then answers deferred for what is not done. */
  readonly signal?: AbortSignal;
  /** The limits the scheduler set for this destination (scheduler/shaping.ts); absent: the agent's defaults. */
  readonly shaping?: DeliveryShaping;
  /**
   * The source to send from (scheduler/egress.ts): bind address and EHLO name; connections are
   * pooled per next hop and source. Absent: delivery.sourceAddress and heloName.
   */
  readonly egress?: { readonly name: string; readonly address?: string; readonly ehloName?: string };
  /**
   * The site of the next hop (scheduler/sites.ts: its MX host set) when it differs from the
   * next-hop key: connections are pooled per site, so domains hosted together share them.
   */
  readonly site?: string;
}

/**
 * Traffic shaping a delivery obeys inside the agent. The scheduler owns the limits (connections at
 * once, message rates); the agent applies the two it alone can see happen.
 */
export interface DeliveryShaping {
  /** Messages over one connection before it is closed (the destination's rule, else delivery.messagesPerConnection). */
  readonly messagesPerConnection: number;
  /**
   * Called before every new connection to the destination (not for a pooled one reused); resolves
   * when the destination's connection rate allows one more (connectionsPerMinute), or early when
   * `signal` aborts. Never rejects.
   */
  beforeConnect(signal?: AbortSignal): Promise<void>;
}

/** Outcome class of one recipient in one attempt. */
export type DeliveryOutcome = 'delivered' | 'deferred' | 'bounced';

export interface RecipientResult {
  readonly idx: number;
  readonly outcome: DeliveryOutcome;
  /** Reply code (e.g. 250, 451, 550); for local trouble without a reply use 451 / 550 style codes. */
  readonly code: number;
  /** Enhanced status code for the DSN Status field ("2.0.0", "4.4.1", "5.1.1"). */
  readonly dsnStatus: string;
  /** One-line diagnostic: the remote reply ("550 5.1.1 User unknown") or our own reason. */
  readonly diagnostic: string;
  /** True when the remote reply came from the remote server (Diagnostic-Code: smtp; ...). */
  readonly remote: boolean;
  /**
   * Deferred and bounced results: why (feedback/classes.ts: InvalidRecipient, MailboxFull,
   * DnsFailure, NoAnswerFromHost, ...), from the reply or the local trouble (delivery/trouble.ts).
   */
  readonly bounceClass?: BounceClass;
  /** Remote MTA name and address ("mx.example.com[127.0.0.1]:25"), when connected. */
  readonly remoteMta?: string;
  /**
   * Delivered results only: true when the next hop does not support DSN and NOTIFY=SUCCESS was
   * asked, so we report the success ourselves with `Action: relayed` (RFC 3461 5.2.2).
   */
  readonly relayed?: boolean;
  /**
   * Delivered results only: true when the next hop offered DSN, so this recipient's NOTIFY and
   * ORCPT went with its RCPT TO and the next hop reports on it. A relay to a DSN-capable hop
   * issues no notice of its own (RFC 3461 5.2.2): no success DSN is owed. Never with `relayed`.
   */
  readonly dsnPassedOn?: boolean;
  /**
   * What this result says about the destination as a whole: 'unreachable' when no host of the next
   * hop answered (connect refused or timed out, no greeting or a refusal at it). The scheduler then
   * marks the destination dead and defers its other mail without connecting (scheduler/destinations.ts).
   */
  readonly destination?: 'unreachable';
  /**
   * The TLS session of the connection that gave this result, when it used TLS: protocol version,
   * cipher, and whether the certificate was verified (chain trusted and the host's name in it;
   * see delivery/tls-policy.ts judgeCertificate).
   */
  readonly tls?: { readonly version: string; readonly cipher: string; readonly verified: boolean };
  /**
   * Events the agent found in the message, about other messages (the feedback consumer: an
   * asynchronous bounce or a complaint about mail we sent). The scheduler writes them in the
   * same commit as this recipient's outcome, so a crash never records one without the other.
   */
  readonly events?: readonly EventRecord[];
}

/** What an agent keeps of one delivery while it runs (smtp-agent.ts, local/lmtp-agent.ts). */
export interface DeliveryProgress<H extends NextHop = NextHop> {
  readonly req: DeliveryRequest<H>;
  /** This delivery (this next-hop group) needs a server that offers SMTPUTF8 (mail-params.ts). */
  readonly smtputf8Required: boolean;
  /** Recipients not decided yet. */
  pending: DeliveryRecipient[];
  readonly results: RecipientResult[];
  /** The last trouble; it decides the recipients left pending. */
  trouble?: unknown;
  /** A message went out in full on the connection (counts toward messages per connection). */
  sent: boolean;
  /** A server answered (greeting seen, or a pooled connection reused): the destination is reachable. */
  reached: boolean;
}

export interface DeliveryAgent {
  /** Delivers one request. Never throws: every failure becomes per-recipient deferred/bounced results. */
  deliver(req: DeliveryRequest): Promise<RecipientResult[]>;
  /** Closes pooled connections (QUIT). */
  close(): Promise<void>;
}
