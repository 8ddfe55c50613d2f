/**
 * EHLO and HELO (RFC 5321 4.1.1.1): identify the client, reset any transaction, list extensions.
 * Owns: the greeting replies and the esmtp flag of the session.
 */
import { R } from '../../core/reply.js';
import { parseHeloArg } from '../../rfc5321/command.js';
import { ehloKeywords } from '../capabilities.js';
import type { SessionContext } from '../context.js';

async function greet(ctx: SessionContext, arg: string, esmtp: boolean): Promise<void> {
  const name = parseHeloArg(arg);
  if (!name.ok) return ctx.reply(name.reply);
  await ctx.resetTransaction();
  ctx.info.heloName = ctx.xclient.helo ?? name.value; // an XCLIENT HELO is kept (XCLIENT_README)
  ctx.info.esmtp = esmtp;
  const host = ctx.config.hostname;
  ctx.reply(esmtp ? R.ehlo(host, ehloKeywords(ctx)) : R.helo(host));
}

/** EHLO domain (RFC 5321 4.1.1.1): 250 with the extension keywords; 501 5.5.4 without a name. */
export const ehlo = (ctx: SessionContext, arg: string): Promise<void> => greet(ctx, arg, true);

/** HELO domain (RFC 5321 4.1.1.1): 250; no ESMTP parameters afterwards. */
export const helo = (ctx: SessionContext, arg: string): Promise<void> => greet(ctx, arg, false);
