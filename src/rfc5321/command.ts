/**
 * SMTP command-line grammar (RFC 5321 4.1.1, 4.1.2, 4.5.3.1.4) for the server and its fuzz tests.
 *
 * Owns: splitting a command line into verb and argument, parsing the MAIL FROM / RCPT TO / BDAT /
 * EHLO arguments, and the command line length limits (512 octets, plus the room RFC 1870, RFC 3461 4,
 * RFC 4954 and RFC 6531 give extension parameters). Every function is pure, never throws, and
 * returns either a value or the reply from the `R` table to send.
 */
import { R, type SmtpReply } from '../core/reply.js';
import { parsePath } from './address.js';
import { parseMailParams, parseRcptParams, splitEsmtpParams, type MailParams, type RcptParams } from './params.js';

export type Parsed<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly reply: SmtpReply };

/** A command line split into an upper-cased verb and its argument (may be ''). */
export interface CommandLine {
  readonly verb: string;
  readonly arg: string;
}

/** RFC 5321 4.5.3.1.4: a command line is at most 512 octets including CRLF. */
export const BASE_COMMAND_LINE = 512;
/** RFC 4954 4: an AUTH command or response line may be up to 12288 octets. */
export const AUTH_LINE_LIMIT = 12288;
/** Extra octets for MAIL: SIZE 26 (RFC 1870), RET+ENVID 100 (RFC 3461 4), AUTH= 500 (RFC 4954 5), BODY 20, SMTPUTF8 10. */
export const MAIL_EXTRA = 26 + 100 + 500 + 20 + 10;
/** Extra octets for RCPT: NOTIFY+ORCPT 500 (RFC 3461 4). */
export const RCPT_EXTRA = 500;
/** The longest line any command may have; the line reader discards beyond it. */
export const MAX_COMMAND_LINE = AUTH_LINE_LIMIT;

const ok = <T>(value: T): Parsed<T> => ({ ok: true, value });
const fail = <T>(reply: SmtpReply): Parsed<T> => ({ ok: false, reply });

/**
 * The longest line allowed for a verb, in octets including CRLF (RFC 5321 4.5.3.1.4 plus extension
 * allowances). Unknown verbs get the base 512.
 */
export function commandLineLimit(verb: string): number {
  switch (verb) {
    case 'MAIL': return BASE_COMMAND_LINE + MAIL_EXTRA;
    case 'RCPT': return BASE_COMMAND_LINE + RCPT_EXTRA;
    case 'AUTH': return AUTH_LINE_LIMIT;
    case 'XCLIENT': case 'XFORWARD': return 2 * BASE_COMMAND_LINE; // room for 255-character NAME and HELO values with xtext escapes
    default: return BASE_COMMAND_LINE;
  }
}

/**
 * Splits a command line (without CRLF) into verb and argument (RFC 5321 4.1.1: verbs are
 * case-insensitive alphabetic words, separated from the argument by SP). Trailing spaces are
 * dropped; control characters other than HT are refused.
 * @returns `{verb, arg}` or 500 5.5.2 syntax error. Never throws.
 */
export function parseCommandLine(line: string): Parsed<CommandLine> {
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x08\x0a-\x1f\x7f]/.test(line)) return fail(R.syntaxError);
  const m = /^([A-Za-z]{1,32})(?: +(.*))?$/s.exec(line.replace(/[ \t]+$/, ''));
  if (!m) return fail(R.syntaxError);
  return ok({ verb: m[1]!.toUpperCase(), arg: m[2] ?? '' });
}

/** The parsed argument of MAIL (RFC 5321 4.1.1.2). */
export interface MailFrom {
  /** The reverse-path; '' for the null path <>. */
  readonly reversePath: string;
  readonly params: MailParams;
}

/** The parsed argument of RCPT (RFC 5321 4.1.1.3). */
export interface RcptTo {
  readonly forwardPath: string;
  readonly params: RcptParams;
}

/** Splits "PREFIX:<path> params": tolerates spaces after the colon, as many clients send them. */
function afterPrefix(arg: string, prefix: string): string | undefined {
  if (arg.slice(0, prefix.length).toUpperCase() !== prefix) return undefined;
  return arg.slice(prefix.length).replace(/^ +/, '');
}

