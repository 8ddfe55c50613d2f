/**
 * SMTP replies as values (RFC 5321 section 4.2, enhanced status codes RFC 3463 / RFC 2034).
 *
 * Every answer Postline gives a client is an `SmtpReply` built from the `R` table below, never a
 * string literal at the call site. The reply text never leaks configuration.
 */

/** One SMTP reply: a 3-digit code, an optional enhanced status code ("x.y.z") and text lines. */
export interface SmtpReply {
  readonly code: number;
  readonly enhanced?: string;
  readonly lines: readonly string[];
}

/**
 * Builds a reply value.
 * @param code 3-digit reply code (200..599).
 * @param enhanced enhanced status code "class.subject.detail" or undefined (for 220/221 greetings and 354/334).
 * @param text one line or several lines of text.
 */
export function reply(code: number, enhanced: string | undefined, text: string | readonly string[]): SmtpReply {
  const lines = typeof text === 'string' ? [text] : [...text];
  return { code, enhanced, lines: lines.length ? lines : [''] };
}

/** Returns a copy of `r` with other text (keeps code and enhanced code). */
export function withText(r: SmtpReply, text: string | readonly string[]): SmtpReply {
  return reply(r.code, r.enhanced, text);
}

/**
 * Serializes a reply for the wire (RFC 5321 4.2.1): "250-..." continuation lines, "250 ..." last line,
 * each ending in CRLF. The enhanced code is put on every line when `enhancedCodes` is true
 * (RFC 2034 section 3) and the reply carries one.
 */
export function formatReply(r: SmtpReply, enhancedCodes = true): string {
  const out: string[] = [];
  const prefix = enhancedCodes && r.enhanced ? `${r.enhanced} ` : '';
  r.lines.forEach((line, i) => {
    const sep = i === r.lines.length - 1 ? ' ' : '-';
    out.push(`${r.code}${sep}${prefix}${line}\r\n`);
  });
  return out.join('');
}

const wireCache = new WeakMap<SmtpReply, Buffer>();

/**
 * `formatReply(r)` as bytes (UTF-8), cached per reply object: the constant replies of the table `R`
 * are encoded once, not at every use. Reply objects are immutable, so the cache never goes stale.
 */
export function replyBytes(r: SmtpReply): Buffer {
  let b = wireCache.get(r);
  if (!b) {
    b = Buffer.from(formatReply(r), 'utf8');
    wireCache.set(r, b);
  }
  return b;
}

/** True for a 2xx reply. */
export const isPositive = (r: { code: number }): boolean => r.code >= 200 && r.code < 300;
/** True for a 4xx reply (transient negative completion). */
export const isTransient = (r: { code: number }): boolean => r.code >= 400 && r.code < 500;
/** True for a 5xx reply (permanent negative completion). */
export const isPermanent = (r: { code: number }): boolean => r.code >= 500 && r.code < 600;

/** Renders a reply on one line for logs and DSN Diagnostic-Code: "550 5.1.1 text text". */
export function replyToString(r: SmtpReply): string {
  return `${r.code}${r.enhanced ? ' ' + r.enhanced : ''} ${r.lines.join(' ')}`.trim();
}

/**
 * The one table of server replies. Functions take the parts that vary (never configuration).
 * Codes per RFC 5321 4.2.2/4.2.3, enhanced codes per RFC 3463 and the IANA registry.
 */
