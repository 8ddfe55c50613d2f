/**
 * RCPT TO (RFC 5321 4.1.1.3) with DSN parameters NOTIFY and ORCPT (RFC 3461 4.1, 4.2).
 * Owns: adding forward-paths to the transaction after the limit check and the policy's decision
 * (which may rewrite the recipient, e.g. postmaster). A refused RCPT leaves the transaction intact.
 */
import { R, replyToString } from '../../core/reply.js';
import type { Recipient } from '../../core/envelope.js';
import { parseRcptTo } from '../../rfc5321/command.js';
import type { SessionContext } from '../context.js';

/** 452 4.5.3 replies past the recipient limit that do not count as errors. */
export const OVERSHOOT_LIMIT = 1000;

/**
 * RCPT TO:<forward-path> [params]: 250 2.1.5. Replies 503 before MAIL or after the data began,
 * 452 4.5.3 beyond limits.maxRecipients, and the parser's or the policy's reply otherwise.
 */
export async function rcpt(ctx: SessionContext, arg: string): Promise<void> {
  const tx = ctx.tx;
  if (!tx) return ctx.reply(R.badSequence('need MAIL before RCPT'));
  if (tx.bdat || tx.message) return ctx.reply(R.badSequence('RCPT after the message data began'));
  const parsed = parseRcptTo(arg, { esmtp: ctx.info.esmtp, smtputf8: tx.params.smtputf8 });
  if (!parsed.ok) return ctx.reply(parsed.reply);
  if (tx.recipients.length + tx.dropped.length >= ctx.config.limits.maxRecipients) {
    // RFC 5321 4.5.3.1.10: 452 and carry on, so a pipelining client still sends DATA for the
    // accepted ones. Only an overshoot past OVERSHOOT_LIMIT counts toward limits.maxErrors
    // (like Postfix's smtpd_recipient_overshoot_limit).
    tx.overshoot = (tx.overshoot ?? 0) + 1;
    return ctx.reply(tx.overshoot > OVERSHOOT_LIMIT ? R.tooManyRecipientsError : R.tooManyRecipients);
  }
  const { forwardPath, params } = parsed.value;
  const wanted: Recipient = {
    address: forwardPath,
    ...(params.notify ? { notify: params.notify } : {}),
    ...(params.orcpt ? { orcpt: params.orcpt } : {}),
  };
  const decision = await ctx.policy.checkRecipient(ctx.info, wanted, tx.mailFrom);
  if (!decision.accept) {
    ctx.rejected({ stage: 'rcpt', reply: replyToString(decision.reply), mailFrom: tx.mailFrom, recipient: forwardPath }, decision.reply);
    return ctx.reply(decision.reply);
  }
  if (ctx.tx !== tx) return; // the session was reset while the policy was thinking
  // Policy's drop (a suppressed recipient, drop mode): 250, and cleanup records it instead of queueing it.
  if (decision.drop) tx.dropped.push(decision.drop);
  else tx.recipients.push(decision.recipient);
  ctx.reply(R.recipientOk);
}
