/**
 * Envelope value types (RFC 5321 section 3.3, DSN parameters RFC 3461 section 4).
 *
 * A reverse-path is the MAIL FROM address ('' is the null reverse-path `<>`); a forward-path is a
 * RCPT TO address. Addresses are kept as the client gave them (local part case preserved); the
 * domain is compared case-insensitively.
 */

import { domainToASCII } from 'node:url';

/** The body type given by MAIL FROM BODY= (RFC 6152, RFC 3030). */
export type BodyType = '7BIT' | '8BITMIME' | 'BINARYMIME';

/** DSN RET= (RFC 3461 4.3): return the full message or only its headers in a failure DSN. */
export type DsnRet = 'FULL' | 'HDRS';

/** DSN NOTIFY= values (RFC 3461 4.1). `['NEVER']` stands alone. */
export type DsnNotify = 'NEVER' | 'SUCCESS' | 'FAILURE' | 'DELAY';

/** The kind of a delivery status notification (RFC 3464): a failure (bounce), delay warning or success notice. */
export type DsnKind = 'failure' | 'delay' | 'success';

/** ORCPT= (RFC 3461 4.2): address type and the original recipient, xtext already decoded. */
export interface OriginalRecipient {
  readonly addrType: string; // e.g. 'rfc822' or 'utf-8'
  readonly address: string;
}

/** One forward-path with its DSN parameters. */
export interface Recipient {
  readonly address: string;
  readonly notify?: readonly DsnNotify[];
  readonly orcpt?: OriginalRecipient;
}

/**
 * A recipient accepted and never to be delivered: on the suppression list with the drop mode
 * (src/suppression/). Cleanup writes a recipient.dropped event for it with the message.
 */
export interface DroppedRecipient {
  /** The address as given (RCPT TO). */
  readonly address: string;
  /** The list entry that matched: its address ('*@domain' for a whole domain), scope and reason. */
  readonly match: string;
  readonly scope: string;
  readonly reason: string;
}

/** The envelope of one mail transaction. */
export interface Envelope {
  /** The reverse-path; '' for the null reverse-path (bounces). */
  readonly mailFrom: string;
  readonly recipients: readonly Recipient[];
  readonly bodyType: BodyType;
  readonly smtputf8: boolean;
  /** DSN RET= (RFC 3461 4.3), when given. */
  readonly ret?: DsnRet;
  /** DSN ENVID= (RFC 3461 4.4), xtext already decoded, when given. */
  readonly envid?: string;
  /** SIZE= declared by the client (bytes), when given. */
  readonly declaredSize?: number;
  /** Recipients accepted and dropped (suppressed, drop mode): never queued; `recipients` may then be empty. */
  readonly dropped?: readonly DroppedRecipient[];
}

/**
 * The envelope facts a queued message keeps and each delivery of it sends (RFC 5321 MAIL FROM and
 * its parameters): spool QueuedMessage / NewMessage and delivery DeliveryRequest extend this one
 * shape instead of restating it.
 */
export interface EnvelopeFacts {
  /** The reverse-path; '' for the null reverse-path (bounces). */
  readonly mailFrom: string;
  readonly bodyType: BodyType;
  /** The sender asked for SMTPUTF8 (RFC 6531). */
  readonly smtputf8: boolean;
  /**
   * SMTPUTF8 mail only: true when the header section holds non-ASCII (UTF-8, RFC 6532) bytes, set
   * by cleanup when the message is received. Absent means unknown (older rows, other writers):
   * delivery then assumes UTF-8 for SMTPUTF8 mail. Always false or absent without `smtputf8`.
   */
  readonly utf8Headers?: boolean;
  /** DSN RET= (RFC 3461 4.3), when given. */
  readonly ret?: DsnRet;
  /** DSN ENVID= (RFC 3461 4.4), decoded, when given. */
  readonly envid?: string;
}

/** One recipient of a queued message as the envelope carries it, with its stable index (0-based) in the message. */
export interface IndexedRecipient {
  readonly idx: number;
  readonly address: string;
  readonly notify?: readonly DsnNotify[];
  readonly orcpt?: OriginalRecipient;
}

/** Splits "local@domain" at the last '@'. A domain-less address (e.g. "postmaster") has domain ''. */
export function splitAddress(address: string): { local: string; domain: string } {
  const at = address.lastIndexOf('@');
  if (at < 0) return { local: address, domain: '' };
  return { local: address.slice(0, at), domain: address.slice(at + 1) };
}

/** The lower-cased domain of an address ('' when it has none). */
export function domainOf(address: string): string {
  return splitAddress(address).domain.toLowerCase();
}

/**
 * The lower-case A-label form of a domain, without a trailing dot (RFC 5890 / UTS #46 through
 * node:url's domainToASCII): "Bücher.Example." -> "xn--bcher-kva.example". '' when the name is
 * empty or not a valid IDN. The one A-label conversion of routing, DNS and delivery.
 */
export function toALabel(domain: string): string {
  const d = domain.trim().replace(/\.$/, '');
  if (d === '') return '';
  return domainToASCII(d).toLowerCase();
}

/**
 * A domain as a lookup key: its lower-case A-label (RFC 5890), or, when it is not a valid IDN,
 * the name as written (trimmed, lower case, no trailing dot). For route and table matching.
 */
export function domainKey(domain: string): string {
  return toALabel(domain) || domain.trim().replace(/\.$/, '').toLowerCase();
}

