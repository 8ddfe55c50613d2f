/**
 * XCLIENT (postfix.org XCLIENT_README): an authorised client (a proxy, a content filter, a test
 * tool) names the client it speaks for, and the session starts over as that client's.
 * Owns: the order checks (503 inside a transaction, 501 syntax, 550 unauthorised: the Postfix
 * order), applying the attributes to the session facts and what survives the reset (HELO, PROTO,
 * LOGIN); the new start itself (connection count, policy's checks, the new 220) is the session's
 * readmit().
 */
import { R, replyToString } from '../../core/reply.js';
import { parseXclient } from '../../rfc5321/xclient.js';
import type { SessionContext } from '../context.js';

/**
 * XCLIENT attribute=value ...: on success a new greeting (220, or the refusal policy gives the new
 * address: 554 then only QUIT, 421 and close) and the client must send EHLO again. 503 5.5.1
 * inside a mail transaction, 501 5.5.4 for bad syntax or an unknown attribute, 550 5.7.0 for a
 * client not in policy.xclientNetworks. Attributes not named keep their values; LOGIN makes the
 * session authenticated as that user (no password: the XCLIENT client vouches for it); TLS, when
 * up, stays up.
 */
export async function xclient(ctx: SessionContext, arg: string): Promise<void> {
  if (ctx.tx) return ctx.reply(R.xclientInTransaction);
  if (!arg.trim()) return ctx.reply(R.paramSyntax('XCLIENT needs attribute=value ...'));
  if (!ctx.policy.mayXclient?.(ctx.info)) {
    ctx.log.warn({ client: ctx.info.clientAddress }, 'XCLIENT from a client not in policy.xclientNetworks');
    ctx.rejected({ stage: 'connect', reply: replyToString(R.xclientDenied), check: 'xclient' });
    return ctx.reply(R.xclientDenied);
  }
  const parsed = parseXclient(arg);
  if (!parsed.ok) return ctx.reply(parsed.reply);
  const a = parsed.value;
  const info = ctx.info;
  const before = { client: info.clientAddress, port: info.clientPort };
  if (info.proxy?.via !== 'xclient') info.proxy = { address: info.clientAddress, port: info.clientPort, via: 'xclient' };
  if (a.addr !== undefined) info.clientAddress = a.addr ?? 'unknown';
  if (a.port !== undefined) info.clientPort = a.port ?? 0;
  if (a.destaddr !== undefined) info.localAddress = a.destaddr ?? 'unknown';
  if (a.destport !== undefined) info.localPort = a.destport ?? 0;
  if (a.name !== undefined) {
    if (a.name === null) delete info.clientName;
    else info.clientName = a.name;
  }
  if (a.proto) info.clientProto = a.proto;
  if (a.helo !== undefined) ctx.xclient.helo = a.helo ?? undefined;
  if (a.login !== undefined) ctx.xclient.login = a.login ?? undefined;
  await ctx.resetTransaction();
  info.heloName = ctx.xclient.helo;
  info.esmtp = false;
  info.authUser = ctx.xclient.login;
  ctx.log.info({
    from: before.client, client: info.clientAddress, port: info.clientPort,
    ...(info.clientName ? { name: info.clientName } : {}), ...(info.heloName ? { helo: info.heloName } : {}),
    ...(info.authUser ? { user: info.authUser } : {}),
  }, 'XCLIENT: the session now speaks for another client');
  await ctx.readmit();
}
