/**
 * ESMTP parameters of MAIL and RCPT (RFC 5321 4.1.2 Mail-parameters / Rcpt-parameters) and their
 * validation: SIZE (RFC 1870), BODY (RFC 6152, RFC 3030), SMTPUTF8 (RFC 6531), RET / ENVID / NOTIFY /
 * ORCPT (RFC 3461 4), AUTH= (RFC 4954 5, accepted and ignored).
 *
 * Owns: splitting "KEY=value KEY2" lists, the per-keyword checks and the replies for bad ones
 * (unknown keyword 555 5.5.4, duplicate or bad value 501 5.5.4, SIZE too big 552 5.3.4).
 * Pure functions: no I/O.
 */
import { R, type SmtpReply } from '../core/reply.js';
import type { BodyType, DsnNotify, DsnRet, OriginalRecipient } from '../core/envelope.js';
import { decodeUtf8AddrXtext, decodeXtext } from './xtext.js';

/** One "keyword[=value]" (keyword upper-cased). */
export interface EsmtpParam {
  readonly keyword: string;
  readonly value?: string;
}

export type ParamResult<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly reply: SmtpReply };

/** Validated MAIL FROM parameters. */
export interface MailParams {
  /** SIZE= in bytes (RFC 1870). */
  readonly size?: number;
  readonly body: BodyType;
  readonly smtputf8: boolean;
  readonly ret?: DsnRet;
  /** ENVID, xtext decoded (RFC 3461 4.4). */
  readonly envid?: string;
  /** AUTH= value, xtext decoded or '<>' (RFC 4954 5); informational only. */
  readonly auth?: string;
}

/** Validated RCPT TO parameters. */
export interface RcptParams {
  readonly notify?: readonly DsnNotify[];
  readonly orcpt?: OriginalRecipient;
}

const KEYWORD = /^[A-Za-z0-9][A-Za-z0-9-]*$/;
// esmtp-value: 1*(%d33-60 / %d62-126 / UTF8-non-ascii) (RFC 5321 4.1.2, RFC 6531 3.3)
const VALUE = /^[\x21-\x3c\x3e-\x7e\u0080-\u{10ffff}]+$/u;
const MAX_ENVID = 100; // RFC 3461 4.4
const MAX_ORCPT = 500; // RFC 3461 4.2

const fail = <T>(reply: SmtpReply): ParamResult<T> => ({ ok: false, reply });

/**
 * Splits the parameter text after a path into keyword/value pairs (RFC 5321 4.1.2 esmtp-param).
 * Parameters are separated by one or more spaces. Duplicate keywords are refused.
 * @returns the list, or 501 5.5.4 for bad syntax or a duplicate keyword.
 */
