/**
 * MAIL FROM (RFC 5321 4.1.1.2) with ESMTP parameters (SIZE, BODY, SMTPUTF8, RET, ENVID, AUTH).
 * Owns: starting a mail transaction after the order, AUTH (submission) and limit checks and policy.
 */
import { R, replyToString } from '../../core/reply.js';
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
    return ctx.reply(!authOffered(ctx) && starttlsOffered(ctx) ? R.mustIssueStarttls : R.authRequired);
  }
  if (ctx.messagesAccepted >= ctx.config.limits.maxMessagesPerSession && !sessionUncapped(ctx)) return ctx.close(R.tooManyMessages);
  const parsed = parseMailFrom(arg, { esmtp: ctx.info.esmtp, maxMessageSize: ctx.config.limits.maxMessageSize });
  if (!parsed.ok) return ctx.reply(parsed.reply);
  const { reversePath, params } = parsed.value;
  const verdict = await ctx.policy.checkMailFrom(ctx.info, reversePath, params.size);
  if (verdict) {
    const check = (verdict as PolicyReply).check;
    if (check !== undefined) ctx.rejected({ stage: 'mail', reply: replyToString(verdict), mailFrom: reversePath }, verdict);
    return ctx.reply(verdict);
  }
  ctx.tx = { mailFrom: reversePath, params, recipients: [], bdat: false, bdatBytes: 0 };
  ctx.reply(R.senderOk);
}

/**
 * Authenticated and trusted clients (relay.trustedNetworks) may send any number of messages over
 * one session (persistent SMTP, as with Postfix, which has no such cap).
 */
function sessionUncapped(ctx: SessionContext): boolean {
  return ctx.info.authUser !== undefined || ctx.policy.mayRelay?.(ctx.info) === true;
}
