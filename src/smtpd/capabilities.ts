/**
 * What the server offers in its EHLO reply (RFC 5321 4.1.1.1) and when: PIPELINING (RFC 2920),
 * SIZE (RFC 1870), 8BITMIME (RFC 6152), BINARYMIME and CHUNKING (RFC 3030), SMTPUTF8 (RFC 6531),
 * ENHANCEDSTATUSCODES (RFC 2034), DSN (RFC 3461), STARTTLS (RFC 3207), AUTH (RFC 4954), XCLIENT
 * and XFORWARD (Postfix).
 *
 * Owns: the rules "STARTTLS only on starttls listeners before TLS", "AUTH only under TLS unless
 * the listener allows plaintext AUTH" and "XCLIENT / XFORWARD only to the clients policy allows".
 */
import type { SessionContext } from './context.js';
import { XCLIENT_ATTRIBUTES, XFORWARD_ATTRIBUTES } from '../rfc5321/xclient.js';

/** SASL mechanisms offered (RFC 4616 PLAIN, draft LOGIN). */
export const AUTH_MECHANISMS = ['PLAIN', 'LOGIN'] as const;

/** True when STARTTLS is offered now: a starttls listener, TLS material present, not yet TLS. */
export function starttlsOffered(ctx: SessionContext): boolean {
  return ctx.listener.tls === 'starttls' && !ctx.info.tls && ctx.secureContext() !== undefined;
}

/** True when AUTH is offered now: under TLS, or when the listener allows plaintext AUTH. */
export function authOffered(ctx: SessionContext): boolean {
  return ctx.info.tls !== undefined || ctx.listener.allowPlaintextAuth;
}

/** The EHLO keyword lines (without the greeting line). */
export function ehloKeywords(ctx: SessionContext): string[] {
  const k = ['PIPELINING', `SIZE ${ctx.config.limits.maxMessageSize}`, '8BITMIME', 'CHUNKING', 'SMTPUTF8', 'ENHANCEDSTATUSCODES', 'DSN'];
  if (starttlsOffered(ctx)) k.push('STARTTLS');
  if (authOffered(ctx) && !ctx.info.authUser) k.push(`AUTH ${AUTH_MECHANISMS.join(' ')}`);
  if (ctx.policy.mayXclient?.(ctx.info)) k.push(`XCLIENT ${XCLIENT_ATTRIBUTES.join(' ')}`);
  if (ctx.policy.mayXforward?.(ctx.info)) k.push(`XFORWARD ${XFORWARD_ATTRIBUTES.join(' ')}`);
  return k;
}