export function splitEsmtpParams(text: string): ParamResult<EsmtpParam[]> {
  const out: EsmtpParam[] = [];
  const seen = new Set<string>();
  for (const token of text.split(' ').filter(Boolean)) {
    const eq = token.indexOf('=');
    const keyword = (eq < 0 ? token : token.slice(0, eq)).toUpperCase();
    const value = eq < 0 ? undefined : token.slice(eq + 1);
    if (!KEYWORD.test(keyword)) return fail(R.paramSyntax('bad parameter keyword'));
    if (value !== undefined && !VALUE.test(value)) return fail(R.paramSyntax(`bad value for ${keyword}`));
    if (seen.has(keyword)) return fail(R.paramSyntax(`duplicate parameter ${keyword}`));
    seen.add(keyword);
    out.push({ keyword, value });
  }
  return { ok: true, value: out };
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** Checks one MAIL parameter into `m`; returns a reply on error. */
function mailParam(p: EsmtpParam, m: Mutable<MailParams>, maxMessageSize: number): SmtpReply | undefined {
  const v = p.value;
  switch (p.keyword) {
    case 'SIZE':
      if (v === undefined || !/^\d{1,20}$/.test(v)) return R.paramSyntax('SIZE needs a number of octets');
      m.size = Number(v);
      return m.size > maxMessageSize ? R.sizeExceeded : undefined;
    case 'BODY': {
      const body = v?.toUpperCase();
      // BINARYMIME is not offered: a binary body (bare CR/LF) could not be relayed over DATA without
      // reopening SMTP smuggling downstream, so every body must be CRLF text.
      if (body === 'BINARYMIME') return R.paramNotImplemented('BODY=BINARYMIME');
      if (body !== '7BIT' && body !== '8BITMIME') return R.paramSyntax('BODY must be 7BIT or 8BITMIME');
      m.body = body;
      return undefined;
    }
    case 'SMTPUTF8':
      if (v !== undefined) return R.paramSyntax('SMTPUTF8 takes no value');
      m.smtputf8 = true;
      return undefined;
    case 'RET': {
      const ret = v?.toUpperCase();
      if (ret !== 'FULL' && ret !== 'HDRS') return R.paramSyntax('RET must be FULL or HDRS');
      m.ret = ret;
      return undefined;
    }
    case 'ENVID': {
      const envid = v === undefined || v.length > MAX_ENVID ? undefined : decodeXtext(v);
      if (envid === undefined) return R.paramSyntax('ENVID must be xtext of at most 100 characters');
      m.envid = envid;
      return undefined;
    }
    case 'AUTH': {
      const auth = v === '<>' ? v : v === undefined ? undefined : decodeXtext(v);
      if (auth === undefined) return R.paramSyntax('AUTH must be xtext or <>');
      m.auth = auth;
      return undefined;
    }
    default:
      return R.paramNotImplemented(p.keyword);
  }
}

/**
 * Validates MAIL FROM parameters (RFC 1870, RFC 6152, RFC 3030 3, RFC 6531 3.4, RFC 3461 4.3/4.4,
 * RFC 4954 5). BODY defaults to 7BIT.
 * @param maxMessageSize bytes; a larger SIZE= gives 552 5.3.4 (RFC 1870 6.1).
 * @returns the parameters, or the reply: 555 5.5.4 unknown keyword, 501 5.5.4 bad value.
 */
export function parseMailParams(params: readonly EsmtpParam[], maxMessageSize: number): ParamResult<MailParams> {
  const m: Mutable<MailParams> = { body: '7BIT', smtputf8: false };
  for (const p of params) {
    const err = mailParam(p, m, maxMessageSize);
    if (err) return fail(err);
  }
  return { ok: true, value: m };
}

/** NOTIFY= (RFC 3461 4.1): "NEVER" alone, or a comma list of SUCCESS, FAILURE, DELAY. */
export function parseNotify(v: string | undefined): DsnNotify[] | undefined {
  if (!v) return undefined;
  const items = v.toUpperCase().split(',');
  if (items.length === 1 && items[0] === 'NEVER') return ['NEVER'];
  const out: DsnNotify[] = [];
  for (const it of items) {
    if (it !== 'SUCCESS' && it !== 'FAILURE' && it !== 'DELAY') return undefined;
    if (out.includes(it)) return undefined;
    out.push(it);
  }
  return out;
}

/**
 * ORCPT= (RFC 3461 4.2): addr-type ";" xtext; addr-type is an atom (e.g. rfc822, utf-8). A "utf-8"
 * value may also carry RFC 6533 "\x{HEX}" escapes (utf-8-addr-xtext), decoded here.
 */
export function parseOrcpt(v: string | undefined): OriginalRecipient | undefined {
  if (!v || v.length > MAX_ORCPT) return undefined;
  const semi = v.indexOf(';');
  if (semi <= 0) return undefined;
  const addrType = v.slice(0, semi);
  if (!/^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+$/.test(addrType)) return undefined;
  const raw = v.slice(semi + 1);
  const address = addrType.toLowerCase() === 'utf-8' ? decodeUtf8AddrXtext(raw) : decodeXtext(raw);
  if (!address) return undefined;
  return { addrType: addrType.toLowerCase(), address };
}

/**
 * Validates RCPT TO parameters (RFC 3461 4.1 NOTIFY, 4.2 ORCPT).
 * @returns the parameters, or the reply: 555 5.5.4 unknown keyword, 501 5.5.4 bad value.
 */
export function parseRcptParams(params: readonly EsmtpParam[]): ParamResult<RcptParams> {
  const r: Mutable<RcptParams> = {};
  for (const p of params) {
    if (p.keyword === 'NOTIFY') {
      const notify = parseNotify(p.value);
      if (!notify) return fail(R.paramSyntax('NOTIFY must be NEVER or a list of SUCCESS, FAILURE, DELAY'));
      r.notify = notify;
    } else if (p.keyword === 'ORCPT') {
      const orcpt = parseOrcpt(p.value);
      if (!orcpt) return fail(R.paramSyntax('ORCPT must be addr-type;xtext'));
      r.orcpt = orcpt;
    } else {
      return fail(R.paramNotImplemented(p.keyword));
    }
  }
  return { ok: true, value: r };
}
