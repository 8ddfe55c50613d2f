/**
 * Bounce classes: why a recipient's mail failed, in a small fixed set (the idea of KumoMTA's and
 * PowerMTA's bounce categories; names and rules are our own). Each class has a severity:
 *
 * - `hard`: the address itself is bad (unknown user, nonexistent domain, closed mailbox, a
 *   domain the MX will not accept): a suppression list may add it at once;
 * - `soft`: the address may be fine (full mailbox, our content or reputation, the receiver's
 *   policy, network or system trouble): counted, suppressed only after several in a row.
 *
 * A temporary failure (4xx reply, `Action: delayed`) is always soft, whatever its class.
 * The set is closed and small (metrics may use it as a label; see src/metrics/labels.ts).
 */

export const BOUNCE_CLASSES = [
  'InvalidRecipient', // no such user / mailbox / address (RFC 3463 X.1.1)
  'BadDomain', // the recipient domain does not exist or takes no mail (X.1.2, NXDOMAIN, null MX RFC 7505)
  'InactiveMailbox', // mailbox disabled, closed, moved away, frozen (X.2.1, X.1.6, X.7.13)
  'RelayingDenied', // the next hop does not accept mail for that domain (relay refused)
  'InvalidSender', // the reverse-path is refused as an address (X.1.7, X.1.8, X.7.27)
  'MailboxFull', // over quota (X.2.2)
  'MessageTooLarge', // size limit (X.2.3, X.3.4)
  'ContentRejected', // judged spam or refused for its content (content filter, headers)
  'VirusRelated', // malware found
  'BlockedByReputation', // the sending IP or domain is on a blocklist or has a poor reputation
  'PolicyRelated', // refused by the receiver's policy (X.7.1 and kin), not about the address
  'AuthFailure', // SPF, DKIM, DMARC, ARC or SMTP AUTH failed or is required (X.7.8, X.7.20-26)
  'TlsFailure', // TLS required, refused or not verifiable (X.7.10, X.7.4, X.7.5)
  'Throttled', // rate or connection limits, "slow down" (X.4.5, X.7.28)
  'DnsFailure', // a DNS lookup failed for now (SERVFAIL, timeout; X.4.3)
  'RoutingErrors', // no route to the destination, mail loop (X.4.4, X.4.6)
  'NoAnswerFromHost', // connection refused or timed out (X.4.1)
  'BadConnection', // connection lost during the session (X.4.2)
  'ProtocolErrors', // SMTP command, syntax or media (MIME, 8-bit, SMTPUTF8) trouble (X.5.x, X.6.x)
  'SystemError', // the receiving system reports its own trouble (X.3.x: full, misconfigured, unavailable)
  'MessageExpired', // given up after the queue lifetime (X.4.7)
  'TransientFailure', // a temporary failure that names no cause (4.0.0, greylisting, "try again later")
  'Uncategorized', // nothing says why
] as const;

export type BounceClass = (typeof BOUNCE_CLASSES)[number];

export type BounceSeverity = 'hard' | 'soft';

/** The severity of each class for a permanent failure (a temporary one is always soft). */
export const CLASS_SEVERITY: Readonly<Record<BounceClass, BounceSeverity>> = {
  InvalidRecipient: 'hard',
  BadDomain: 'hard',
  InactiveMailbox: 'hard',
  RelayingDenied: 'hard',
  InvalidSender: 'soft',
  MailboxFull: 'soft',
  MessageTooLarge: 'soft',
  ContentRejected: 'soft',
  VirusRelated: 'soft',
  BlockedByReputation: 'soft',
  PolicyRelated: 'soft',
  AuthFailure: 'soft',
  TlsFailure: 'soft',
  Throttled: 'soft',
  DnsFailure: 'soft',
  RoutingErrors: 'soft',
  NoAnswerFromHost: 'soft',
  BadConnection: 'soft',
  ProtocolErrors: 'soft',
  SystemError: 'soft',
  MessageExpired: 'soft',
  TransientFailure: 'soft',
  Uncategorized: 'hard',
};

const CLASS_SET: ReadonlySet<string> = new Set(BOUNCE_CLASSES);

/** True when `s` is one of BOUNCE_CLASSES. */
export function isBounceClass(s: unknown): s is BounceClass {
  return typeof s === 'string' && CLASS_SET.has(s);
}

/** A class and its severity: what the classifier answers. */
export interface BounceVerdict {
  readonly class: BounceClass;
  readonly severity: BounceSeverity;
}

// One frozen object per class and outcome: the classifier allocates nothing per call.
const PERMANENT = {} as Record<BounceClass, BounceVerdict>;
const TEMPORARY = {} as Record<BounceClass, BounceVerdict>;
for (const c of BOUNCE_CLASSES) {
  PERMANENT[c] = Object.freeze({ class: c, severity: CLASS_SEVERITY[c] });
  TEMPORARY[c] = Object.freeze({ class: c, severity: 'soft' });
}

/**
 * The shared verdict for `cls`: its class severity for a permanent failure, soft for a temporary one.
 */
export function verdictFor(cls: BounceClass, temporary: boolean): BounceVerdict {
  return temporary ? TEMPORARY[cls] : PERMANENT[cls];
}
