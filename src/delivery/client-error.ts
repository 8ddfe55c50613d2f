/**
 * Facts about outbound SMTP trouble, raised by the client, pool and agent and classified in one
 * place (trouble.ts) into deferred or bounced.
 *
 * RFCs: RFC 5321 4.2 (replies), RFC 3207 (STARTTLS), RFC 4954 (AUTH). Owns: the error type only;
 * it decides nothing about retry vs bounce.
 */
import { PostlineError } from '../core/errors.js';
import type { SmtpReply } from '../core/reply.js';

/**
 * What went wrong:
 * connect (refused/unreachable), timeout, lost (connection closed/reset), tls (handshake failed),
 * tls-required (policy wants TLS, peer lacks it), tls-verify (policy verify/secure or MTA-STS: the
 * certificate is not trusted or does not name the host), malformed (reply grammar), reply (a non-success
 * reply ends the session, see `remoteReply`), auth (AUTH rejected), auth-insecure (refused to send
 * credentials without TLS), auth-unavailable (no common mechanism), loop (next hop is ourselves),
 * aborted (shutdown), pool (no connection slot in time), local (our own failure, e.g. body read).
 */
export type ClientTroubleKind =
  | 'connect' | 'timeout' | 'lost' | 'tls' | 'tls-required' | 'tls-verify' | 'malformed' | 'reply'
  | 'auth' | 'auth-insecure' | 'auth-unavailable' | 'loop' | 'aborted' | 'pool' | 'local';

/** Which step of the SMTP dialogue was running (RFC 5321 4.1 command names, lower case; LHLO of RFC 2033 4.1). */
export type SmtpStage =
  | 'connect' | 'greeting' | 'ehlo' | 'helo' | 'lhlo' | 'starttls' | 'auth' | 'mail' | 'rcpt' | 'data' | 'body'
  | 'bdat' | 'dot' | 'rset' | 'quit' | 'none';

export class SmtpClientError extends PostlineError {
  readonly kind: ClientTroubleKind;
  readonly stage: SmtpStage;
  /** The server's reply when the trouble is a reply. */
  readonly remoteReply?: SmtpReply;

  constructor(kind: ClientTroubleKind, stage: SmtpStage, message: string, opts: { remoteReply?: SmtpReply; cause?: unknown } = {}) {
    super(`ERR_SMTP_${kind.toUpperCase().replace(/-/g, '_')}`, message, { temporary: true, cause: opts.cause });
    this.name = 'SmtpClientError';
    this.kind = kind;
    this.stage = stage;
    if (opts.remoteReply) this.remoteReply = opts.remoteReply;
  }
}
