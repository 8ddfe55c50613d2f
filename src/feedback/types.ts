/**
 * Shapes of the feedback parsers' answers (dsn-parse.ts, arf-parse.ts) and their limits.
 */
import type { BounceClass, BounceSeverity } from './classes.js';

/**
 * How much of a report the parsers read. Reports put their machine-readable parts first, so a
 * cut never loses them in practice; what was cut is only the tail of the returned original.
 */
export interface FeedbackLimits {
  /** Bytes of the message read at most; the rest is ignored (`truncated: true`). */
  readonly maxMessageBytes: number;
  /** Bytes kept of each MIME part, as transfer-encoded. */
  readonly maxPartBytes: number;
  /** MIME parts read at most (more: the parse stops there, with what it has). */
  readonly maxParts: number;
  /** Longest header section of one part, bytes. */
  readonly maxHeaderBytes: number;
  /** Recipients (or complained addresses) reported at most. */
  readonly maxRecipients: number;
}

export const DEFAULT_FEEDBACK_LIMITS: FeedbackLimits = Object.freeze({
  maxMessageBytes: 1024 * 1024,
  maxPartBytes: 128 * 1024,
  maxParts: 64,
  maxHeaderBytes: 64 * 1024,
  maxRecipients: 1000,
});

const clamp = (v: number | undefined, lo: number, hi: number, dflt: number): number =>
  typeof v === 'number' && Number.isFinite(v) ? Math.min(hi, Math.max(lo, Math.floor(v))) : dflt;

/** The limits to use: given values clamped to sane ranges, defaults for the rest. Never throws. */
export function feedbackLimits(o: Partial<FeedbackLimits> = {}): FeedbackLimits {
  const d = DEFAULT_FEEDBACK_LIMITS;
  return {
    maxMessageBytes: clamp(o.maxMessageBytes, 1024, 64 * 1024 * 1024, d.maxMessageBytes),
    maxPartBytes: clamp(o.maxPartBytes, 1024, 16 * 1024 * 1024, d.maxPartBytes),
    maxParts: clamp(o.maxParts, 1, 1000, d.maxParts),
    maxHeaderBytes: clamp(o.maxHeaderBytes, 1024, 1024 * 1024, d.maxHeaderBytes),
    maxRecipients: clamp(o.maxRecipients, 1, 100_000, d.maxRecipients),
  };
}

/** What the report is: an RFC 3464 DSN, another bounce format, an auto-reply, or neither. */
export type BounceKind = 'dsn' | 'bounce' | 'autoreply' | 'unknown';

/** One recipient a bounce reports on. */
export interface BounceRecipient {
  /** Final-Recipient (type and angle brackets removed), else Original-Recipient, else the address the text names. */
  readonly address: string;
  /** Original-Recipient (RFC 3464 2.3.1), when given and different. */
  readonly originalRecipient?: string;
  /** Action (RFC 3464 2.3.3), lower case: failed, delayed, delivered, relayed, expanded; 'failed' or 'delayed' for other formats. */
  readonly action?: string;
  /** Status (RFC 3464 2.3.4, "5.1.1"), or the enhanced code the diagnostic holds. */
  readonly status?: string;
  /** Diagnostic-Code without its type (RFC 3464 2.3.6), or the reason the text gives; one line. */
  readonly diagnostic?: string;
  /** The Diagnostic-Code's type, lower case ("smtp", "x-unix"), when given. */
  readonly diagnosticType?: string;
  /** Remote-MTA (RFC 3464 2.3.5) without its type. */
  readonly remoteMta?: string;
  readonly lastAttemptDate?: string;
  readonly willRetryUntil?: string;
  /** The bounce class; absent for a recipient that did not fail (delivered, relayed, expanded). */
  readonly class?: BounceClass;
  /** hard / soft (classes.ts); soft for `delayed`. Absent with `class`. */
  readonly severity?: BounceSeverity;
  /** The report names no recipient: this one is the enclosed original's only To address. */
  readonly inferred?: true;
}

/** The enclosed original message's header section (message/rfc822 or text/rfc822-headers, or copied into the text). */
export interface OriginalMessage {
  /** Message-ID with its angle brackets, as written. */
  readonly messageId?: string;
  readonly from?: string;
  readonly to?: string;
  /** Subject, RFC 2047 encoded words decoded. */
  readonly subject?: string;
  readonly date?: string;
  /** Every field: lower-case name → first value, unfolded (at most 200 fields of 2000 characters); X-Postline-* included. */
  readonly headers: Readonly<Record<string, string>>;
}

/** parseBounce's answer. */
export interface BounceReport {
  readonly kind: BounceKind;
  /** Empty for an auto-reply and when none can be read. */
  readonly recipients: readonly BounceRecipient[];
  /** Reporting-MTA (RFC 3464 2.2.2) without its type. */
  readonly reportingMta?: string;
  /** Original-Envelope-Id (RFC 3464 2.2.1, the ENVID of RFC 3461). */
  readonly envelopeId?: string;
  readonly arrivalDate?: string;
  readonly original?: OriginalMessage;
  /** kind 'autoreply': which sign said so (autoreply.ts). */
  readonly autoReply?: string;
  /** kind 'unknown': why; other kinds: what could not be read. */
  readonly reason?: string;
  /** The message was longer than maxMessageBytes and was cut. */
  readonly truncated?: boolean;
}

/** What a feedback report is: RFC 5965 ARF, another complaint format, or neither. */
export type ArfKind = 'arf' | 'complaint' | 'unknown';

/** parseArf's answer (RFC 5965 3.1-3.3 field names). */
export interface ArfReport {
  readonly kind: ArfKind;
  /** Feedback-Type, lower case: abuse, fraud, virus, other, not-spam, auth-failure (RFC 6591), opt-out... */
  readonly feedbackType?: string;
  readonly userAgent?: string;
  readonly version?: string;
  /** Original-Mail-From, angle brackets removed. */
  readonly originalMailFrom?: string;
  /** Every Original-Rcpt-To. */
  readonly originalRcptTo: readonly string[];
  /** The complained recipient: the first Original-Rcpt-To, else Removal-Recipient, else the enclosed original's To. */
  readonly recipient?: string;
  /** The provider redacted the recipient (Redacted-Address, or a local part "redacted"). */
  readonly redacted?: boolean;
  readonly arrivalDate?: string;
  readonly sourceIp?: string;
  readonly reportedDomains: readonly string[];
  readonly reportedUris: readonly string[];
  readonly authenticationResults?: string;
  readonly incidents?: number;
  /** Reporting-MTA without its type. */
  readonly reportingMta?: string;
  /** Who reported: a mailbox provider named by User-Agent, else the Reporting-MTA host, else the report's From domain. */
  readonly provider?: string;
  readonly original?: OriginalMessage;
  readonly reason?: string;
  readonly truncated?: boolean;
}
