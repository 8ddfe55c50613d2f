/**
 * STARTTLS (RFC 3207): 220, TLS handshake, then the session starts over without EHLO (4.2).
 * Owns: the order checks; the handshake itself and the discarding of pipelined plaintext
 * (CVE-2011-0411) are done by the session's startTls().
 */
import { R } from '../../core/reply.js';
import type { SessionContext } from '../context.js';

/**
 * STARTTLS: 220 2.0.0 then the handshake. 501 with an argument, 503 when TLS is already active,
 * 502 when the listener does not offer STARTTLS, 454 4.7.0 when no TLS material is available.
 */
export async function starttls(ctx: SessionContext, arg: string): Promise<void> {
  if (arg) return ctx.reply(R.paramSyntax('STARTTLS takes no argument'));
  if (ctx.info.tls) return ctx.reply(R.badSequence('TLS already active'));
  if (ctx.listener.tls !== 'starttls') return ctx.reply(R.notImplemented);
  const secure = ctx.secureContext();
  if (!secure) return ctx.reply(R.tlsUnavailable);
  await ctx.startTls(secure);
}
