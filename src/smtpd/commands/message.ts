/**
 * Shared end of a mail transaction for DATA and BDAT (RFC 5321 4.1.1.4, RFC 3030 2): opening the
 * message in the sink and committing or abandoning it.
 * Owns: mapping sink failures to replies (a PostlineError's own reply, otherwise 451 4.3.0).
 */
import { crashPoint } from '../../core/crashpoints.js';
import { PostlineError } from '../../core/errors.js';
import { R, replyToString, type SmtpReply } from '../../core/reply.js';
import { envelopeOf, type SessionContext, type Transaction } from '../context.js';
import type { IncomingMessage } from '../types.js';

/** The reply for a failure thrown by the sink: its PostlineError reply, else 451 4.3.0. */
export function failureReply(err: unknown): SmtpReply {
  return err instanceof PostlineError ? err.reply : R.localError;
}

/** Opens the message for `tx` in the sink. @returns the message, or the reply to send instead. */
export async function openMessage(ctx: SessionContext, tx: Transaction): Promise<IncomingMessage | SmtpReply> {
  try {
    const msg = await ctx.sink.begin(ctx.info, envelopeOf(tx));
    tx.message = msg;
    return msg;
  } catch (err) {
    ctx.log.warn({ err }, 'sink refused the message');
    return failureReply(err);
  }
}

/**
 * Ends the transaction: with `refusal` the message is abandoned and `refusal` is sent; otherwise the
 * sink commits it and the reply is 250 "queued as" (only after the commit, DESIGN.md convention 5).
 */
export async function finishMessage(ctx: SessionContext, tx: Transaction, refusal?: SmtpReply): Promise<void> {
  const msg = tx.message;
  tx.message = undefined;
  if (ctx.tx === tx) ctx.tx = undefined;
  ctx.info.forwarded = undefined; // XFORWARD attributes last one transaction (the message already has them)
  if (refusal || !msg) {
    await msg?.abort();
    const r = refusal ?? R.transactionFailed;
    rejectedAtData(ctx, tx, r, msg?.queueId);
    ctx.reply(r);
    return;
  }
  try {
    const queueId = await msg.finish();
    crashPoint('after-commit-before-reply');
    ctx.messagesAccepted++;
    ctx.log.info({ queueId, from: tx.mailFrom, rcpts: tx.recipients.length }, 'message accepted');
    ctx.reply(R.queued(queueId));
  } catch (err) {
    const pe = err as { temporary?: boolean; reply?: { code: number }; message?: string };
    // A refusal the client caused (mail loop, size) is an ordinary event; a store failure is not.
    if (pe.temporary === false) ctx.log.info({ queueId: msg.queueId, reason: pe.message }, 'message refused');
    else ctx.log.warn({ err, queueId: msg.queueId }, 'message commit failed');
    const r = failureReply(err);
    rejectedAtData(ctx, tx, r, msg.queueId, err instanceof PostlineError ? err.check : undefined);
    ctx.reply(r);
  }
}

/** Reports a refusal at the end of the data to the sink (a 'message.rejected' event), with the check that refused when one did ("dmarc"). */
function rejectedAtData(ctx: SessionContext, tx: Transaction, r: SmtpReply, queueId: string | undefined, check?: string): void {
  ctx.rejected({ stage: 'data', reply: replyToString(r), mailFrom: tx.mailFrom, ...(queueId !== undefined ? { queueId } : {}), ...(check !== undefined ? { check } : {}) });
}
