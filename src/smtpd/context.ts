/**
 * What a command handler sees of its SMTP session (RFC 5321 4.1.4 command order and state).
 *
 * Owns: the `SessionContext` interface given to each handler in `commands/`, and the mail
 * transaction state (`Transaction`) built by MAIL, RCPT, DATA and BDAT. Types and small helpers only.
 */
import type { LineEndingCheck } from '../rfc5321/line-endings.js';
import type { TlsServerSetup } from './tls-context.js';
import type { ConnectionSlot } from './connection-limiter.js';
import type { Logger } from 'pino';
import type { PostlineConfig, ListenerConfig } from '../config/schema.js';
import type { DroppedRecipient, Envelope, Recipient } from '../core/envelope.js';
import type { SmtpReply } from '../core/reply.js';
import type { MailParams } from '../rfc5321/params.js';
import type { LineResult } from './input.js';
import type { Socket } from 'node:net';
import type { IncomingMessage, MessageSink, PolicyReply, ProxyFacts, Rejection, SessionInfo, SmtpPolicy } from './types.js';

/** One mail transaction (RFC 5321 3.3): from MAIL until the end of data, RSET, EHLO or STARTTLS. */
export interface Transaction {
  readonly mailFrom: string;
  readonly params: MailParams;
  readonly recipients: Recipient[];
  /** Recipients accepted with 250 that policy dropped (suppressed, drop mode): never queued. */
  readonly dropped: DroppedRecipient[];
  /** The message being received (after DATA or the first BDAT). */
  message?: IncomingMessage;
  /** True once a BDAT chunk was sent in this transaction (DATA is then out of sequence). */
  bdat: boolean;
  /** Octets received by BDAT so far. */
  bdatBytes: number;
  /** Set when a BDAT transaction failed: every later chunk gets this reply until LAST or RSET. */
  bdatFailed?: SmtpReply;
  /** Bare CR/LF detection across BDAT chunks. */
  bdatLines?: LineEndingCheck;
  /** RCPTs refused with 452 4.5.3 beyond the recipient limit (only a large overshoot counts as errors). */
  overshoot?: number;
}

/** The session as command handlers use it. */
export interface SessionContext {
  readonly info: SessionInfo;
  readonly config: PostlineConfig;
  readonly listener: ListenerConfig;
  readonly policy: SmtpPolicy;
  readonly sink: MessageSink;
  readonly log: Logger;
  /** The current mail transaction, if any. */
  tx: Transaction | undefined;
  /** Messages accepted (250 after data) in this session. */
  messagesAccepted: number;
  /** Queues a reply (replies are flushed in batches when the client pipelines, RFC 2920). */
  reply(r: SmtpReply): void;
  /**
   * Reports a refusal to the sink (a message.rejected event); the check a policy reply names
   * (PolicyReply.check) is carried along. Never throws, never waits.
   */
  rejected(r: Rejection, policyReply?: PolicyReply): void;
  /** Sends `r` (if given), flushes and closes the connection. */
  close(r?: SmtpReply): void;
  /** Ends the current transaction, abandoning a message being received. Never throws. */
  resetTransaction(): Promise<void>;
  /**
   * Reads the next line (command timeout applies).
   * @param maxOctets longest line including CRLF.
   * @returns undefined when the connection closed or timed out.
   */
  readLine(maxOctets: number): Promise<LineResult | undefined>;
  /** Reads the next raw bytes, at most `max` (data block timeout applies); undefined when closed. */
  readChunk(max?: number): Promise<Buffer | undefined>;
  /** Returns bytes to the front of the input (pipelined commands after the end of data). */
  unread(bytes: Buffer): void;
  /** Writes decoded message bytes, pausing the socket while the sink asks to wait (backpressure). */
  writeMessage(msg: IncomingMessage, data: readonly Buffer[]): Promise<void>;
  /** The TLS contexts for STARTTLS now (reloadable, SNI), or undefined when TLS is not configured. */
  secureContext(): TlsServerSetup | undefined;
  /** After "220 Ready": discards buffered plaintext, runs the handshake, resets the session (RFC 3207 4.2). */
  startTls(setup: TlsServerSetup): Promise<void>;
  /** Attributes the last XCLIENT commands set that EHLO/HELO and the session reset keep (XCLIENT_README). */
  readonly xclient: XclientState;
  /**
   * After XCLIENT changed `info`: counts the connection under the new address, runs policy's
   * connection checks again and sends the new greeting (220, 554 then only QUIT, or 421 and close).
   */
  readmit(): Promise<void>;
}

/** What XCLIENT set that outlives the reset it causes. */
export interface XclientState {
  /** XCLIENT HELO: the name EHLO/HELO record instead of their own argument. */
  helo?: string;
  /** XCLIENT LOGIN: the session is authenticated as this user after each reset. */
  login?: string;
}

/** The envelope of a transaction, for `MessageSink.begin` (RFC 5321 3.3, RFC 3461 4). */
export function envelopeOf(tx: Transaction): Envelope {
  return {
    mailFrom: tx.mailFrom,
    recipients: [...tx.recipients],
    bodyType: tx.params.body,
    smtputf8: tx.params.smtputf8,
    ret: tx.params.ret,
    envid: tx.params.envid,
    declaredSize: tx.params.size,
    ...(tx.dropped.length ? { dropped: [...tx.dropped] } : {}),
  };
}

/** What a Session is made of (smtpd/server.ts builds one per accepted connection). */
export interface SessionDeps {
  readonly config: PostlineConfig;
  readonly listener: ListenerConfig;
  readonly sink: MessageSink;
  readonly policy: SmtpPolicy;
  readonly logger: Logger;
  readonly socket: Socket;
  readonly secureContext: () => TlsServerSetup | undefined;
  /** When set, the session answers this (421) instead of the greeting and closes. */
  readonly reject?: SmtpReply;
  /** The endpoints a PROXY header named (default: the socket's own). */
  readonly endpoints?: SessionEndpoints;
  /** The connection's count in the limiter: released at the end, moved by XCLIENT. */
  readonly slot?: ConnectionSlot;
}

/** The client's and the local endpoint as a PROXY header gave them, and the proxy. */
export interface SessionEndpoints {
  readonly clientAddress: string;
  readonly clientPort: number;
  readonly localAddress: string;
  readonly localPort: number;
  readonly proxy?: ProxyFacts;
}
