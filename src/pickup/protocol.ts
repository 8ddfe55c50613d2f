/**
 * The submit protocol: what `postline sendmail` hands the server, over the submit socket
 * (`dataDir/submit.sock`) or as a maildrop file (`dataDir/maildrop/`). Both start alike:
 *
 *   {"op":"submit","v":1,"from":"alice@host","rcpt":[{"address":"bob@example.org"}],"user":"alice",...}\n
 *   <the RFC 5322 message, CRLF line endings, not dot-stuffed>
 *
 * In a maildrop file the message runs to the end of the file (complete once renamed to its ready
 * name). On the socket it is framed (feed.ts): a 4-byte big-endian length and that many bytes,
 * again and again, then a frame of length 0; a connection that ends before that frame is a
 * client that went away, and its message is dropped, never committed in part.
 *
 * The first line is the envelope (JSON, at most MAX_ENVELOPE_BYTES): `from` ('' for the null
 * reverse-path), `rcpt` (address, optional DSN `notify` and `orcpt`, RFC 3461 4.1, 4.2), and optional
 * `user` (the local user the command ran as: claimed, never checked), `bodyType` (RFC 6152),
 * `ret`, `envid` (RFC 3461 4.3, 4.4) and `smtputf8` (RFC 6531). `op` must be "submit": the socket
 * takes that one verb and nothing of the control socket's. After the last frame the server
 * answers one JSON line (`SubmitAnswer`) and closes:
 *
 *   {"ok":true,"queueId":"...","reply":"250 2.0.0 Ok: queued as ..."}
 *   {"ok":false,"reply":"552 5.3.4 Message size exceeds fixed limit","code":"ERR_SIZE"}
 *
 * Owns: the envelope line's encoding and validation, the answer line, maildrop file names.
 * Pure functions: no I/O.
 */
import type { BodyType, DsnNotify, DsnRet, Envelope, Recipient } from '../core/envelope.js';
import { reply, replyToString, type SmtpReply } from '../core/reply.js';
import type { ErrorCode } from '../core/error-codes.js';
import { parsePath } from '../rfc5321/address.js';

/** Longest envelope line, bytes with its LF (room for limits.maxRecipients addresses with DSN fields). */
export const MAX_ENVELOPE_BYTES = 2 * 1024 * 1024;

/** What the command sends before the message. */
export interface SubmitEnvelope {
  readonly envelope: Envelope;
  /** The user the command ran as, as it says (not verified). */
  readonly user?: string;
}

/** The server's one answer line. */
export interface SubmitAnswer {
  readonly ok: boolean;
  /** Set when ok. */
  readonly queueId?: string;
  /** An SMTP reply, one line: "250 2.0.0 Ok: queued as ID", "552 5.3.4 ...". */
  readonly reply: string;
  /** The PostlineError code of a refusal, when there was one. */
  readonly code?: string;
}

const NOTIFY: readonly string[] = ['NEVER', 'SUCCESS', 'FAILURE', 'DELAY'];
const BODY_TYPES: readonly string[] = ['7BIT', '8BITMIME', 'BINARYMIME'];
/** A user name as the command may claim it: POSIX portable characters, at most 64. */
const USER_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.@-]{0,63}$/;

/** The envelope line (with its LF) for `e`. */
export function encodeEnvelope(e: SubmitEnvelope): Buffer {
  const env = e.envelope;
  const rcpt = env.recipients.map((r) => ({
    address: r.address, ...(r.notify ? { notify: r.notify } : {}), ...(r.orcpt ? { orcpt: r.orcpt } : {}),
  }));
  const o = {
    op: 'submit', v: 1, from: env.mailFrom, rcpt, ...(e.user !== undefined ? { user: e.user } : {}),
    bodyType: env.bodyType, ...(env.ret ? { ret: env.ret } : {}), ...(env.envid !== undefined ? { envid: env.envid } : {}),
    ...(env.smtputf8 ? { smtputf8: true } : {}),
  };
  return Buffer.from(JSON.stringify(o) + '\n', 'utf8');
}

