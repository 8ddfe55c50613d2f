/**
 * The neutral shape of "where a message comes from" and "how it goes in": the facts about one SMTP
 * session (`SessionInfo`) and the streaming door into cleanup (`MessageSink` / `IncomingMessage`).
 *
 * Owns only types. smtpd fills `SessionInfo` and streams into a `MessageSink`; cleanup implements
 * the sink and policy reads the facts, so neither of them depends on smtpd (DESIGN.md: "a neutral
 * door into cleanup"). `SmtpPolicy` is what smtpd asks of policy. RFC 5321 4.4 (what a Received field records), RFC 8314 4.3 (TLS facts).
 */
import type { DroppedRecipient, Envelope, Recipient } from './envelope.js';
import type { SmtpReply } from './reply.js';

/** The listener a session arrived on (a subset of the listener configuration). */
export interface ListenerFacts {
  readonly name: string;
  /** mx: inbound and relay; submission: AUTH required (RFC 6409). */
  readonly role: 'mx' | 'submission';
}

/** The TLS session, once up (STARTTLS or implicit TLS). */
export interface TlsFacts {
  /** Protocol version as reported by the TLS library: "TLSv1.3", "TLSv1.2". */
  readonly protocol: string;
  /** Cipher suite name as reported by the TLS library (OpenSSL name): "TLS_AES_256_GCM_SHA384". */
  readonly cipher: string;
  /** The IANA (RFC 8446 / 5246 registry) name of the cipher suite, when known. */
  readonly standardName?: string;
}

/**
 * The peer that spoke for the client: a load balancer that sent a PROXY protocol header, or a
 * client that sent XCLIENT (Postfix XCLIENT_README). Its own address is never counted or checked
 * as a client's.
 */
export interface ProxyFacts {
  /** The peer's address and port (the TCP connection's other end). */
  readonly address: string;
  readonly port: number;
  /** How the client's address was given (the last way, when PROXY and then XCLIENT were used). */
  readonly via: 'proxy-v1' | 'proxy-v2' | 'xclient';
}

/**
 * Client attributes an XFORWARD command gave for the next transaction (Postfix XFORWARD_README):
 * for logs and events only, never for a check or the Received field. Absent keys were
 * [UNAVAILABLE]. All values are printable ASCII without spaces, at most 255 characters.
 */
export interface ForwardedFacts {
  readonly name?: string;
  readonly addr?: string;
  readonly port?: string;
  readonly proto?: string;
  readonly helo?: string;
  /** The up-stream queue ID. */
  readonly ident?: string;
  /** LOCAL or REMOTE. */
  readonly source?: string;
}

/**
 * Facts about one SMTP session, as far as known at the time of the call. The client's and the
 * local endpoint are the proxied ones behind a PROXY header; XCLIENT changes them during the
 * session (smtpd is the only writer; policy sees the session again through openSession).
 */
export interface SessionInfo {
  /** Session ID for logs. */
  readonly id: string;
  readonly listener: ListenerFacts;
  /** Normalised (core/ip.ts): "::ffff:" stripped; "unknown" after XCLIENT ADDR=[UNAVAILABLE]. */
  clientAddress: string;
  clientPort: number;
  localAddress: string;
  localPort: number;
  /** Set when a proxy or an XCLIENT client named the client. */
  proxy?: ProxyFacts;
  /** The client's host name as XCLIENT NAME gave it (no reverse DNS is done otherwise). */
  clientName?: string;
  /** The protocol XCLIENT PROTO says the client used (SMTP or ESMTP), for the Received field; else EHLO/HELO decides. */
  clientProto?: 'SMTP' | 'ESMTP';
  /** XFORWARD attributes for the current transaction (logs and events only). */
  forwarded?: ForwardedFacts;
  /** HELO/EHLO argument. */
  heloName?: string;
  /** True after EHLO (false after HELO). */
  esmtp: boolean;
  /** Set once TLS is up (STARTTLS or implicit). */
  tls?: TlsFacts;
  /** Set after a successful AUTH. */
  authUser?: string;
}

