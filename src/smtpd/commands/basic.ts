/**
 * The small commands: RSET (RFC 5321 4.1.1.5), NOOP (4.1.1.9), QUIT (4.1.1.10), VRFY (4.1.1.6,
 * answered 252 per 3.5.3), HELP (4.1.1.8) and EXPN (502, not implemented).
 */
import { R } from '../../core/reply.js';
import type { SessionContext } from '../context.js';

/** RSET: ends the transaction; 250. An argument gives 501 5.5.4. */
export async function rset(ctx: SessionContext, arg: string): Promise<void> {
  if (arg) return ctx.reply(R.paramSyntax('RSET takes no argument'));
  await ctx.resetTransaction();
  ctx.reply(R.resetOk);
}

/** NOOP [string]: 250, nothing else changes. */
export function noop(ctx: SessionContext): void {
  ctx.reply(R.noopOk);
}

/** QUIT: 221 and close (RFC 5321 4.1.1.10). */
export function quit(ctx: SessionContext, arg: string): void {
  if (arg) return ctx.reply(R.paramSyntax('QUIT takes no argument'));
  ctx.close(R.bye(ctx.config.hostname));
}

/** VRFY string: 252 (we do not disclose mailboxes, RFC 5321 3.5.3); 501 without an argument. */
export function vrfy(ctx: SessionContext, arg: string): void {
  ctx.reply(arg ? R.vrfy : R.paramSyntax('VRFY needs an argument'));
}

/** HELP [topic]: 214. */
export function help(ctx: SessionContext): void {
  ctx.reply(R.help);
}

/** EXPN: 502 (mailing lists are not disclosed). */
export function expn(ctx: SessionContext): void {
  ctx.reply(R.notImplemented);
}
