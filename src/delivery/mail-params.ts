/**
 * Outbound command text: EHLO extension parsing and MAIL FROM / RCPT TO with their parameters.
 *
 * RFCs: RFC 5321 4.1.1.1/4.1.1.2/4.1.1.3 (EHLO, MAIL, RCPT), RFC 1870 (SIZE), RFC 6152 (8BITMIME),
 * RFC 6531 (SMTPUTF8), RFC 3461 4 (DSN: RET, ENVID, NOTIFY, ORCPT and xtext), RFC 6533 3 (a UTF-8
 * ORCPT as utf-8-addr-xtext). Owns: the exact bytes of these commands and whether a delivery needs
 * SMTPUTF8; it sends nothing.
 */
import type { SmtpReply } from '../core/reply.js';
import type { BodyType, DsnRet } from '../core/envelope.js';
import { encodeUtf8AddrXtext, encodeXtext } from '../rfc5321/xtext.js';
import type { DeliveryRecipient } from './types.js';

/** EHLO keywords (upper case) → parameter text ('' when none), RFC 5321 4.1.1.1. */
export type Extensions = ReadonlyMap<string, string>;

/** Parses an EHLO reply: lines after the first are "KEYWORD [params]". */
export function parseEhlo(r: SmtpReply): Map<string, string> {
  const ext = new Map<string, string>();
  for (const line of r.lines.slice(1)) {
    const m = /^([A-Za-z0-9][A-Za-z0-9-]*)(?:[ =](.*))?$/.exec(line.trim());
    if (m) ext.set(m[1]!.toUpperCase(), (m[2] ?? '').trim());
  }
  return ext;
}

/** The server's SIZE limit in bytes (RFC 1870); undefined when absent or 0 (no fixed limit). */
export function sizeLimit(ext: Extensions): number | undefined {
  const v = ext.get('SIZE');
  if (v === undefined) return undefined;
  const n = Number.parseInt(v, 10);
  return Number.isFinite(n) && n > 0 ? n : undefined;
}

/** SASL mechanisms offered (RFC 4954 3), upper case. Also accepts the old "AUTH=" form. */
export function authMechanisms(ext: Extensions): string[] {
  const v = ext.get('AUTH');
  return v ? v.split(/\s+/).filter(Boolean).map((m) => m.toUpperCase()) : [];
}

export interface MailFromInput {
  readonly mailFrom: string;
  readonly bodyType: BodyType;
  readonly smtputf8: boolean;
  /** Body size in bytes, sent as SIZE= when offered. */
  readonly size: number;
  readonly ret?: DsnRet;
  readonly envid?: string;
}

/**
 * "MAIL FROM:<addr> [SIZE=n] [BODY=8BITMIME] [SMTPUTF8] [RET=..] [ENVID=..]\r\n". BODY=8BITMIME only
 * when the body is not 7BIT and the server offers 8BITMIME (otherwise the body is downgraded);
 * DSN parameters only when the server offers DSN.
 */
export function mailFromCommand(m: MailFromInput, ext: Extensions): string {
  const p: string[] = [];
  if (ext.has('SIZE')) p.push(`SIZE=${m.size}`);
  if (m.bodyType !== '7BIT' && ext.has('8BITMIME')) p.push('BODY=8BITMIME');
  if (m.smtputf8 && ext.has('SMTPUTF8')) p.push('SMTPUTF8');
  if (ext.has('DSN')) {
    if (m.ret) p.push(`RET=${m.ret}`);
    if (m.envid) p.push(`ENVID=${encodeXtext(m.envid)}`);
  }
  return `MAIL FROM:<${m.mailFrom}>${p.length ? ' ' + p.join(' ') : ''}\r\n`;
}

/**
 * "RCPT TO:<addr> [NOTIFY=..] [ORCPT=type;value]\r\n"; DSN parameters only when offered (RFC 3461
 * 4.1, 4.2). An ORCPT whose address is all ASCII goes as "rfc822;" xtext; one with non-ASCII
 * characters (of type utf-8, or a UTF-8 rfc822 address) as "utf-8;" utf-8-addr-xtext (RFC 6533 3),
 * which is 7-bit and valid xtext, so it is sent whether or not the server offers SMTPUTF8 (as
 * Postfix does). Other address types go unchanged in xtext.
 */
export function rcptToCommand(r: DeliveryRecipient, ext: Extensions): string {
  const p: string[] = [];
  if (ext.has('DSN')) {
    if (r.notify && r.notify.length > 0) p.push(`NOTIFY=${r.notify.join(',')}`);
    if (r.orcpt) p.push(`ORCPT=${orcptValue(r.orcpt.addrType, r.orcpt.address)}`);
  }
  return `RCPT TO:<${r.address}>${p.length ? ' ' + p.join(' ') : ''}\r\n`;
}

function orcptValue(addrType: string, address: string): string {
  const type = addrType.toLowerCase();
  if (type !== 'utf-8' && type !== 'rfc822') return `${addrType};${encodeXtext(address)}`;
  return isAsciiText(address) ? `rfc822;${encodeXtext(address)}` : `utf-8;${encodeUtf8AddrXtext(address)}`;
}

const isAsciiText = (s: string): boolean => !/[^\x00-\x7f]/.test(s);

/** What decides whether a delivery needs SMTPUTF8. */
export interface Smtputf8Facts {
  /** The sender asked for SMTPUTF8 (MAIL FROM ... SMTPUTF8). */
  readonly smtputf8: boolean;
  readonly mailFrom: string;
  /** The header section holds UTF-8; undefined (unknown) counts as true. */
  readonly utf8Headers?: boolean;
  /** The recipients of THIS delivery (one next-hop group), not the whole message. */
  readonly recipients: readonly Pick<DeliveryRecipient, 'address'>[];
}

/**
 * True when this delivery needs a server that offers SMTPUTF8 (RFC 6531 3.4): the sender asked
 * for it AND the sender address, a header or a recipient of this delivery holds non-ASCII
 * characters (Postfix's rule, smtp.h DELIVERY_REQUIRES_SMTPUTF8, with the recipient flag per
 * delivery request). Otherwise the message may go to a server without SMTPUTF8, without the
 * parameter; an ORCPT needs no SMTPUTF8 (see rcptToCommand).
 */
export function smtputf8Required(f: Smtputf8Facts): boolean {
  if (!f.smtputf8) return false;
  if (f.utf8Headers !== false) return true;
  return !isAsciiText(f.mailFrom) || f.recipients.some((r) => !isAsciiText(r.address));
}
