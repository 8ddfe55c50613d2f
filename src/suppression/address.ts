/**
 * The keys of the suppression list: one spelling per address and per scope, so a lookup is an exact
 * match. Addresses are compared in lower case (local part too: mailbox providers treat local parts
 * case-insensitively, and a list that did not would miss "Bob@" after "bob@" bounced) with the
 * domain as an A-label (RFC 5890; core/envelope.ts toALabel); a whole domain is '*@domain'.
 */
import { splitAddress, toALabel } from '../core/envelope.js';
import { PostlineError } from '../core/errors.js';
import { R } from '../core/reply.js';
import { ALL_SENDERS, SUPPRESSION_REASONS, type SuppressionReason } from './types.js';

/** A bad address, scope or reason given to the list (CLI, API, import). Permanent. */
export class SuppressionInputError extends PostlineError {
  constructor(message: string, readonly field: string) {
    super('ERR_SUPPRESSION_INPUT', message, { temporary: false, reply: R.addressSyntax(message) });
    this.name = 'SuppressionInputError';
  }
}

/** Controls, spaces and the characters that never belong in an address key. */
const BAD_CHARS = /[\x00-\x20\x7f<>()[\]\\,;:"]/;

/** A domain's key: lower-case A-label without a trailing dot; '' when it is not a usable domain name. */
export function domainKey(domain: string): string {
  const d = toALabel(domain);
  if (!d || d.length > 253 || !/^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*$/.test(d)) return '';
  return d;
}

/**
 * The key of an address: "Bob@Bücher.Example" -> "bob@xn--bcher-kva.example"; "*@example.com" or
 * "@example.com" -> "*@example.com" (a whole domain). Angle brackets around it are dropped.
 * @throws SuppressionInputError when it is not local@domain, or the domain is not a domain name.
 */
export function addressKey(input: string): string {
  const a = input.trim().replace(/^<(.*)>$/, '$1');
  const { local, domain } = splitAddress(a);
  if (!a.includes('@') || domain === '') throw new SuppressionInputError(`not an address: ${JSON.stringify(input.slice(0, 100))} (expected local@domain or *@domain)`, 'address');
  const d = domainKey(domain);
  if (!d) throw new SuppressionInputError(`not a domain name: ${JSON.stringify(domain.slice(0, 100))}`, 'address');
  if (local === '' || local === '*') return `*@${d}`;
  const quoted = /^"(?:[^"\\\r\n]|\\.)*"$/.test(local); // RFC 5321 4.1.2 Quoted-string, kept as given
  if (local.length > 64 * 4 || (!quoted && (BAD_CHARS.test(local) || local.includes('*')))) {
    throw new SuppressionInputError(`not a usable local part: ${JSON.stringify(local.slice(0, 100))}`, 'address');
  }
  return `${local.toLowerCase()}@${d}`;
}

/**
 * The key of a recipient address as it came in (RCPT TO, API, events), or undefined when it has
 * no usable key (no domain, an address literal): such an address is never on the list. Never throws.
 */
export function recipientKey(address: string): string | undefined {
  const at = address.lastIndexOf('@');
  if (at <= 0 || at === address.length - 1) return undefined;
  const domain = address.slice(at + 1);
  // The common case (ASCII, no upper case) without the IDN conversion.
  const d = /^[a-z0-9.-]+$/.test(domain) && !domain.endsWith('.') ? domain : domainKey(domain);
  if (!d) return undefined;
  return `${address.slice(0, at).toLowerCase()}@${d}`;
}

/** '*@domain' of a key. */
export function wildcardOf(key: string): string {
  return `*@${key.slice(key.lastIndexOf('@') + 1)}`;
}

/** The domain part of a key. */
export function domainOfKey(key: string): string {
  return key.slice(key.lastIndexOf('@') + 1);
}

/**
 * The key of a scope: '*' (or absent/empty) for every sender, else a sending domain; an address
 * given as a scope stands for its domain. @throws SuppressionInputError for anything else.
 */
export function scopeKey(input: string | undefined): string {
  const s = (input ?? '').trim();
  if (s === '' || s === ALL_SENDERS) return ALL_SENDERS;
  const d = domainKey(s.includes('@') ? s.slice(s.lastIndexOf('@') + 1) : s);
  if (!d) throw new SuppressionInputError(`not a sending domain: ${JSON.stringify(s.slice(0, 100))} (expected a domain or *)`, 'scope');
  return d;
}

/** The scope of mail from `mailFrom`: its domain's key; undefined for the null sender or no usable domain. */
export function senderScope(mailFrom: string | undefined): string | undefined {
  if (!mailFrom) return undefined;
  const key = recipientKey(mailFrom);
  return key === undefined ? undefined : domainOfKey(key);
}

/** Checks a reason. @throws SuppressionInputError naming the known ones. */
export function reasonOf(input: string | undefined, fallback: SuppressionReason = 'manual'): SuppressionReason {
  if (input === undefined || input === '') return fallback;
  if ((SUPPRESSION_REASONS as readonly string[]).includes(input)) return input as SuppressionReason;
  throw new SuppressionInputError(`unknown reason ${JSON.stringify(input.slice(0, 50))} (known: ${SUPPRESSION_REASONS.join(', ')})`, 'reason');
}
