/**
 * The neutral shape of "where a message comes from" and "how it goes in": the facts about one SMTP
 * session (`SessionInfo`) and the streaming door into cleanup (`MessageSink` / `IncomingMessage`).
 *
 * Owns only types. smtpd fills `SessionInfo` and streams into a `MessageSink`; cleanup implements
 * the sink and policy reads the facts, so neither of them depends on smtpd (DESIGN.md: "a neutral
 * door into cleanup"). `SmtpPolicy` is what smtpd asks of policy. RFC 5321 4.4 (what a Received field records), RFC 8314 4.3 (TLS facts).
 */
import type { Envelope, Recipient } from './envelope.js';
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

/** Facts about one SMTP session, as far as known at the time of the call. */
export interface SessionInfo {
  /** Session ID for logs. */
  readonly id: string;
  readonly listener: ListenerFacts;
  readonly clientAddress: string;
  readonly clientPort: number;
  readonly localAddress: string;
  readonly localPort: number;
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
}

/** Policy answers: undefined means accept. */
export interface SmtpPolicy {
  /** At connect: e.g. too many connections from this IP. */
  checkConnect?(s: SessionInfo): SmtpReply | undefined;
  /** At MAIL FROM: sender ownership for authenticated users, free-space reserve (452 4.3.1). */
  checkMailFrom(s: SessionInfo, mailFrom: string, sizeHint: number | undefined): Promise<SmtpReply | undefined> | SmtpReply | undefined;
  /**
   * At RCPT TO: relay control and local recipient validation. Returns a reject reply, or accept
   * with the address to queue (postmaster rewritten to the configured postmaster address).
   */
  checkRecipient(s: SessionInfo, rcpt: Recipient): Promise<RecipientDecision> | RecipientDecision;
  /** Verifies a username/password (SASL PLAIN/LOGIN). Resolves true when valid. */
  authenticate(username: string, password: string): Promise<boolean>;
  /**
   * True when the client is authenticated or in relay.trustedNetworks: such sessions have no
   * limits.maxMessagesPerSession cap. Absent: every session is capped.
   */
  mayRelay?(s: SessionInfo): boolean;
}

export type RecipientDecision =
  | { readonly accept: true; readonly recipient: Recipient }
  | { readonly accept: false; readonly reply: SmtpReply };
