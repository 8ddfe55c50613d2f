/**
 * DATA (RFC 5321 4.1.1.4, 3.3): 354, then the body up to CRLF "." CRLF through the DataReader
 * (dot-unstuffing, bare CR/LF rules, line and size limits), streamed into the sink.
 * Owns: the order checks for DATA and pumping the body with backpressure.
 */
import { R, type SmtpReply } from '../../core/reply.js';
import { DataReader, dataErrorReply } from '../../rfc5321/data-reader.js';
import type { SessionContext } from '../context.js';
import { finishMessage, openMessage } from './message.js';

/** Why DATA is out of sequence now, or undefined. */
function dataRefusal(ctx: SessionContext, arg: string): SmtpReply | undefined {
  const tx = ctx.tx;
  if (arg) return R.paramSyntax('DATA takes no argument');
  if (!tx) return R.badSequence('need MAIL before DATA');
  if (tx.bdat) return R.badSequence('DATA after BDAT');
  if (tx.recipients.length === 0 && tx.dropped.length === 0) return R.badSequence('need RCPT before DATA');
  if (tx.params.body === 'BINARYMIME') return R.badSequence('BODY=BINARYMIME requires BDAT');
  return undefined;
}

/**
 * DATA: 354, then reads the body and replies 250 queued / 550 5.5.2 bare LF (bareNewline: reject)
 * or bare CR / 554 5.6.0 line too long / 552 5.3.4 size / the sink's reply. Lines ending in a bare LF
 * are stored with CRLF when the listener's bareNewline is normalize (the default). Bytes after the end go back to the input.
 */
export async function data(ctx: SessionContext, arg: string): Promise<void> {
  const refusal = dataRefusal(ctx, arg);
  if (refusal) return ctx.reply(refusal);
  const tx = ctx.tx!;
  const opened = await openMessage(ctx, tx);
  if (!('write' in opened)) {
    await ctx.resetTransaction();
    return ctx.reply(opened);
  }
  ctx.reply(R.startData);
  const { maxLineLength, maxMessageSize } = ctx.config.limits;
  const reader = new DataReader({ maxLineLength, maxMessageSize, bareNewline: ctx.listener.bareNewline });
  for (;;) {
    const chunk = await ctx.readChunk();
    if (!chunk) return ctx.resetTransaction(); // connection gone or timed out
    const res = reader.feed(chunk);
    if (reader.error === undefined && res.data.length) await ctx.writeMessage(opened, res.data);
    if (res.done) {
      if (res.rest && res.rest.length) ctx.unread(res.rest);
      break;
    }
  }
  if (reader.error) ctx.log.info({ reason: reader.error }, 'message refused');
  await finishMessage(ctx, tx, reader.error ? dataErrorReply(reader.error) : undefined);
}