/** One message being received: bytes go in as they arrive (dot-unstuffed, CRLF lines). */
export interface IncomingMessage {
  /** The queue ID this message will have (for logs and the Received header). */
  readonly queueId: string;
  /**
   * Writes a chunk of message data. Returns false when the caller should wait for `drain()` before
   * writing more (backpressure). Throws nothing: errors surface in `finish()`.
   */
  write(chunk: Buffer): boolean;
  /** Resolves when the writer can take more data. */
  drain(): Promise<void>;
  /**
   * Ends the message and commits it (durable before it resolves).
   * @returns the queue ID for the 250 reply.
   * @throws PostlineError with the reply to send (552 size, 554 5.4.6 loop, 452 4.3.1 disk, 451 local error).
   */
  finish(): Promise<string>;
  /** Abandons the message (RSET, client gone, refused). Never throws. */
  abort(): Promise<void>;
}

/** Where received messages go (cleanup). */
export interface MessageSink {
  /** Starts receiving a message for this envelope. Throws PostlineError (e.g. 452 4.3.1) to refuse. */
  begin(s: SessionInfo, envelope: Envelope): Promise<IncomingMessage>;
  /**
   * Records that smtpd refused a recipient or a message (message.rejected event, durable, batched
   * with other commits). Never throws; never delays the reply.
   */
  rejected?(s: SessionInfo, r: Rejection): void;
}

/**
 * A refusal from policy: the reply, and which check gave it (for the message.rejected event and
 * metrics): "dnsbl:ZONE", "rate:messagesPerMinute", "rate:perNetwork.connectionsPerMinute",
 * "access", "pregreet", "auth-throttle", "data-rate". Plain SmtpReply values are accepted too.
 */
export type PolicyReply = SmtpReply & { readonly check?: string };

/** What policy wants done before the greeting (SmtpPolicy.openSession). */
export interface GreetingPlan {
  /**
   * Pregreet check (postscreen): send the first banner line, wait this long (ms) and tell
   * `checkGreeting` whether the client talked meanwhile. 0: no pause.
   */
  readonly greetPauseMs: number;
}

/** The answer to an AUTH attempt (SmtpPolicy.authenticateSession). */
export type AuthVerdict =
  | { readonly ok: true }
  /** Wrong user or password (535); `reply` set: refused without checking (454 4.7.0 throttle). */
  | { readonly ok: false; readonly reply?: PolicyReply };

/** Limits smtpd applies itself to a session, as policy decides them for this client. */
export interface SessionLimits {
  /** Error tarpit: after this many errors each error reply waits `errorSleepMs`; undefined: no tarpit. */
  readonly softErrorLimit?: number;
  readonly errorSleepMs?: number;
  /** Minimum data rate in DATA/BDAT: `bytes` per `windowMs`; undefined: none. */
  readonly minDataRate?: { readonly bytes: number; readonly windowMs: number };
}

