/**
 * The ONE place that classifies delivery outcomes (like Postfix's smtp_trouble): a reply or an error
 * becomes delivered, deferred or bounced with a reply code, DSN status and one-line diagnostic.
 *
 * RFCs: RFC 5321 4.2.1 (2xx/4xx/5xx), RFC 3463 (enhanced status codes: 4.4.1 no answer from host,
 * 4.4.2 bad connection, 4.4.3 directory server failure, 4.4.5 system congestion, 4.4.6 routing loop,
 * 4.5.0 protocol error, 4.7.x security), RFC 3464 (diagnostic text), RFC 3461 5.2.2 (who reports the
 * success of a relayed recipient). Rule: unknown trouble is temporary.
 *
 * Every deferred or bounced verdict also carries its bounce class (src/feedback/classify.ts for a
 * reply; for local trouble by its kind: DNS → DnsFailure or BadDomain, connection trouble →
 * NoAnswerFromHost / BadConnection, TLS → TlsFailure, ...), for the events and metrics.
 */
import { PostlineError } from '../core/errors.js';
import { replyToString, type SmtpReply } from '../core/reply.js';
import type { DsnNotify } from '../core/envelope.js';
import type { DeliveryOutcome, RecipientResult } from './types.js';
import { SmtpClientError } from './client-error.js';
import type { BounceClass } from '../feedback/classes.js';
import { classifyReply } from '../feedback/classify.js';

/** A classified outcome without the recipient index. */
export interface Verdict {
  readonly outcome: DeliveryOutcome;
  readonly code: number;
  readonly dsnStatus: string;
  readonly diagnostic: string;
  readonly remote: boolean;
  /** Why it was not delivered (feedback/classes.ts); absent for delivered. */
  readonly bounceClass?: BounceClass;
}

const STAGE_WORDS: Record<string, string> = {
  greeting: 'initial server greeting', ehlo: 'EHLO', helo: 'HELO', lhlo: 'LHLO', starttls: 'STARTTLS', auth: 'AUTH',
  mail: 'MAIL FROM', rcpt: 'RCPT TO', data: 'DATA', body: 'message body', bdat: 'BDAT', dot: 'end of data', rset: 'RSET',
};

/** Human words for a stage, for reasons like "timed out while waiting for reply to RCPT TO". */
export function stageWords(stage: string): string {
  return STAGE_WORDS[stage] ?? stage;
}

/** The DSN status of a reply: its enhanced code when its class matches the reply code, else "c.0.0". */
export function statusOfReply(r: SmtpReply): string {
  const cls = Math.floor(r.code / 100);
  if (r.enhanced && r.enhanced.startsWith(`${cls}.`)) return r.enhanced;
  if (r.enhanced) return `${cls}${r.enhanced.slice(1)}`;
  return `${cls}.0.0`;
}

/**
 * Classifies a reply (RFC 5321 4.2.1): 2xx delivered, 4xx deferred, 5xx bounced; anything else
 * deferred. A 4xx/5xx verdict gets the bounce class of the reply (feedback/classify.ts).
 */
export function verdictOfReply(r: SmtpReply, remote = true): Verdict {
  const diagnostic = replyToString(r);
  if (r.code >= 200 && r.code < 300) return { outcome: 'delivered', code: r.code, dsnStatus: statusOfReply(r), diagnostic, remote };
  const bounceClass = (): BounceClass => classifyReply(r.code, r.enhanced, r.lines.length === 1 ? r.lines[0]! : r.lines.join(' ')).class;
  if (r.code >= 500 && r.code < 600) return { outcome: 'bounced', code: r.code, dsnStatus: statusOfReply(r), diagnostic, remote, bounceClass: bounceClass() };
  if (r.code >= 400 && r.code < 500) return { outcome: 'deferred', code: r.code, dsnStatus: statusOfReply(r), diagnostic, remote, bounceClass: bounceClass() };
  return { outcome: 'deferred', code: 451, dsnStatus: '4.5.0', diagnostic: `unexpected reply: ${diagnostic}`, remote, bounceClass: 'ProtocolErrors' };
}

function deferred(dsnStatus: string, diagnostic: string, bounceClass: BounceClass): Verdict {
  return { outcome: 'deferred', code: 451, dsnStatus, diagnostic, remote: false, bounceClass };
}

/** The bounce class of local connection trouble, by SmtpClientError kind. */
const CLIENT_CLASS: Record<string, BounceClass> = {
  connect: 'NoAnswerFromHost', lost: 'BadConnection', tls: 'TlsFailure', 'tls-required': 'TlsFailure', 'tls-verify': 'TlsFailure',
  malformed: 'ProtocolErrors', 'auth-insecure': 'AuthFailure', 'auth-unavailable': 'AuthFailure', auth: 'AuthFailure', loop: 'RoutingErrors',
  aborted: 'TransientFailure', pool: 'TransientFailure', local: 'TransientFailure',
};

const CLIENT_STATUS: Record<string, string> = {
  connect: '4.4.1', lost: '4.4.2', tls: '4.7.5', 'tls-required': '4.7.4', 'tls-verify': '4.7.5', malformed: '4.5.0', 'auth-insecure': '4.7.0',
  'auth-unavailable': '4.7.0', loop: '4.4.6', aborted: '4.3.0', pool: '4.4.5', local: '4.3.0',
};

