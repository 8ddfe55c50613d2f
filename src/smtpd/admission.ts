/**
 * Admitting a client (RFC 5321 3.1 greeting, 4.3.2 connection replies): the policy's connection
 * checks and the 220, 554 (then only QUIT) or 421 (closed) that follows. Runs at connect and again
 * after a successful XCLIENT (Postfix XCLIENT_README: "the server resets state to the initial SMTP
 * greeting protocol stage"), so the access list, rates, blocklists and limits see the new address.
 *
 * Owns: the order of those checks and the pregreet pause (postscreen): with a pause from policy
 * the first banner line ("220-") goes out at once and the final line after it; a client that
 * talked meanwhile is reported to policy. Session state stays in session.ts (AdmissionHost).
 */
import type { Logger } from 'pino';
import { R, replyToString, type SmtpReply } from '../core/reply.js';
import type { ConnectionSlot } from './connection-limiter.js';
import type { PolicyReply, Rejection, SessionInfo, SessionLimits, SmtpPolicy } from './types.js';

/** What admission needs of the session. */
export interface AdmissionHost {
  readonly info: SessionInfo;
  readonly policy: SmtpPolicy;
  readonly hostname: string;
  readonly log: Logger;
  /** The connection's count in the limiter (moved to the new address by XCLIENT). */
  readonly slot: ConnectionSlot | undefined;
  /** True once the session is closing or closed. */
  closed(): boolean;
  /** Writes text at once, outside reply batching (the first banner line). */
  writeNow(text: string): void;
  /** Waits `ms` (or until the connection closes), input still buffered. */
  pause(ms: number): Promise<void>;
  /** True when the client sent something (or closed) before the final greeting line. */
  talked(): boolean;
  /** Drops buffered input (what a refused pregreeting client sent is never read as commands). */
  discardInput(): void;
  reply(r: SmtpReply): void;
  close(r?: SmtpReply): void;
  rejected(r: Rejection, policyReply?: PolicyReply): void;
  /** After a 554 instead of 220 (true): only QUIT is accepted from now on. */
  quitOnly(on: boolean): void;
  /** The tarpit and data-rate limits policy gives this client. */
  setLimits(l: SessionLimits): void;
}

/**
 * Runs the connection checks and answers: 220 greeting (true), 554 (true: the session goes on in
 * QUIT-only mode) or 421 / another refusal (false: closed).
 * @param opts.refusal a reply decided before any check (too many connections): sent and closed.
 * @param opts.pause false after XCLIENT: no pregreet pause mid-session.
 */
export async function admit(host: AdmissionHost, opts: { readonly refusal?: SmtpReply; readonly pause: boolean }): Promise<boolean> {
  const { info, policy } = host;
  const refusal = opts.refusal ?? policy.checkConnect?.(info);
  if (refusal) {
    host.log.info({ client: info.clientAddress, reply: replyToString(refusal) }, 'connection refused');
    host.close(refusal);
    return false;
  }
  const plan = policy.openSession?.(info);
  let r: PolicyReply | undefined = plan && 'code' in plan ? plan : undefined;
  const pauseMs = opts.pause && plan && !('code' in plan) ? plan.greetPauseMs : 0;
  if (!r && pauseMs > 0) {
    host.writeNow(`220-${host.hostname} ESMTP Postline\r\n`);
    await host.pause(pauseMs);
    if (host.closed()) return false;
  }
  if (!r && policy.checkGreeting) r = await policy.checkGreeting(info, { pregreet: pauseMs > 0 && host.talked() });
  if (host.closed()) return false;
  if (r) {
    host.log.info({ client: info.clientAddress, reply: replyToString(r), check: r.check }, 'connection refused');
    host.rejected({ stage: 'connect', reply: replyToString(r) }, r);
    if (r.code !== 554) {
      host.close(r);
      return false;
    }
    host.quitOnly(true);
    host.discardInput();
    host.reply(r);
    return true;
  }
  host.setLimits(policy.sessionLimits?.(info) ?? {});
  host.reply(R.greeting(host.hostname));
  return true;
}

/**
 * After XCLIENT changed the client's facts (commands/xclient.ts): the connection is counted under
 * the new address (421 4.7.0 when that one is at limits.maxConnectionsPerIp), policy forgets the
 * old client and admits the new one from the start (access list, rates, blocklists, limits), and
 * the new greeting goes out (220, or 554 then only QUIT, or 421 and closed), without a pregreet pause.
 */
export async function readmit(host: AdmissionHost): Promise<void> {
  try { host.policy.closeSession?.(host.info); } catch { /* never throws */ }
  host.setLimits({});
  host.quitOnly(false);
  const moved = host.slot?.move(host.info.clientAddress) ?? true;
  await admit(host, { ...(moved ? {} : { refusal: R.tooManyConnections }), pause: false });
}