/**
 * Parses the argument of MAIL: "FROM:<reverse-path> [SP params]" (RFC 5321 4.1.1.2, 4.1.2).
 * @param opts.esmtp false after HELO: any parameter is refused (555 5.5.4).
 * @param opts.maxMessageSize bytes, for SIZE= (552 5.3.4).
 * @returns the reverse-path and validated parameters, or a reply: 501 5.5.2 (no FROM:), 501 5.1.7
 *   (bad path), 555/501 5.5.4 (parameters), 552 5.3.4 (SIZE), 553 5.6.7 (UTF-8 without SMTPUTF8).
 */
export function parseMailFrom(arg: string, opts: { esmtp: boolean; maxMessageSize: number }): Parsed<MailFrom> {
  const rest = afterPrefix(arg, 'FROM:');
  if (rest === undefined) return fail(R.paramSyntax('expected MAIL FROM:<address>'));
  const path = parsePath(rest, { allowNull: true });
  if (!path.ok) return fail(R.senderSyntax(path.detail));
  if (path.rest !== '' && !path.rest.startsWith(' ')) return fail(R.senderSyntax('junk after path'));
  const split = splitEsmtpParams(path.rest);
  if (!split.ok) return split;
  if (!opts.esmtp && split.value.length > 0) return fail(R.paramNotImplemented(split.value[0]!.keyword));
  const params = parseMailParams(split.value, opts.maxMessageSize);
  if (!params.ok) return params;
  if (path.utf8 && !params.value.smtputf8) return fail(R.needsSmtputf8);
  return ok({ reversePath: path.address, params: params.value });
}

/**
 * Parses the argument of RCPT: "TO:<forward-path> [SP params]" (RFC 5321 4.1.1.3); "<Postmaster>"
 * without a domain is accepted.
 * @param opts.smtputf8 true when the transaction's MAIL had SMTPUTF8 (RFC 6531 3.4).
 * @returns the forward-path and parameters, or a reply: 501 5.5.4 (no TO:), 501 5.1.3 (bad path),
 *   555/501 5.5.4 (parameters), 553 5.6.7 (UTF-8 without SMTPUTF8).
 */
export function parseRcptTo(arg: string, opts: { esmtp: boolean; smtputf8: boolean }): Parsed<RcptTo> {
  const rest = afterPrefix(arg, 'TO:');
  if (rest === undefined) return fail(R.paramSyntax('expected RCPT TO:<address>'));
  const path = parsePath(rest, { allowPostmaster: true });
  if (!path.ok) return fail(R.addressSyntax(path.detail));
  if (path.rest !== '' && !path.rest.startsWith(' ')) return fail(R.addressSyntax('junk after path'));
  const split = splitEsmtpParams(path.rest);
  if (!split.ok) return split;
  if (!opts.esmtp && split.value.length > 0) return fail(R.paramNotImplemented(split.value[0]!.keyword));
  const params = parseRcptParams(split.value);
  if (!params.ok) return params;
  if (path.utf8 && !opts.smtputf8) return fail(R.needsSmtputf8);
  return ok({ forwardPath: path.address, params: params.value });
}

/** The parsed argument of BDAT (RFC 3030 2): chunk size in octets and the LAST flag. */
export interface BdatArgs {
  readonly size: number;
  readonly last: boolean;
}

/**
 * Parses "chunk-size [SP end-marker]" of BDAT (RFC 3030 2): 1*DIGIT and optional "LAST".
 * @returns the size (octets) and flag, or 501 5.5.4.
 */
export function parseBdatArgs(arg: string): Parsed<BdatArgs> {
  const m = /^(\d{1,15})(?: +(LAST))?$/i.exec(arg);
  if (!m) return fail(R.paramSyntax('expected BDAT <octets> [LAST]'));
  return ok({ size: Number(m[1]), last: m[2] !== undefined });
}

/**
 * Parses the EHLO/HELO argument (RFC 5321 4.1.1.1): one token, a domain or address literal. We are
 * lenient about its form (many clients send bare host names) but require exactly one printable token.
 * @returns the name or 501 5.5.4.
 */
export function parseHeloArg(arg: string): Parsed<string> {
  if (!/^[\x21-\x7e\u0080-\u{10ffff}]{1,255}$/u.test(arg)) return fail(R.paramSyntax('expected a domain or address literal'));
  return ok(arg);
}
