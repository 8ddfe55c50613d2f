/**
 * The bounce classifier: an SMTP reply (or a DSN's Status and Diagnostic-Code) to a bounce class
 * and its severity (classes.ts). Used for every 4xx/5xx reply during delivery
 * (src/delivery/trouble.ts) and for inbound DSNs and bounces (dsn-parse.ts).
 *
 * Order of evidence:
 * 1. causes the text names that no code carries reliably (patterns.ts OVERRIDES: blocklists,
 *    rate limits, SPF/DKIM/DMARC, full mailboxes, viruses, spam verdicts, greylisting);
 * 2. the enhanced status code (RFC 3463 section 3 subject and detail; later registrations from
 *    the IANA "SMTP Enhanced Status Codes" registry: RFC 4954, RFC 5248, RFC 7372, RFC 7505,
 *    RFC 8098): a "firm" code decides; an "open" one (X.0.0, X.1.0, X.2.0, X.5.0, X.7.1, ...,
 *    which servers use for many things) lets the text patterns decide and is the fallback;
 * 3. the text patterns (patterns.ts TEXT_PATTERNS);
 * 4. the basic reply code (RFC 5321 4.2.2/4.2.3: 552 storage, 553 mailbox name, 530/535 auth,
 *    521/556 no mail for the domain RFC 7504, 500-504 syntax);
 * 5. TransientFailure for a temporary reply, Uncategorized for a permanent one.
 *
 * Fast: no allocation beyond two small regex matches; the answer objects are shared and frozen.
 */
import { verdictFor, type BounceClass, type BounceVerdict } from './classes.js';
import { firstMatch, OVERRIDES, TEXT_PATTERNS } from './patterns.js';

/** What an enhanced code's subject.detail says: its class, and whether text may refine it. */
interface CodeEntry {
  readonly cls: BounceClass;
  readonly firm: boolean;
}

const firm = (cls: BounceClass): CodeEntry => ({ cls, firm: true });
const open = (cls: BounceClass): CodeEntry => ({ cls, firm: false });

/** subject * 1000 + detail → entry (RFC 3463 3.1-3.8 and the IANA registry). */
const CODES = new Map<number, CodeEntry>([
  // X.1 addressing
  [1000, open('InvalidRecipient')], [1001, firm('InvalidRecipient')], [1002, firm('BadDomain')],
  [1003, open('InvalidRecipient')], [1004, open('InvalidRecipient')], [1005, open('Uncategorized')],
  [1006, firm('InactiveMailbox')], [1007, firm('InvalidSender')], [1008, firm('InvalidSender')],
  [1009, open('Uncategorized')],
  // X.1.10 is "recipient address has null MX" (RFC 7505), but Exchange sends it for an unknown user.
  [1010, open('BadDomain')],
  // X.2 mailbox
  [2000, open('Uncategorized')], [2001, open('InactiveMailbox')], [2002, firm('MailboxFull')],
  [2003, firm('MessageTooLarge')], [2004, open('RoutingErrors')],
  // X.3 mail system
  [3000, open('SystemError')], [3001, open('SystemError')], [3002, open('SystemError')],
  [3003, open('ProtocolErrors')], [3004, firm('MessageTooLarge')], [3005, open('SystemError')],
  // X.4 network and routing
  [4000, open('RoutingErrors')], [4001, open('NoAnswerFromHost')], [4002, open('BadConnection')],
  [4003, open('DnsFailure')], [4004, open('RoutingErrors')], [4005, firm('Throttled')],
  [4006, firm('RoutingErrors')], [4007, firm('MessageExpired')],
  // X.5 protocol
  // X.5.0 ("other or undefined protocol status") is sent for anything; it names no class.
  [5001, open('ProtocolErrors')], [5002, open('ProtocolErrors')],
  [5003, open('ProtocolErrors')], [5004, open('ProtocolErrors')], [5005, open('ProtocolErrors')],
  [5006, open('ProtocolErrors')],
  // X.6 content and media
  [6000, open('ProtocolErrors')], [6001, open('ProtocolErrors')], [6002, open('ProtocolErrors')],
  [6003, open('ProtocolErrors')], [6004, open('ProtocolErrors')], [6005, open('ProtocolErrors')],
  [6006, open('ProtocolErrors')], [6007, open('ProtocolErrors')], [6008, open('ProtocolErrors')],
  [6009, open('ProtocolErrors')], [6010, open('ProtocolErrors')],
  // X.7 security and policy
  [7000, open('PolicyRelated')], [7001, open('PolicyRelated')], [7002, open('PolicyRelated')],
  [7003, open('ProtocolErrors')], [7004, open('TlsFailure')], [7005, open('TlsFailure')],
  [7006, open('TlsFailure')], [7007, open('PolicyRelated')], [7008, firm('AuthFailure')],
  [7009, open('AuthFailure')], [7010, firm('TlsFailure')], [7011, firm('TlsFailure')],
  [7012, firm('AuthFailure')], [7013, firm('InactiveMailbox')], [7014, open('PolicyRelated')],
  [7015, open('PolicyRelated')], [7016, firm('MessageTooLarge')], [7017, firm('InactiveMailbox')],
  [7018, firm('InactiveMailbox')], [7019, open('PolicyRelated')], [7020, firm('AuthFailure')],
  [7021, firm('AuthFailure')], [7022, firm('AuthFailure')], [7023, firm('AuthFailure')],
  [7024, firm('AuthFailure')], [7025, open('PolicyRelated')], [7026, firm('AuthFailure')],
  [7027, firm('InvalidSender')], [7028, firm('Throttled')], [7029, firm('AuthFailure')],
  [7030, firm('TlsFailure')],
]);

