/**
 * BDAT (RFC 3030 2, 4): message data in chunks of exact octet counts, no dot handling, the last
 * chunk marked LAST. Also the only way to send BODY=BINARYMIME (not offered).
 * Line endings follow the listener's bareNewline (see rfc5321/line-endings.ts): a bare LF is
 * stored as CRLF (normalize) or refuses the message (reject); a bare CR is always refused.
 * Owns: reading (or discarding) each chunk, the size limit across chunks, and the rule that a
 * failed BDAT transaction answers every later chunk with the same error until LAST or RSET.
 */
import { R, type SmtpReply } from '../../core/reply.js';
import { parseBdatArgs } from '../../rfc5321/command.js';
import type { SessionContext, Transaction } from '../context.js';
import { finishMessage, openMessage } from './message.js';
import { LineEndingCheck } from '../../rfc5321/line-endings.js';
import { dataErrorReply } from '../../rfc5321/data-reader.js';

/** Checks order and opens the message on the first chunk; returns the reply that refuses this chunk. */
async function prepare(ctx: SessionContext, size: number): Promise<SmtpReply | undefined> {
  const tx = ctx.tx;
  if (!tx) return R.badSequence('need MAIL before BDAT');
  if (tx.recipients.length === 0 && tx.dropped.length === 0) return R.badSequence('need RCPT before BDAT');
  tx.bdat = true;
  if (tx.bdatFailed) return tx.bdatFailed;
  if (tx.bdatBytes + size > ctx.config.limits.maxMessageSize) return fail(tx, R.sizeExceeded);
  if (!tx.message) {
    const opened = await openMessage(ctx, tx);
    if (!('write' in opened)) return fail(tx, opened);
  }
  return undefined;
}

function fail(tx: Transaction, reply: SmtpReply): SmtpReply {
  tx.bdatFailed = reply;
  const msg = tx.message;
  tx.message = undefined;
  void msg?.abort();
  return reply;
}

/**
 * BDAT n [LAST]: reads exactly n octets. 550 5.5.2 for a refused bare LF / CR (at LAST, or at
 * once for that chunk; every later chunk gets it too). Replies 250 "n octets received" per chunk and 250 queued
 * after LAST; 503 out of sequence (the chunk is still read and discarded); 552 5.3.4 when the total
 * exceeds limits.maxMessageSize; 501 for a bad argument (the octets cannot be skipped then).
 */
export async function bdat(ctx: SessionContext, arg: string): Promise<void> {
  const args = parseBdatArgs(arg);
  if (!args.ok) return ctx.reply(args.reply);
  const { size, last } = args.value;
  const refusal = await prepare(ctx, size);
  const tx = ctx.tx;
  let remaining = size;
  const lines = tx && !refusal ? (tx.bdatLines ??= new LineEndingCheck(ctx.listener.bareNewline)) : undefined;
  let bare: SmtpReply | undefined;
  while (remaining > 0) {
    const chunk = await ctx.readChunk(remaining);
    if (!chunk) return ctx.resetTransaction();
    remaining -= chunk.length;
    if (!lines || bare) continue; // refused: keep reading the chunk (its octet count is exact)
    const data = lines.feed(chunk);
    if (lines.error) bare = fail(tx!, dataErrorReply(lines.error));
    else if (!refusal && tx?.message) await ctx.writeMessage(tx.message, data);
  }
  if (lines && last && !bare && !lines.end()) bare = fail(tx!, dataErrorReply(lines.error!));
  const refused = refusal ?? bare;
  if (!tx || (refused && !tx.bdatFailed)) return ctx.reply(refused!); // order error: transaction unchanged
  if (!refused) tx.bdatBytes += size;
  if (!last) return ctx.reply(refused ?? R.bdatOk(size));
  await finishMessage(ctx, tx, refused);
}
