/**
 * MAIL FROM (RFC 5321 4.1.1.2) with ESMTP parameters (SIZE, BODY, SMTPUTF8, RET, ENVID, AUTH).
 * Owns: starting a mail transaction after the order, AUTH (submission) and limit checks and policy.
 */
import { R, replyToString, type SmtpReply } from '../../core/reply.js';
import type { PolicyReply } from '../types.js';
import { parseMailFrom } from '../../rfc5321/command.js';
import { authOffered, starttlsOffered } from '../capabilities.js';
import type { SessionContext } from '../context.js';

/**
 * MAIL FROM:<reverse-path> [params]: 250 2.1.0 and a new transaction. Replies 503 without EHLO/HELO
 * or inside a transaction; on a submission listener without AUTH (RFC 4954 6) 530 5.7.0 "Must issue
 * a STARTTLS command first" while AUTH is not offered because TLS is not up yet (Postfix's answer),
 * else 530 5.7.0 "Authentication required"; 421 after limits.maxMessagesPerSession (untrusted,
 * unauthenticated sessions only); and the parser's or the policy's reply otherwise.
 */
export async function mail(ctx: SessionContext, arg: string): Promise<void> {
  if (!ctx.info.heloName) return ctx.reply(R.badSequence('send EHLO or HELO first'));
  if (ctx.tx) return ctx.reply(R.badSequence('nested MAIL command'));
  if (ctx.listener.role === 'submission' && !ctx.info.authUser) {
    return refuse(ctx, !authOffered(ctx) && starttlsOffered(ctx) ? R.mustIssueStarttls : R.authRequired);
  }
  if (ctx.messagesAccepted >= ctx.config.limits.maxMessagesPerSession && !sessionUncapped(ctx)) {
    rejected(ctx, R.tooManyMessages);
    return ctx.close(R.tooManyMessages);
  }
  const parsed = parseMailFrom(arg, { esmtp: ctx.info.esmtp, maxMessageSize: ctx.config.limits.maxMessageSize });
  if (!parsed.ok) return ctx.reply(parsed.reply);
  const { reversePath, params } = parsed.value;
  const verdict = await ctx.policy.checkMailFrom(ctx.info, reversePath, params.size);
  if (verdict) return refuse(ctx, verdict, reversePath);
  ctx.tx = { mailFrom: reversePath, params, recipients: [], dropped: [], bdat: false, bdatBytes: 0 };
  ctx.reply(R.senderOk);
}

/** A refusal of MAIL by rule (not a syntax error): a message.rejected event, then the reply. */
function refuse(ctx: SessionContext, r: SmtpReply | PolicyReply, mailFrom?: string): void {
  rejected(ctx, r, mailFrom);
  ctx.reply(r);
}

function rejected(ctx: SessionContext, r: SmtpReply | PolicyReply, mailFrom?: string): void {
  ctx.rejected({ stage: 'mail', reply: replyToString(r), ...(mailFrom !== undefined ? { mailFrom } : {}) }, r as PolicyReply);
}

/**
 * Authenticated and trusted clients (relay.trustedNetworks) may send any number of messages over
 * one session (persistent SMTP, as with Postfix, which has no such cap).
 */
function sessionUncapped(ctx: SessionContext): boolean {
  return ctx.info.authUser !== undefined || ctx.policy.mayRelay?.(ctx.info) === true;
}
