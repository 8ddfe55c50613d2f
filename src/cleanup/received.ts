/**
 * The Received trace field cleanup prepends (RFC 5321 4.4, RFC 5322 3.6.7) and its with-protocol
 * type (RFC 3848 ESMTPA/ESMTPS/ESMTPSA, RFC 6531 3.7.3 UTF8SMTP*).
 *
 * Owns the exact shape:
 *   Received: from HELO ([client address literal])
 *   \tby HOSTNAME (Postline) with PROTOCOL id QUEUEID
 *   \tfor <rcpt>; DATE                      (for-clause only with exactly one recipient)
 * No reverse DNS is done, so the TCP-info is just the address literal (RFC 5321 4.1.3).
 */
import { isIPv4, isIPv6 } from 'node:net';
import { formatDate } from '../rfc5322/format.js';

/** Session facts the with-protocol type depends on. */
export interface ProtocolFacts {
  /** EHLO (true) or HELO (false). */
  readonly esmtp: boolean;
  readonly tls: boolean;
  readonly authenticated: boolean;
  /** The transaction used SMTPUTF8 (RFC 6531). */
  readonly smtputf8: boolean;
}

/**
 * The with-protocol type for a Received field: SMTP after HELO; otherwise ESMTP or UTF8SMTP with
 * "S" for TLS and "A" for AUTH appended, in that order (RFC 3848 section 2, RFC 6531 3.7.3).
 */
export function receivedProtocol(f: ProtocolFacts): string {
  if (!f.esmtp) return 'SMTP';
  return (f.smtputf8 ? 'UTF8SMTP' : 'ESMTP') + (f.tls ? 'S' : '') + (f.authenticated ? 'A' : '');
}

/**
 * An IP address as an SMTP address literal (RFC 5321 4.1.3): "[192.0.2.1]", "[IPv6:2001:db8::1]".
 * IPv4-mapped IPv6 addresses are shown as IPv4. Anything else is bracketed as is, made safe.
 */
export function addressLiteral(addr: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(addr);
  if (mapped && isIPv4(mapped[1])) return `[${mapped[1]}]`;
  if (isIPv4(addr)) return `[${addr}]`;
  if (isIPv6(addr)) return `[IPv6:${addr}]`;
  return `[${safeToken(addr)}]`;
}

/** Replaces characters that would break the Received syntax (space, parens, ';', controls). */
function safeToken(s: string): string {
  return s.replace(/[^\x21-\x7e\u0080-\uffff]|[()<>;\\"]/g, '?');
}

/** Inputs of buildReceived. */
export interface ReceivedInput {
  /** HELO/EHLO argument; when absent the address literal is used. */
  readonly heloName?: string;
  /** When absent (locally generated mail) the from-clause is left out. */
  readonly clientAddress?: string;
  readonly hostname: string;
  /** Omitted for locally generated mail (then there is no with-clause). */
  readonly protocol?: string;
  readonly queueId: string;
  /** The for-clause recipient; give it only when the envelope has exactly one recipient. */
  readonly forRecipient?: string;
  /** ms since epoch. */
  readonly date: number;
}

/**
 * Builds the Received field, folded at its clauses, ending with CRLF (RFC 5321 4.4). The string
 * may hold UTF-8 (SMTPUTF8 HELO or recipient); encode it as UTF-8.
 */
export function buildReceived(r: ReceivedInput): string {
  const lines: string[] = [];
  if (r.clientAddress !== undefined) {
    const literal = addressLiteral(r.clientAddress);
    const helo = r.heloName ? safeToken(r.heloName) : literal;
    lines.push(`Received: from ${helo} (${literal})`);
  }
  const by = `by ${r.hostname} (Postline)${r.protocol ? ` with ${r.protocol}` : ''} id ${r.queueId}`;
  if (lines.length) lines.push(`\t${by}`);
  else lines.push(`Received: ${by}`);
  const date = formatDate(r.date);
  if (r.forRecipient !== undefined) lines.push(`\tfor <${r.forRecipient}>; ${date}`);
  else lines[lines.length - 1] += `; ${date}`;
  return lines.join('\r\n') + '\r\n';
}