export const R = {
  greeting: (host: string) => reply(220, undefined, `${host} ESMTP Postline`),
  bye: (host: string) => reply(221, '2.0.0', `${host} closing connection`),
  ok: reply(250, '2.0.0', 'OK'),
  senderOk: reply(250, '2.1.0', 'Sender OK'),
  recipientOk: reply(250, '2.1.5', 'Recipient OK'),
  queued: (queueId: string) => reply(250, '2.0.0', `OK queued as ${queueId}`),
  resetOk: reply(250, '2.0.0', 'Reset OK'),
  noopOk: reply(250, '2.0.0', 'OK'),
  vrfy: reply(252, '2.0.0', 'Cannot VRFY user, but will accept message and attempt delivery'),
  help: reply(214, '2.0.0', ['Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS AUTH', 'See RFC 5321']),
  startData: reply(354, undefined, 'End data with <CR><LF>.<CR><LF>'),
  readyTls: reply(220, '2.0.0', 'Ready to start TLS'),
  authOk: reply(235, '2.7.0', 'Authentication successful'),
  authChallenge: (b64: string) => reply(334, undefined, b64),
  bdatOk: (octets: number) => reply(250, '2.0.0', `${octets} octets received`),
  /** HELO answer (RFC 5321 4.1.1.1); no enhanced code on greetings. */
  helo: (host: string) => reply(250, undefined, host),
  /** EHLO answer: greeting line then one extension keyword per line (RFC 5321 4.1.1.1); no enhanced code. */
  ehlo: (host: string, keywords: readonly string[]) => reply(250, undefined, [host, ...keywords]),

  serviceUnavailable: (host: string) => reply(421, '4.3.2', `${host} Service not available, closing connection`),
  shuttingDown: (host: string) => reply(421, '4.3.2', `${host} Service shutting down, closing connection`),
  timeout: (host: string) => reply(421, '4.4.2', `${host} Error: timeout exceeded`),
  /** limits.minDataRate not met in DATA/BDAT. */
  dataTooSlow: (host: string) => reply(421, '4.4.2', `${host} Error: data rate too low, closing connection`),
  tooManyConnections: reply(421, '4.7.0', 'Too many connections, try again later'),
  tooManyErrors: reply(421, '4.7.0', 'Too many errors, closing connection'),
  tooManyMessages: reply(421, '4.7.0', 'Too many messages in this session, closing connection'),
  localError: reply(451, '4.3.0', 'Local error in processing, try again later'),
  insufficientStorage: reply(452, '4.3.1', 'Insufficient system storage, try again later'),
  tooManyRecipients: reply(452, '4.5.3', 'Too many recipients'),
  tooManyRecipientsError: reply(452, '4.5.3', 'Too many recipients (and far too many)'),
  tlsUnavailable: reply(454, '4.7.0', 'TLS not available due to temporary reason'),
  authTempFail: reply(454, '4.7.0', 'Temporary authentication failure'),

  syntaxError: reply(500, '5.5.2', 'Syntax error, command unrecognized'),
  lineTooLong: reply(500, '5.5.2', 'Line too long'),
  unknownCommand: reply(500, '5.5.1', 'Command unrecognized'),
  paramSyntax: (what: string) => reply(501, '5.5.4', `Syntax error in parameters: ${what}`),
  addressSyntax: (what: string) => reply(501, '5.1.3', `Bad address syntax: ${what}`),
  senderSyntax: (what: string) => reply(501, '5.1.7', `Bad sender address syntax: ${what}`),
  notImplemented: reply(502, '5.5.1', 'Command not implemented'),
  badSequence: (what: string) => reply(503, '5.5.1', `Bad sequence of commands: ${what}`),
  paramNotImplemented: (what: string) => reply(555, '5.5.4', `Parameter not recognized or not implemented: ${what}`),
  authMechUnsupported: reply(504, '5.5.4', 'Unrecognized authentication mechanism'),
  authRequired: reply(530, '5.7.0', 'Authentication required'),
  mustIssueStarttls: reply(530, '5.7.0', 'Must issue a STARTTLS command first'),
  encryptionRequired: reply(538, '5.7.11', 'Encryption required for requested authentication mechanism'),
  authInvalid: reply(535, '5.7.8', 'Authentication credentials invalid'),
  authCancelled: reply(501, '5.0.0', 'Authentication cancelled'),
  authLineTooLong: reply(500, '5.5.6', 'Authentication exchange line is too long'),
  authBadBase64: reply(501, '5.5.2', 'Cannot decode base64 response'),
  noSuchUser: reply(550, '5.1.1', 'Recipient address rejected: user unknown'),
  /** A `local.routes` entry in mode reject matched the recipient. */
  rejectedByLocalRoute: (address: string) => reply(550, '5.1.1', `<${address}>: recipient rejected by local route`),
  relayDenied: reply(554, '5.7.1', 'Relay access denied'),
  /** RCPT of a suppressed recipient (src/suppression/), with the list entry's reason. */
  suppressed: (address: string, reason: string) => reply(550, '5.7.1', `<${address}>: recipient is on the suppression list (${reason})`),
  senderNotOwned: reply(553, '5.7.1', 'Sender address rejected: not owned by user'),
  sizeExceeded: reply(552, '5.3.4', 'Message size exceeds fixed maximum message size'),
  tooManyHops: reply(554, '5.4.6', 'Too many hops (Received headers), mail loop suspected'),
  headerTooLong: reply(552, '5.3.4', 'Message header section too long'),
  /** A line ended in a bare LF (bareNewline: reject; Postfix's smtpd_forbid_bare_newline text). */
  bareLf: reply(550, '5.5.2', 'Error: bare <LF> received'),
  /** A CR not followed by LF (refused in every mode). */
  bareCr: reply(550, '5.5.2', 'Error: bare <CR> received'),
  dataLineTooLong: reply(554, '5.6.0', 'Message line too long'),
  needs8bitmime: reply(554, '5.6.1', '8-bit data not allowed without BODY=8BITMIME'),
  needsSmtputf8: reply(553, '5.6.7', 'Non-ASCII address requires SMTPUTF8'),
  transactionFailed: reply(554, '5.0.0', 'Transaction failed'),
  /** XCLIENT / XFORWARD from a client not in policy.xclientNetworks / xforwardNetworks (Postfix's text). */
  xclientDenied: reply(550, '5.7.0', 'Error: insufficient authorization'),
  /** XCLIENT / XFORWARD between MAIL and the end of the data (Postfix's text). */
  xclientInTransaction: reply(503, '5.5.1', 'Error: MAIL transaction in progress'),
  nullMxSender: reply(550, '5.7.27', 'Sender domain does not accept mail'),
  /** A DMARC p=reject failure refused at the end of DATA (auth.dmarc.reject; RFC 7489 6.6.3, 7.3). */
  dmarcReject: (domain: string) => reply(550, '5.7.1', `Email rejected per DMARC policy for ${domain}`),
} as const;
