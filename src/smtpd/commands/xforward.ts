/**
 * XFORWARD (postfix.org XFORWARD_README): an authorised client (a content filter re-injecting mail)
 * passes the up-stream client's attributes for the next transaction's logs and events.
 * Owns: the order checks and merging the attributes into SessionInfo.forwarded. They change no
 * check and not the Received field (Postfix records them as logging attributes only); the session
 * forgets them at the end of the transaction (DOT or RSET), and on EHLO, STARTTLS and XCLIENT.
 */
import { R } from '../../core/reply.js';
import type { ForwardedFacts } from '../types.js';
import { parseXforward } from '../../rfc5321/xclient.js';
import type { SessionContext } from '../context.js';

/**
 * XFORWARD attribute=value ...: 250 2.0.0. The first one of a transaction starts from "all
 * unavailable"; each sets the attributes it names and [UNAVAILABLE] erases one. 503 5.5.1 inside a
 * mail transaction, 501 5.5.4 for bad syntax, 550 5.7.0 for a client not in policy.xforwardNetworks.
 */
export function xforward(ctx: SessionContext, arg: string): void {
  if (ctx.tx) return ctx.reply(R.xclientInTransaction);
  if (!arg.trim()) return ctx.reply(R.paramSyntax('XFORWARD needs attribute=value ...'));
  if (!ctx.policy.mayXforward?.(ctx.info)) {
    ctx.log.warn({ client: ctx.info.clientAddress }, 'XFORWARD from a client not in policy.xforwardNetworks');
    return ctx.reply(R.xclientDenied);
  }
  const parsed = parseXforward(arg);
  if (!parsed.ok) return ctx.reply(parsed.reply);
  const next: Record<string, string> = { ...(ctx.info.forwarded ?? {}) };
  for (const [k, v] of Object.entries(parsed.value)) {
    if (v === null || v === undefined) delete next[k];
    else next[k] = v;
  }
  ctx.info.forwarded = next as ForwardedFacts;
  ctx.reply(R.ok);
}