/** A refusal of the envelope line. */
export type EnvelopeResult = { readonly ok: true; readonly value: SubmitEnvelope } | { readonly ok: false; readonly reply: SmtpReply; readonly code: ErrorCode };

const bad = (code: number, enhanced: string, text: string, err: ErrorCode = 'ERR_SUBMIT_ENVELOPE'): EnvelopeResult => ({ ok: false, reply: reply(code, enhanced, text), code: err });

/**
 * Parses and checks an envelope line (without its LF): JSON object, op "submit", addresses by the
 * RFC 5321 4.1.2 path grammar (RFC 6531 forms too), at most `maxRecipients` recipients.
 * @returns the envelope, or the refusal: 502 5.5.1 another verb, 501 5.5.2 malformed, 553 5.1.7 /
 *          5.1.3 bad sender / recipient, 554 5.5.1 no recipients, 552 5.5.3 too many. Never throws.
 */
export function parseEnvelope(line: string, limits: { readonly maxRecipients: number }): EnvelopeResult {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return bad(501, '5.5.2', 'Envelope line is not JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return bad(501, '5.5.2', 'Envelope line must be a JSON object');
  const o = v as Record<string, unknown>;
  if (o.op !== 'submit') return bad(502, '5.5.1', 'Only the submit verb is accepted here', 'ERR_SUBMIT_VERB');
  if (o.v !== 1) return bad(501, '5.5.2', 'Unknown envelope version');
  if (typeof o.from !== 'string') return bad(501, '5.5.2', 'from must be a string');
  const from = parsePath(`<${o.from}>`, { allowNull: true });
  if (!from.ok) return bad(553, '5.1.7', `Bad sender address syntax: ${from.detail}`);
  if (!Array.isArray(o.rcpt)) return bad(501, '5.5.2', 'rcpt must be a list');
  if (o.rcpt.length === 0) return bad(554, '5.5.1', 'No valid recipients', 'ERR_NO_RECIPIENTS');
  if (o.rcpt.length > limits.maxRecipients) return bad(552, '5.5.3', `Too many recipients (at most ${limits.maxRecipients})`);
  let utf8 = from.utf8;
  const recipients: Recipient[] = [];
  for (const r of o.rcpt as unknown[]) {
    const rec = parseRecipient(r);
    if ('reply' in rec) return rec;
    utf8 ||= /[^\x00-\x7f]/.test(rec.address);
    recipients.push(rec);
  }
  if (o.user !== undefined && (typeof o.user !== 'string' || !USER_NAME.test(o.user))) return bad(501, '5.5.2', 'Bad user name');
  const bodyType = o.bodyType ?? '7BIT';
  if (typeof bodyType !== 'string' || !BODY_TYPES.includes(bodyType)) return bad(501, '5.5.4', 'bodyType must be 7BIT, 8BITMIME or BINARYMIME');
  if (o.ret !== undefined && o.ret !== 'FULL' && o.ret !== 'HDRS') return bad(501, '5.5.4', 'ret must be FULL or HDRS');
  if (o.envid !== undefined && (typeof o.envid !== 'string' || !/^[\x21-\x7e]{1,100}$/.test(o.envid))) return bad(501, '5.5.4', 'envid must be 1-100 printable ASCII characters');
  if (o.smtputf8 !== undefined && typeof o.smtputf8 !== 'boolean') return bad(501, '5.5.4', 'smtputf8 must be true or false');
  const envelope: Envelope = {
    mailFrom: from.address, recipients, bodyType: bodyType as BodyType, smtputf8: o.smtputf8 === true || utf8,
    ...(o.ret !== undefined ? { ret: o.ret as DsnRet } : {}),
    ...(o.envid !== undefined ? { envid: o.envid as string } : {}),
  };
  return { ok: true, value: { envelope, ...(o.user !== undefined ? { user: o.user as string } : {}) } };
}

function parseRecipient(r: unknown): Recipient | { ok: false; reply: SmtpReply; code: ErrorCode } {
  if (typeof r !== 'object' || r === null) return bad(501, '5.5.2', 'each rcpt must be an object') as { ok: false; reply: SmtpReply; code: ErrorCode };
  const o = r as Record<string, unknown>;
  const p = typeof o.address === 'string' ? parsePath(`<${o.address}>`, { allowPostmaster: true }) : undefined;
  if (!p?.ok) return bad(553, '5.1.3', `Bad recipient address syntax: ${p && !p.ok ? p.detail : 'address must be a string'}`) as { ok: false; reply: SmtpReply; code: ErrorCode };
  let notify: DsnNotify[] | undefined;
  if (o.notify !== undefined) {
    const n = o.notify;
    const ok = Array.isArray(n) && n.length > 0 && n.every((x) => NOTIFY.includes(x as string)) && new Set(n).size === n.length && (!n.includes('NEVER') || n.length === 1);
    if (!ok) return bad(501, '5.5.4', 'notify must be ["NEVER"] or a list of SUCCESS, FAILURE, DELAY') as { ok: false; reply: SmtpReply; code: ErrorCode };
    notify = n as DsnNotify[];
  }
  let orcpt: Recipient['orcpt'];
  if (o.orcpt !== undefined) {
    const c = o.orcpt as Record<string, unknown> | null;
    if (!c || typeof c.addrType !== 'string' || typeof c.address !== 'string' || c.address.length > 500 || !/^[A-Za-z0-9-]{1,20}$/.test(c.addrType)) {
      return bad(501, '5.5.4', 'orcpt must be { addrType, address }') as { ok: false; reply: SmtpReply; code: ErrorCode };
    }
    orcpt = { addrType: c.addrType.toLowerCase(), address: c.address };
  }
  return { address: p.address, ...(notify ? { notify } : {}), ...(orcpt ? { orcpt } : {}) };
}

/** The answer line (with its LF). */
export function encodeAnswer(a: SubmitAnswer): Buffer {
  return Buffer.from(JSON.stringify(a) + '\n', 'utf8');
}

/** The answer for a committed message. */
export function acceptedAnswer(queueId: string): SubmitAnswer {
  return { ok: true, queueId, reply: `250 2.0.0 Ok: queued as ${queueId}` };
}

/** The answer for a refusal. */
export function refusedAnswer(r: SmtpReply, code?: string): SubmitAnswer {
  return { ok: false, reply: replyToString(r).replace(/[\r\n]+/g, ' ').trim(), ...(code !== undefined ? { code } : {}) };
}

/** Parses an answer line. @returns undefined when it is not one. */
export function parseAnswer(line: string): SubmitAnswer | undefined {
  try {
    const v = JSON.parse(line) as Record<string, unknown>;
    if (typeof v !== 'object' || v === null || typeof v.ok !== 'boolean' || typeof v.reply !== 'string' || !/^[245]\d\d /.test(v.reply)) return undefined;
    return { ok: v.ok, reply: v.reply, ...(typeof v.queueId === 'string' ? { queueId: v.queueId } : {}), ...(typeof v.code === 'string' ? { code: v.code } : {}) };
  } catch {
    return undefined;
  }
}

/** A maildrop file ready for pickup: "m.<ms since epoch, 13 digits>.<pid>.<16 hex>". */
export const READY_NAME = /^m\.\d{13}\.\d{1,10}\.[0-9a-f]{16}$/;
/** A maildrop file being written (never picked up; removed by the pickup after a day). */
export const TEMP_NAME = /^t\.\d{13}\.\d{1,10}\.[0-9a-f]{16}$/;

/** The temp and the ready name of a new maildrop file. */
export function maildropNames(now: number, pid: number, random: string): { temp: string; ready: string } {
  const base = `${String(now).padStart(13, '0')}.${pid}.${random}`;
  return { temp: `t.${base}`, ready: `m.${base}` };
}

/** Mode of a maildrop file once complete (world-readable: the directory, 1733, hides its name from others; Postfix marks ready queue files 0744 alike). */
export const MAILDROP_FILE_MODE = 0o644;
