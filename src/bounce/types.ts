/**
 * Inputs of the RFC 3464 DSN builder (src/bounce/dsn.ts). The scheduler decides when a DSN is due
 * (NOTIFY, RET, double bounces); the builder only writes the message.
 */

/** Action field values (RFC 3464 2.3.3). */
export type DsnAction = 'failed' | 'delayed' | 'delivered' | 'relayed' | 'expanded';

export interface DsnRecipientReport {
  /** Final-Recipient address (rfc822; or utf-8; when non-ASCII). */
  readonly finalRecipient: string;
  /** Original-Recipient, only when ORCPT was given: "rfc822;addr". */
  readonly originalRecipient?: { addrType: string; address: string };
  readonly action: DsnAction;
  /** Status field: enhanced status code "5.1.1". */
  readonly status: string;
  /** Remote-MTA host name or address, when a remote server answered. */
  readonly remoteMta?: string;
  /** Diagnostic-Code text (the remote reply, one line), with type smtp when `remote`. */
  readonly diagnostic?: string;
  readonly remote?: boolean;
  /** Last-Attempt-Date (ms since epoch). */
  readonly lastAttemptAt?: number;
  /** Will-Retry-Until for delayed reports (ms since epoch). */
  readonly willRetryUntil?: number;
}

export interface DsnInput {
  /** Our host name: Reporting-MTA: dns; hostname, and the From: MAILER-DAEMON@hostname. */
  readonly reportingMta: string;
  /** Where the DSN goes: the original reverse-path. */
  readonly to: string;
  readonly queueId: string;
  readonly envid?: string;
  /** Arrival-Date of the original message (ms since epoch). */
  readonly arrivedAt: number;
  /** Received-From-MTA, when the message came in over SMTP: "dns; helo-name (addr)". */
  readonly receivedFromMta?: string;
  readonly recipients: readonly DsnRecipientReport[];
  /** FULL: attach the whole original (message/rfc822); HDRS: only its header (text/rfc822-headers). */
  readonly ret: 'FULL' | 'HDRS';
  /** The original message (CRLF), or only its header section when ret is HDRS. */
  readonly original: Buffer;
  /** Whether the original needs SMTPUTF8 (then message/global and message/global-delivery-status, RFC 6533). */
  readonly smtputf8?: boolean;
  /** ms since epoch for the Date header. */
  readonly now: number;
}
