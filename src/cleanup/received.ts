/**
 * The Received trace field cleanup prepends (RFC 5321 4.4, RFC 5322 3.6.7) and its with-protocol
 * type (RFC 3848 ESMTPA/ESMTPS/ESMTPSA, RFC 6531 3.7.3 UTF8SMTP*).
 *
 * Owns the exact shape:
 *   Received: from HELO ([client address literal])  (or "(NAME [literal])" with a known host name)
 *   \t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))    (under TLS, when enabled)
 *   \tby HOSTNAME (Postline) with PROTOCOL id QUEUEID
 *   \tfor <rcpt>                            (for-clause only with exactly one recipient)
 *   \ttls TLS_AES_256_GCM_SHA384; DATE      (under TLS, when enabled)
 * No reverse DNS is done, so the TCP-info is just the address literal (RFC 5321 4.1.3).
 *
 * TLS details (RFC 8314 4.3, 7.4): a comment before "by" in the form of Postfix's
 * smtpd_tls_received_header (the CFWS before By-domain, RFC 5321 4.4), for people, and the
 * registered "tls" clause with the IANA cipher suite name (an Additional-Registered-Clause after
 * the for-clause), for programs. The with-protocol already says ESMTPS/ESMTPSA (RFC 3848).
 */
import { isIPv4, isIPv6 } from 'node:net';
import type { TlsFacts } from '../core/session.js';
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

/** Comment text (RFC 5322 3.2.2 ctext and spaces): anything else, parentheses and backslash too, becomes '?'. */
function safeComment(s: string): string {
  return s.replace(/[^\x20-\x7e\u0080-\uffff]|[()\\]/g, '?').slice(0, 200);
}

/** Inputs of buildReceived. */
export interface ReceivedInput {
  /** HELO/EHLO argument; when absent the address literal is used. */
  readonly heloName?: string;
  /** When absent (locally generated mail) the from-clause is left out. */
  readonly clientAddress?: string;
  /** The client's host name when known (XCLIENT NAME): TCP-info "(NAME [address])" (RFC 5321 4.4). */
  readonly clientName?: string;
  readonly hostname: string;
  /** Omitted for locally generated mail (then there is no with-clause). */
  readonly protocol?: string;
  readonly queueId: string;
  /** The for-clause recipient; give it only when the envelope has exactly one recipient. */
  readonly forRecipient?: string;
  /** ms since epoch. */
  readonly date: number;
  /** The TLS session the message came over; given: the TLS comment and "tls" clause are added. */
  readonly tls?: TlsFacts;
  /** Came in by the HTTP API with this key name: "from api (key NAME)" ... "with HTTP". */
  readonly viaApi?: string;
  /** Came in by the sendmail command (no from-clause): "by HOSTNAME (Postline, COMMENT) id ..."; COMMENT "from userid 1000". */
  readonly viaLocal?: string;
}

/** Secret key bits of a cipher suite, from its name (AES-128/256, ChaCha20, 3DES); undefined when unknown. */
export function cipherBits(cipher: string): number | undefined {
  const c = cipher.toUpperCase();
  if (/AES_?256|CHACHA20|CAMELLIA_?256|ARIA_?256/.test(c)) return 256;
  if (/AES_?128|CAMELLIA_?128|ARIA_?128/.test(c)) return 128;
  if (/3DES|DES_?CBC3|DES-CBC3/.test(c)) return 112;
  return undefined;
}

/** "(using TLSv1.3 with cipher NAME (256/256 bits))", characters that would break the field replaced. */
export function tlsComment(tls: TlsFacts): string {
  const bits = cipherBits(tls.cipher);
  const strength = bits === undefined ? '' : ` (${bits}/${bits} bits)`;
  return `(using ${safeToken(tls.protocol)} with cipher ${safeToken(tls.cipher)}${strength})`;
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
    const tcpInfo = r.clientName ? `${safeToken(r.clientName)} ${literal}` : literal;
    lines.push(`Received: from ${helo} (${tcpInfo})`);
    if (r.tls) lines.push(`\t${tlsComment(r.tls)}`);
  } else if (r.viaApi !== undefined) {
    lines.push(`Received: from api (key ${safeToken(r.viaApi)})`);
  }
  const protocol = r.protocol ?? (r.viaApi !== undefined ? 'HTTP' : undefined);
  const comment = r.viaLocal !== undefined ? `Postline, ${safeComment(r.viaLocal)}` : 'Postline';
  const by = `by ${r.hostname} (${comment})${protocol ? ` with ${protocol}` : ''} id ${r.queueId}`;
  if (lines.length) lines.push(`\t${by}`);
  else lines.push(`Received: ${by}`);
  const date = formatDate(r.date);
  if (r.forRecipient !== undefined) lines.push(`\tfor <${r.forRecipient}>`);
  const suite = r.tls ? safeToken(r.tls.standardName || r.tls.cipher) : '';
  if (suite) lines.push(`\ttls ${suite}`);
  lines[lines.length - 1] += `; ${date}`;
  return lines.join('\r\n') + '\r\n';
}
