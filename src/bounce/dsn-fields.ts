/**
 * The machine-readable part of a DSN: message/delivery-status (RFC 3464 2.2, 2.3) and its UTF-8
 * form message/global-delivery-status (RFC 6533 3, 6).
 *
 * Owns: field order and spelling, address types (rfc822 / utf-8), value sanitizing (no CR/LF, 7-bit
 * unless the report is global) and line length (folded at 78, hard limit 998, RFC 5322 2.1.1).
 */
import type { DsnInput, DsnRecipientReport } from './types.js';
import { formatDate, foldHeaderLine } from '../rfc5322/format.js';

/** Longest diagnostic text kept, characters; keeps every line far below 998 after folding. */
export const MAX_DIAGNOSTIC = 900;

const DEFAULT_STATUS: Record<string, string> = {
  failed: '5.0.0', delayed: '4.0.0', delivered: '2.0.0', relayed: '2.0.0', expanded: '2.0.0',
};

/** Makes a value safe for one field line: controls become spaces; non-ASCII becomes '?' unless `utf8`. */
export function cleanText(s: string, utf8: boolean): string {
  const noCtl = s.replace(/[\x00-\x1f\x7f]+/g, ' ').trim();
  return utf8 ? noCtl : noCtl.replace(/[^\x20-\x7e]/g, '?');
}

/**
 * utf-8-addr-xtext (RFC 6533 3): QCHARs stay, everything else (non-ASCII, '+', '=', '\\', controls,
 * space) becomes "\x{HEX}". Used for non-ASCII addresses in a 7-bit message/delivery-status.
 */
export function utf8AddrXtext(addr: string): string {
  let out = '';
  for (const ch of addr) {
    const cp = ch.codePointAt(0)!;
    const qchar = cp >= 0x21 && cp <= 0x7e && ch !== '+' && ch !== '=' && ch !== '\\';
    out += qchar ? ch : `\\x{${cp.toString(16).toUpperCase()}}`;
  }
  return out;
}

const isAscii = (s: string): boolean => /^[\x00-\x7f]*$/.test(s);

/**
 * An "address-type; address" value (RFC 3464 2.3.2; RFC 6533 3 utf-8 type): rfc822 for ASCII,
 * utf-8 otherwise (raw UTF-8 in a global report, xtext-escaped in a 7-bit one).
 */
export function typedAddress(addrType: string, address: string, global: boolean): string {
  const addr = address.replace(/[\x00-\x1f\x7f]/g, '');
  if (isAscii(addr)) return `${cleanText(addrType, false) || 'rfc822'}; ${addr}`;
  return `utf-8; ${global ? addr : utf8AddrXtext(addr)}`;
}

/** A well-formed enhanced status code for the report (RFC 3464 2.3.4), defaulting by action. */
export function statusFor(r: DsnRecipientReport): string {
  return /^[245]\.\d{1,3}\.\d{1,3}$/.test(r.status) ? r.status : DEFAULT_STATUS[r.action] ?? '5.0.0';
}

function field(name: string, value: string): string {
  return foldHeaderLine(`${name}: ${value}`) + '\r\n';
}

function clip(s: string): string {
  return s.length > MAX_DIAGNOSTIC ? s.slice(0, MAX_DIAGNOSTIC - 3) + '...' : s;
}

/** The per-message fields (RFC 3464 2.2), CRLF-terminated, without the trailing empty line. */
export function perMessageFields(input: DsnInput, global: boolean): string {
  let out = field('Reporting-MTA', `dns; ${cleanText(input.reportingMta, false)}`);
  out += field('X-Postline-Queue-ID', cleanText(input.queueId, false));
  if (input.envid !== undefined) out += field('Original-Envelope-Id', cleanText(input.envid, false));
  if (input.receivedFromMta) out += field('Received-From-MTA', cleanText(input.receivedFromMta, global));
  out += field('Arrival-Date', formatDate(input.arrivedAt));
  return out;
}

/** One per-recipient block (RFC 3464 2.3), CRLF-terminated, without the trailing empty line. */
export function perRecipientFields(r: DsnRecipientReport, global: boolean): string {
  let out = '';
  if (r.originalRecipient) out += field('Original-Recipient', typedAddress(r.originalRecipient.addrType, r.originalRecipient.address, global));
  out += field('Final-Recipient', typedAddress('rfc822', r.finalRecipient, global));
  out += field('Action', r.action);
  out += field('Status', statusFor(r));
  if (r.remoteMta) out += field('Remote-MTA', `dns; ${cleanText(r.remoteMta, global)}`);
  if (r.diagnostic) {
    const type = r.remote ? 'smtp' : 'x-postline';
    out += field('Diagnostic-Code', `${type}; ${clip(cleanText(r.diagnostic, global))}`);
  }
  if (r.lastAttemptAt !== undefined) out += field('Last-Attempt-Date', formatDate(r.lastAttemptAt));
  if (r.action === 'delayed' && r.willRetryUntil !== undefined) out += field('Will-Retry-Until', formatDate(r.willRetryUntil));
  return out;
}

/** The whole delivery-status body: per-message block, then one block per recipient (RFC 3464 2.1). */
export function deliveryStatusBody(input: DsnInput, global: boolean): string {
  const blocks = [perMessageFields(input, global), ...input.recipients.map((r) => perRecipientFields(r, global))];
  return blocks.join('\r\n');
}
