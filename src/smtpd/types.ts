/**
 * What the SMTP server (smtpd) needs from the rest of Postline. smtpd only speaks the protocol and
 * asks policy; it never writes the queue itself: it streams each accepted message into the
 * `MessageSink` (cleanup), which commits it and returns the queue ID for the 250 reply.
 */
import type { Envelope, Recipient } from '../core/envelope.js';
import type { SmtpReply } from '../core/reply.js';
import type { ListenerConfig } from '../config/schema.js';

/** Facts about one SMTP session, as far as known at the time of the call. */
export interface SessionInfo {
  /** Session ID for logs. */
  readonly id: string;
  readonly listener: ListenerConfig;
  readonly clientAddress: string;
  readonly clientPort: number;
  readonly localAddress: string;
  readonly localPort: number;
  /** HELO/EHLO argument. */
  heloName?: string;
  /** True after EHLO (false after HELO). */
  esmtp: boolean;
  /** Set once TLS is up (STARTTLS or implicit). */
  tls?: { readonly protocol: string; readonly cipher: string };
  /** Set after a successful AUTH. */
  authUser?: string;
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
}

export type RecipientDecision =
  | { readonly accept: true; readonly recipient: Recipient }
  | { readonly accept: false; readonly reply: SmtpReply };

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

export interface MessageSink {
  /** Starts receiving a message for this envelope. Throws PostlineError (e.g. 452 4.3.1) to refuse. */
  begin(s: SessionInfo, envelope: Envelope): Promise<IncomingMessage>;
}
