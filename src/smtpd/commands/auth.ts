/**
 * AUTH (RFC 4954) with the SASL mechanisms PLAIN (RFC 4616) and LOGIN, with or without an initial
 * response. "*" cancels (501), bad base64 gives 501 5.5.2, bad credentials 535 5.7.8.
 * Owns: the challenge/response exchange and the AUTH order rules; verifying the password is the
 * policy's job.
 */
import { R, replyToString } from '../../core/reply.js';
import { AUTH_LINE_LIMIT } from '../../rfc5321/command.js';
import { authOffered } from '../capabilities.js';
import type { SessionContext } from '../context.js';

interface Credentials {
  readonly user: string;
  readonly password: string;
  /** PLAIN's authorization identity, when given. */
  readonly authz?: string;
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Decodes a response line ("=" is the empty initial response, RFC 4954 4); replies on error. */
function decode(ctx: SessionContext, text: string): Buffer | undefined {
  if (text === '*') return void ctx.reply(R.authCancelled);
  if (text === '=') return Buffer.alloc(0);
  if (!BASE64.test(text)) return void ctx.reply(R.authBadBase64);
  return Buffer.from(text, 'base64');
}

/** Sends a 334 challenge and reads the client's response; replies and returns undefined on error. */
async function ask(ctx: SessionContext, challenge: string): Promise<Buffer | undefined> {
  ctx.reply(R.authChallenge(Buffer.from(challenge).toString('base64')));
  const line = await ctx.readLine(AUTH_LINE_LIMIT);
  if (!line) return undefined;
  if (line.kind === 'tooLong') return void ctx.reply(R.authLineTooLong);
  if (line.kind === 'bare') return void ctx.reply(R.syntaxError);
  const text = line.line.toString('latin1');
  return decode(ctx, text);
}

/** PLAIN (RFC 4616 2): [authzid] NUL authcid NUL passwd; a different authzid is not allowed. */
async function plain(ctx: SessionContext, initial: string | undefined): Promise<Credentials | undefined> {
  const raw = initial === undefined ? await ask(ctx, '') : decode(ctx, initial);
  if (!raw) return undefined;
  const parts = raw.toString('utf8').split('\0');
  if (parts.length !== 3 || !parts[1]) return void ctx.reply(R.paramSyntax('malformed PLAIN response'));
  const [authz, user, password] = parts as [string, string, string];
  return { user, password, ...(authz ? { authz } : {}) };
}

/** LOGIN: username and password, each base64 after a 334 prompt (or the username as initial response). */
async function login(ctx: SessionContext, initial: string | undefined): Promise<Credentials | undefined> {
  const user = initial === undefined ? await ask(ctx, 'Username:') : decode(ctx, initial);
  if (!user) return undefined;
  const password = await ask(ctx, 'Password:');
  if (!password) return undefined;
  return { user: user.toString('utf8'), password: password.toString('utf8') };
}

/**
 * The one line per failed AUTH, at warn level, for operators and fail2ban: client IP (IPv4-mapped
 * addresses as plain IPv4) and port, the user name tried, the mechanism; `listener` and `sid` come
 * from the session's logger. Example (JSON): {"level":40,...,"listener":"submission","sid":"…",
 * "client":"192.0.2.7","port":51234,"user":"alice","mech":"PLAIN","msg":"authentication failed"}
 */
function logFailure(ctx: SessionContext, mech: string, user: string, check?: string): void {
  const client = ctx.info.clientAddress.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '');
  ctx.log.warn({ client, port: ctx.info.clientPort, user, mech, ...(check ? { check } : {}) }, check ? 'authentication refused' : 'authentication failed');
}

/**
 * AUTH mechanism [initial-response]: 235 2.7.0 on success. 503 before EHLO, when already
 * authenticated or inside a transaction; 538 5.7.11 (or 502 on a listener without TLS) when AUTH is
 * not offered in plaintext; 504 for other mechanisms; 535 5.7.8 bad credentials; 454 4.7.0 when
 * the check itself failed.
 */
export async function auth(ctx: SessionContext, arg: string): Promise<void> {
  if (!ctx.info.esmtp) return ctx.reply(R.badSequence('send EHLO first'));
  if (ctx.info.authUser) return ctx.reply(R.badSequence('already authenticated'));
  if (ctx.tx) return ctx.reply(R.badSequence('AUTH not allowed during a mail transaction'));
  if (!authOffered(ctx)) return ctx.reply(ctx.listener.tls === 'none' ? R.notImplemented : R.encryptionRequired);
  const [mech = '', initial, ...extra] = arg.split(' ');
  if (!mech || extra.length > 0) return ctx.reply(R.paramSyntax('expected AUTH mechanism [initial-response]'));
  const m = mech.toUpperCase();
  if (m !== 'PLAIN' && m !== 'LOGIN') return ctx.reply(R.authMechUnsupported);
  const creds = m === 'PLAIN' ? await plain(ctx, initial) : await login(ctx, initial);
  if (!creds) return;
  let valid = false;
  if (creds.authz === undefined || creds.authz === creds.user) { // acting as another user is not allowed
    try {
      if (ctx.policy.authenticateSession) {
        const v = await ctx.policy.authenticateSession(ctx.info, creds.user, creds.password);
        if (!v.ok && v.reply) { // throttled before any check: 454 4.7.0
          logFailure(ctx, m, creds.user, v.reply.check);
          ctx.rejected({ stage: 'auth', reply: replyToString(v.reply) }, v.reply);
          return ctx.reply(v.reply);
        }
        valid = v.ok;
      } else {
        valid = await ctx.policy.authenticate(creds.user, creds.password);
      }
    } catch (err) {
      ctx.log.warn({ err: (err as Error).message }, 'authentication check failed');
      return ctx.reply(R.authTempFail);
    }
  }
  if (!valid) {
    logFailure(ctx, m, creds.user);
    return ctx.reply(R.authInvalid);
  }
  ctx.info.authUser = creds.user;
  ctx.log.info({ user: creds.user, mech: m }, 'authenticated');
  ctx.reply(R.authOk);
}
