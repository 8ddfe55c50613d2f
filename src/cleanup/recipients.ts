/**
 * The duplicate recipient filter of cleanup: a forward-path given twice in one mail transaction is
 * queued (and so delivered) once.
 *
 * Two recipients are duplicates when the address, the NOTIFY set and the ORCPT (RFC 3461 4.1,
 * 4.2) are all equal once lower-cased, the way Postfix's cleanup compares them (its duplicate
 * filter keys on ORCPT, NOTIFY and the address together and folds the whole key to lower case,
 * local part included). A quoted local part is compared unquoted (`"bob"@x` is `bob@x`, RFC 5321
 * 4.1.2), as Postfix compares its internal (unquoted) form. The first of a group is kept, with
 * its own spelling and parameters.
 * Recipients that differ in NOTIFY or ORCPT are all kept: each may owe its sender a different DSN.
 */
import type { Recipient } from '../core/envelope.js';
import { mailboxOf } from '../rfc5321/address.js';

/** The comparison key of one recipient: mailbox (unquoted), NOTIFY (as a set) and ORCPT, lower-cased. */
export function recipientKey(r: Recipient): string {
  const notify = r.notify ? [...r.notify].sort().join(',') : '-';
  const orcpt = r.orcpt ? `${r.orcpt.addrType};${r.orcpt.address}` : '-';
  return `${mailboxOf(r.address)}\n${notify}\n${orcpt}`.toLowerCase();
}

/**
 * Removes duplicate recipients (see above), keeping the first of each and the order.
 * @returns the same array when nothing was removed, else a new one.
 */
export function uniqueRecipients(recipients: readonly Recipient[]): readonly Recipient[] {
  if (recipients.length < 2) return recipients;
  const seen = new Set<string>();
  const out: Recipient[] = [];
  for (const r of recipients) {
    const key = recipientKey(r);
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(r);
  }
  return out.length === recipients.length ? recipients : out;
}

/**
 * The recipient a Received field may name in its `for` clause (RFC 5321 4.4): the address when
 * every recipient of the message is that one mailbox (compared unquoted, in lower case), else undefined,
 * so that a message to several people never tells one of them who else got it.
 */
export function soleRecipient(recipients: readonly Recipient[]): string | undefined {
  const first = recipients[0]?.address;
  if (first === undefined) return undefined;
  const folded = mailboxOf(first).toLowerCase();
  return recipients.every((r) => mailboxOf(r.address).toLowerCase() === folded) ? first : undefined;
}
