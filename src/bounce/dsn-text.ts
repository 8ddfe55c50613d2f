/**
 * The human-readable first part of a DSN (RFC 3464 2.1 / RFC 6522: "a human-readable explanation").
 *
 * Owns: the wording of Postline's delivery reports and the Subject line per kind. Lines are wrapped
 * at 76 characters (words longer than that are split), so no line nears the 998 limit.
 */
import type { DsnKind } from '../core/envelope.js';
import type { DsnAction, DsnInput, DsnRecipientReport } from './types.js';
import { formatDate } from '../rfc5322/format.js';
import { cleanText, statusFor } from './dsn-fields.js';


/** failure when any recipient failed, else delay when any is delayed, else success. */
export function dsnKind(recipients: readonly { action: DsnAction }[]): DsnKind {
  if (recipients.some((r) => r.action === 'failed')) return 'failure';
  if (recipients.some((r) => r.action === 'delayed')) return 'delay';
  return 'success';
}

/** The Subject of a DSN of this kind. */
export function dsnSubject(kind: DsnKind): string {
  if (kind === 'failure') return 'Undelivered Mail Returned to Sender';
  if (kind === 'delay') return 'Delayed Mail (still being retried)';
  return 'Successful Mail Delivery Report';
}

const INTRO: Record<DsnAction, string> = {
  failed: 'Your message could not be delivered to the following recipients. This is a permanent '
    + 'error; the message will not be retried.',
  delayed: 'Your message has not yet been delivered to the following recipients. Delivery will be '
    + 'tried again; you do not need to send the message again.',
  delivered: 'Your message was delivered to the following recipients.',
  relayed: 'Your message was passed on to the following recipients\' mail systems, which do not '
    + 'send delivery reports; no further notice will follow.',
  expanded: 'Your message was delivered to the following addresses, which forward it to further '
    + 'recipients.',
};

const ORDER: readonly DsnAction[] = ['failed', 'delayed', 'delivered', 'relayed', 'expanded'];

/** Wraps text at whitespace to `width` columns; longer words are split. Returns CRLF lines. */
export function wrap(text: string, width = 76, indent = ''): string[] {
  const out: string[] = [];
  let line = '';
  for (let word of text.split(/\s+/).filter(Boolean)) {
    while (indent.length + word.length > width) {
      if (line) { out.push(indent + line); line = ''; }
      out.push(indent + word.slice(0, width - indent.length));
      word = word.slice(width - indent.length);
    }
    if (!word) continue;
    if (line && indent.length + line.length + 1 + word.length > width) {
      out.push(indent + line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) out.push(indent + line);
  return out;
}

function recipientLines(r: DsnRecipientReport, utf8: boolean): string[] {
  const lines = wrap(`<${cleanText(r.finalRecipient, utf8)}>: ${r.action} (status ${statusFor(r)})`, 76, '  ');
  if (r.diagnostic) {
    const who = r.remote && r.remoteMta ? `${cleanText(r.remoteMta, utf8)} said:` : 'Reason:';
    lines.push(...wrap(`${who} ${cleanText(r.diagnostic, utf8)}`, 76, '      '));
  }
  if (r.action === 'delayed' && r.willRetryUntil !== undefined) {
    lines.push(`      Will be retried until ${formatDate(r.willRetryUntil)}.`);
  }
  return lines;
}

/**
 * The notification text (CRLF lines, ends with CRLF).
 * @param utf8 allow UTF-8 (global report); otherwise everything is 7-bit ASCII.
 */
export function humanText(input: DsnInput, utf8: boolean): string {
  const host = cleanText(input.reportingMta, false);
  const lines: string[] = [`This is the mail system at ${host}.`, ''];
  for (const action of ORDER) {
    const group = input.recipients.filter((r) => r.action === action);
    if (!group.length) continue;
    lines.push(...wrap(INTRO[action]), '');
    for (const r of group) lines.push(...recipientLines(r, utf8));
    lines.push('');
  }
  const what = input.ret === 'HDRS' ? 'The header of your message is attached.' : 'Your message is attached.';
  lines.push(...wrap(`${what} If you need help, forward this report to your postmaster. Queue ID: ${cleanText(input.queueId, false)}.`));
  return lines.join('\r\n') + '\r\n';
}