/** A detail the table lacks: by subject (open, the text decides). */
const SUBJECT_DEFAULT: readonly (BounceClass | undefined)[] = [
  undefined, 'InvalidRecipient', 'Uncategorized', 'SystemError', 'RoutingErrors', undefined, 'ProtocolErrors', 'PolicyRelated',
];

/** Basic reply codes that say more than their class (RFC 5321 4.2.2, RFC 7504). */
function classOfCode(code: number): BounceClass | undefined {
  switch (code) {
    case 552: return 'MailboxFull';
    case 553: return 'InvalidRecipient';
    case 530: case 535: case 538: return 'AuthFailure';
    case 521: case 556: return 'BadDomain';
    case 500: case 501: case 502: case 503: case 504: return 'ProtocolErrors';
    default: return undefined;
  }
}

/** An enhanced status code, parsed. */
export interface EnhancedCode {
  /** 2, 4 or 5. */
  readonly cls: number;
  readonly subject: number;
  readonly detail: number;
}

const ENHANCED = /^\s*([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])/;
const ENHANCED_IN_TEXT = /(?:^|[^\d.])([45])\.(\d{1,3})\.(\d{1,3})(?![\d.])/;
const REPLY_CODE_IN_TEXT = /(?:^|[^\d.])([245]\d\d)(?:[ \-]|$)/;

/** Parses "5.1.1" (RFC 3463 2: class "." subject "." detail); undefined when malformed. */
export function parseEnhanced(s: string | undefined): EnhancedCode | undefined {
  if (!s) return undefined;
  const m = ENHANCED.exec(s);
  return m ? { cls: Number(m[1]), subject: Number(m[2]), detail: Number(m[3]) } : undefined;
}

/** The first 4.x.x or 5.x.x code in a reply text ("550-5.1.1 ...", "(#5.1.1)"); undefined when none. */
export function findEnhanced(text: string): EnhancedCode | undefined {
  const m = ENHANCED_IN_TEXT.exec(text);
  return m ? { cls: Number(m[1]), subject: Number(m[2]), detail: Number(m[3]) } : undefined;
}

/** The first three-digit reply code in a text ("host x said: 550 ..."); 0 when none. */
export function findReplyCode(text: string): number {
  const m = REPLY_CODE_IN_TEXT.exec(text);
  return m ? Number(m[1]) : 0;
}

/** Longest text the patterns look at, characters (the reason is at the start of a reply). */
const MAX_TEXT = 4096;

/**
 * Classifies one reply.
 * @param code the basic reply code (RFC 5321 4.2: 421, 450, 550, ...); 0 when unknown (a DSN
 *             without an SMTP diagnostic): then the enhanced code's class, or the text's, says
 *             whether it is temporary.
 * @param enhanced the enhanced status code ("5.1.1", RFC 3463) when known; else the first one
 *                 found in `text` is used.
 * @param text the reply text (or DSN diagnostic); only its first 4 KiB are read.
 * @returns the class and `hard`/`soft` (classes.ts): a 4xx reply, or a 4.x.x code without a
 *          reply code, is always soft. Never throws.
 */
export function classifyReply(code: number, enhanced: string | undefined, text: string): BounceVerdict {
  const s = typeof text === 'string' ? text : '';
  const t = s.length > MAX_TEXT ? s.slice(0, MAX_TEXT) : s;
  const st = parseEnhanced(enhanced) ?? findEnhanced(t);
  let basic = Number.isInteger(code) && code >= 200 && code < 600 ? code : 0;
  if (basic === 0 && st === undefined) basic = findReplyCode(t);
  const temporary = basic >= 400 && basic < 500 ? true : basic >= 500 ? false : st?.cls === 4;
  return verdictFor(classOf(basic, st, t, temporary), temporary);
}

function classOf(code: number, st: EnhancedCode | undefined, t: string, temporary: boolean): BounceClass {
  const override = firstMatch(OVERRIDES, t);
  if (override) return override;
  if (st && (st.subject !== 0 || st.detail !== 0)) {
    const entry = CODES.get(st.subject * 1000 + st.detail);
    if (entry?.firm) return entry.cls;
    return firstMatch(TEXT_PATTERNS, t) ?? entry?.cls ?? (st.detail === 0 && st.subject === 5 ? undefined : SUBJECT_DEFAULT[st.subject]) ?? classOfCode(code) ?? fallback(temporary);
  }
  return firstMatch(TEXT_PATTERNS, t) ?? classOfCode(code) ?? fallback(temporary);
}

function fallback(temporary: boolean): BounceClass {
  return temporary ? 'TransientFailure' : 'Uncategorized';
}