/** Policy answers: undefined means accept. */
export interface SmtpPolicy {
  /** At connect: e.g. too many connections from this IP. */
  checkConnect?(s: SessionInfo): SmtpReply | undefined;
  /** At MAIL FROM: sender ownership for authenticated users, free-space reserve (452 4.3.1). */
  checkMailFrom(s: SessionInfo, mailFrom: string, sizeHint: number | undefined): Promise<SmtpReply | undefined> | SmtpReply | undefined;
  /**
   * At RCPT TO: relay control, local recipient validation and the suppression list (`mailFrom`:
   * the transaction's reverse-path, '' for the null sender). Returns a reject reply, or accept
   * with the address to queue (postmaster rewritten to the configured postmaster address), or
   * accept and drop (a suppressed recipient in the drop mode: 250, never queued).
   */
  checkRecipient(s: SessionInfo, rcpt: Recipient, mailFrom?: string): Promise<RecipientDecision> | RecipientDecision;
  /** Verifies a username/password (SASL PLAIN/LOGIN). Resolves true when valid. */
  authenticate(username: string, password: string): Promise<boolean>;
  /**
   * True when the client is authenticated or in relay.trustedNetworks: such sessions have no
   * limits.maxMessagesPerSession cap. Absent: every session is capped.
   */
  mayRelay?(s: SessionInfo): boolean;
  /**
   * At connect, before anything is sent: counts the connection, starts the blocklist lookups (they
   * run beside the greeting, never blocking other sessions). A reply refuses the connection at once
   * (421 4.7.0 rate, 554 5.7.1 access list); else the plan for the greeting.
   */
  openSession?(s: SessionInfo): PolicyReply | GreetingPlan;
  /**
   * After the greeting pause (if any), before the final 220 line: `pregreet` is true when the client
   * sent something before it. A reply is sent instead of 220 (554: then only QUIT is accepted; 421:
   * closed). May wait for the blocklist answers (bounded by policy.dnsbl.timeoutMs).
   */
  checkGreeting?(s: SessionInfo, facts: { readonly pregreet: boolean }): Promise<PolicyReply | undefined> | PolicyReply | undefined;
  /** The session ended (frees what openSession kept). Never throws. */
  closeSession?(s: SessionInfo): void;
  /** Limits smtpd enforces for this session (tarpit, data rate); asked once after the greeting. */
  sessionLimits?(s: SessionInfo): SessionLimits;
  /**
   * AUTH with the session's facts: failures are counted per (user, address), address and network
   * across sessions; a throttled client is refused before any hashing (454 4.7.0). When absent,
   * smtpd calls `authenticate`. The password is never logged or stored.
   */
  authenticateSession?(s: SessionInfo, username: string, password: string): Promise<AuthVerdict>;
  /** True when `address` (a connection's peer) may send a PROXY protocol header (policy.trustedProxies). Absent: no one may. */
  isTrustedProxy?(address: string): boolean;
  /** True when this client may send XCLIENT (policy.xclientNetworks); it is offered in EHLO only then. Absent: no one. */
  mayXclient?(s: SessionInfo): boolean;
  /** True when this client may send XFORWARD (policy.xforwardNetworks); offered in EHLO only then. Absent: no one. */
  mayXforward?(s: SessionInfo): boolean;
}

export type RecipientDecision =
  | { readonly accept: true; readonly recipient: Recipient; readonly drop?: undefined }
  /** Answer 250, keep it out of the queue; cleanup records it (recipient.dropped). */
  | { readonly accept: true; readonly recipient: Recipient; readonly drop: DroppedRecipient }
  | { readonly accept: false; readonly reply: SmtpReply };

/** Where a message came from, for Received headers, logs, events and policy. */
export interface MessageOrigin {
  /** 'smtp' | 'dsn' (generated notice) | 'api' (HTTP sending API) | 'local' (the sendmail command: submit socket or maildrop). */
  readonly kind: 'smtp' | 'dsn' | 'api' | 'local';
  readonly clientAddress?: string;
  /** HELO/EHLO name. */
  readonly clientName?: string;
  readonly authUser?: string;
  readonly listener?: string;
  /** API key name (kind 'api'). */
  readonly apiKey?: string;
  /** The client's host name, as XCLIENT NAME gave it. */
  readonly clientHost?: string;
  /** The address of the proxy (PROXY protocol) or XCLIENT client that named the client. */
  readonly proxyAddress?: string;
  /** XFORWARD attributes (the up-stream client of a content filter), for logs and events. */
  readonly forwarded?: ForwardedFacts;
  /**
   * Kind 'local': the local user who ran the sendmail command. Over the submit socket it is the
   * name the command sent (`localUserSource: 'claimed'`: Node cannot read the peer's credentials,
   * SO_PEERCRED, so nothing checks it); from the maildrop it is the name of the file owner's uid
   * (`'uid'`: the kernel's word), with `localUid`.
   */
  readonly localUser?: string;
  readonly localUid?: number;
  readonly localUserSource?: 'claimed' | 'uid';
}

/**
 * Message metadata (DESIGN.md): stored with the message and copied into every event about it.
 * Set by the API's fields, or by X-Postline-Tags / X-Postline-Metadata headers from authenticated
 * or trusted SMTP clients (cleanup reads and removes them).
 */