function verdictOfClientError(e: SmtpClientError): Verdict {
  if (e.kind === 'reply' && e.remoteReply) return verdictOfReply(e.remoteReply);
  if (e.kind === 'auth') {
    // A rejected AUTH is deferred (like Postfix smtp_sasl_auth_soft_bounce): credentials get fixed.
    const r = e.remoteReply;
    return { outcome: 'deferred', code: 451, dsnStatus: '4.7.8', diagnostic: r ? `authentication failed: ${replyToString(r)}` : e.message, remote: r !== undefined, bounceClass: 'AuthFailure' };
  }
  if (e.kind === 'timeout') return e.stage === 'connect' ? deferred('4.4.1', e.message, 'NoAnswerFromHost') : deferred('4.4.2', e.message, 'BadConnection');
  return deferred(CLIENT_STATUS[e.kind] ?? '4.3.0', e.message, CLIENT_CLASS[e.kind] ?? 'TransientFailure');
}

/** MX resolution failures (dns/mx.ts MxLookupError codes): the domain takes no mail, or DNS failed for now. */
const DNS_CLASS: Record<string, BounceClass> = {
  ERR_DNS_BAD_DOMAIN: 'BadDomain', ERR_DNS_NULL_MX: 'BadDomain', ERR_DNS_NXDOMAIN: 'BadDomain', ERR_DNS_NO_MX: 'BadDomain',
  ERR_DNS_MX_UNRESOLVED: 'BadDomain', ERR_DNS_TEMPORARY: 'DnsFailure', ERR_DNS_HOST: 'DnsFailure',
};

/** The bounce class of a PostlineError that ends a delivery: by its code, else by its reply and message. */
export function classOfError(err: PostlineError, status: string | undefined): BounceClass {
  const byCode = DNS_CLASS[err.code];
  if (byCode) return byCode;
  if (err.code.startsWith('ERR_TLS') || err.code.startsWith('ERR_MTA_STS')) return 'TlsFailure';
  return classifyReply(err.reply.code, status, err.message).class;
}

/**
 * Classifies any thrown value. SmtpClientError by kind (all deferred except a 5xx remote reply);
 * a non-temporary PostlineError (null MX, NXDOMAIN, 5.3.4, 5.6.3, ...) bounces with its reply's status;
 * anything else is deferred 4.3.0 (unknown trouble is temporary).
 */
export function verdictOfError(err: unknown): Verdict {
  if (err instanceof SmtpClientError) return verdictOfClientError(err);
  if (err instanceof PostlineError) {
    const st = (err as PostlineError & { dsnStatus?: string }).dsnStatus ?? err.reply.enhanced;
    if (!err.temporary) {
      const status = st && st.startsWith('5.') ? st : '5.0.0';
      const code = err.reply.code >= 500 ? err.reply.code : 554;
      return { outcome: 'bounced', code, dsnStatus: status, diagnostic: err.message, remote: false, bounceClass: classOfError(err, status) };
    }
    const status = st && st.startsWith('4.') ? st : '4.3.0';
    return deferred(status, err.message, classOfError(err, status));
  }
  const msg = err instanceof Error ? err.message : String(err);
  return deferred('4.3.0', `local error: ${msg}`, 'TransientFailure');
}

/** Who reports a recipient accepted by a next hop (see RecipientResult.relayed / dsnPassedOn). */
export interface Handoff {
  readonly relayed?: true;
  readonly dsnPassedOn?: true;
}

/**
 * How a recipient accepted by an SMTP next hop is reported to its sender (RFC 3461 5.2.2; Postfix
 * smtp_rcpt.c drops SUCCESS in the same case): a hop that offers DSN got the NOTIFY parameter and
 * issues any notice itself, so we owe none (`dsnPassedOn`); a hop without DSN cannot, so a
 * NOTIFY=SUCCESS recipient gets `Action: relayed` from us (`relayed`). `Action: delivered` is only
 * for final delivery, which an SMTP relay never is.
 */
export function handoffTo(hopOffersDsn: boolean, notify: readonly DsnNotify[] | undefined): Handoff {
  if (hopOffersDsn) return { dsnPassedOn: true };
  return notify?.includes('SUCCESS') ? { relayed: true } : {};
}

/**
 * The results of recipients an attempt left undecided: each gets `v`, and with `unreachable` the
 * dead-destination mark (RecipientResult.destination: no server of the next hop answered).
 */
export function undecided(pending: readonly { readonly idx: number }[], v: Verdict, unreachable: boolean): RecipientResult[] {
  return pending.map((r) => (unreachable ? { ...toResult(r.idx, v), destination: 'unreachable' as const } : toResult(r.idx, v)));
}

/** A RecipientResult from a verdict. The handoff flags are kept only on delivered results. */
export function toResult(idx: number, v: Verdict, remoteMta?: string, handoff: Handoff = {}): RecipientResult {
  const delivered = v.outcome === 'delivered';
  return {
    idx, outcome: v.outcome, code: v.code, dsnStatus: v.dsnStatus, diagnostic: v.diagnostic, remote: v.remote,
    ...(remoteMta ? { remoteMta } : {}),
    ...(!delivered && v.bounceClass ? { bounceClass: v.bounceClass } : {}),
    ...(delivered && handoff.relayed ? { relayed: true } : {}),
    ...(delivered && handoff.dsnPassedOn ? { dsnPassedOn: true } : {}),
  };
}