export interface MessageMeta {
  /** Labels, each 1..128 characters; at most 32 (limits.maxTags / maxTagLength). */
  readonly tags?: readonly string[];
  /** String to string; keys 1..128 characters, the whole at most limits.maxMetadataBytes of JSON. */
  readonly metadata?: Readonly<Record<string, string>>;
  /** ms since epoch: do not try to deliver before this (deferred sending). */
  readonly sendAt?: number;
  /**
   * Open and click tracking asked for this message (the API's `tracking` field, or
   * X-Postline-Tracking from a trusted client); a flag not given takes tracking.opens / clicks.
   * Read by the tracking modifier (src/tracking/), not stored.
   */
  readonly tracking?: { readonly opens?: boolean; readonly clicks?: boolean };
}

/** A complete message handed to cleanup in one piece (the API, generated mail, the sendmail command). */
export interface Submission {
  readonly origin: MessageOrigin;
  readonly envelope: Envelope;
  /** The whole RFC 5322 message, CRLF line endings, not dot-stuffed. */
  readonly body: Buffer;
  readonly meta?: MessageMeta;
  /** Add a missing Date and Message-ID (RFC 6409 8.2, 8.3). Default true for 'api'. */
  readonly addMissingFields?: boolean;
}

/** A Submission whose message bytes follow in pieces (IncomingSubmission). */
export type SubmissionStart = Omit<Submission, 'body'>;

/**
 * A whole message being written in pieces (the sendmail command's submit socket and the maildrop,
 * src/pickup/): the bytes are the RFC 5322 message with CRLF line endings, not dot-stuffed.
 */
export interface IncomingSubmission {
  readonly queueId: string;
  /** Writes a piece; false: wait for `drain()` before the next. Errors surface in `finish()`. */
  write(chunk: Buffer): boolean;
  drain(): Promise<void>;
  /** Bytes written so far. */
  size(): number;
  /**
   * Ends the message and commits it (durable before it resolves).
   * @throws PostlineError as SubmissionSink.submit (552 5.3.4 size, 554 5.4.6 hops, 452 4.3.1, 451 4.3.0).
   */
  finish(): Promise<Submitted>;
  /** Abandons the message. Never throws. */
  abort(): Promise<void>;
}

/** The door for whole messages that arrive as a stream (implemented by cleanup). */
export interface StreamSubmissionSink {
  /**
   * Starts one message: same checks, Received field and commit as `submit`, the body written in pieces.
   * @throws PostlineError before any byte: no recipients (503), bad metadata (554 5.6.0), store errors (452 4.3.1, 451 4.3.0).
   */
  openSubmission(s: SubmissionStart): Promise<IncomingSubmission>;
}

/** What cleanup answers for an accepted Submission, once it is durable. */
export interface Submitted {
  readonly queueId: string;
  /** The Message-ID header field value (found or added), with angle brackets, when any. */
  readonly messageId?: string;
  readonly size: number;
}

/**
 * The door for whole messages (implemented by cleanup). Same limits, Received field, hop check and
 * commit as SMTP mail; the message.received event is written in the same commit.
 */
export interface SubmissionSink {
  /**
   * Queues one message.
   * @throws PostlineError: 552 5.3.4 over limits.maxMessageSize, 554 5.4.6 too many hops, 452 4.3.1
   *         below the free-space reserve, 451 4.3.0 other store errors, 550 5.6.0 bad metadata.
   */
  submit(s: Submission): Promise<Submitted>;
}

/** Why smtpd refused something, for the message.rejected event (cleanup writes it). */
export interface Rejection {
  readonly stage: 'connect' | 'mail' | 'rcpt' | 'data' | 'api' | 'auth' | 'local';
  /** Which check refused ("dnsbl:ZONE", "rate:messagesPerMinute", "auth-throttle", "dmarc", ...), when one did. */
  readonly check?: string;
  /** The reply we gave, one line ("550 5.7.1 Relay access denied"). */
  readonly reply: string;
  readonly mailFrom?: string;
  readonly recipient?: string;
  readonly queueId?: string;
}
