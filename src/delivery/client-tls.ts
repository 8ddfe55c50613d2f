/**
 * The socket side of an outbound SMTP connection: TCP connect with a timeout, the TLS handshake
 * (implicit or after STARTTLS) and the facts of a TLS session (version, cipher, certificate verdict).
 *
 * RFCs: RFC 3207 (STARTTLS), RFC 8314 (implicit TLS), RFC 6125 (names, see tls-policy.ts).
 * Owns: node:net / node:tls calls of the client; the SMTP dialogue is smtp-client.ts's.
 * The handshake never rejects an untrusted certificate itself (rejectUnauthorized: false): the
 * chain and name are judged afterwards (tls-policy.ts judgeCertificate), so that every session
 * reports whether it was verified and a refusal can say exactly why.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { SmtpClientError } from './client-error.js';
import { judgeCertificate, type ConnectionTls } from './tls-policy.js';

/** Facts of a TLS session (RecipientResult.tls, the recipient.* events). */
export interface TlsFacts {
  readonly protocol: string;
  readonly cipher: string;
  /** Certificate chain trusted and a name of ConnectionTls.names matched. */
  readonly verified: boolean;
  /** Why not verified, one line. */
  readonly reason?: string;
}

export interface SocketOptions {
  readonly address: string;
  readonly port: number;
  /** A unix socket to connect to instead of address and port (LMTP, RFC 2033). */
  readonly path?: string;
  readonly localAddress?: string;
  readonly connectTimeoutMs: number;
  /** "host[addr]:port" for messages. */
  readonly where: string;
}

/**
 * node:tls options for a handshake under `t` (plus `extra`, e.g. from tests). Node's own name
 * check is off so that `authorized` speaks of the chain alone; the names are judged afterwards
 * against ConnectionTls.names, which may differ from the SNI name (secure, servername).
 */
export function tlsOptionsFor(t: ConnectionTls, extra?: ConnectionOptions): ConnectionOptions {
  return {
    rejectUnauthorized: false,
    checkServerIdentity: () => undefined,
    ...(t.servername ? { servername: t.servername } : {}),
    ...(t.ca ? { ca: [...t.ca] } : {}),
    ...extra,
  };
}

/**
 * TCP connect, or a unix socket connect when `o.path` is given (then the implicit TLS handshake
 * when `tls` is given). @throws SmtpClientError connect/timeout/tls
 */
export async function connectSocket(o: SocketOptions, tls?: ConnectionOptions): Promise<Socket> {
  const sock = await new Promise<Socket>((resolve, reject) => {
    const s = o.path !== undefined ? netConnect({ path: o.path })
      : netConnect({ host: o.address, port: o.port, ...(o.localAddress ? { localAddress: o.localAddress } : {}) });
    const timer = setTimeout(() => {
      s.destroy();
      reject(new SmtpClientError('timeout', 'connect', `connect to ${o.where}: timed out after ${o.connectTimeoutMs} ms`));
    }, o.connectTimeoutMs);
    s.once('connect', () => { clearTimeout(timer); s.removeAllListeners('error'); resolve(s); });
    s.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      s.destroy();
      const why = err.code === 'ECONNREFUSED' ? 'Connection refused' : err.code === 'ENOENT' ? 'No such file or directory' : err.message;
      reject(new SmtpClientError('connect', 'connect', `connect to ${o.where}: ${why}`, { cause: err }));
    });
  });
  if (o.path === undefined) sock.setNoDelay(true);
  if (!tls) return sock;
  try {
    return await handshakeTls({ ...tls, socket: sock }, o.connectTimeoutMs);
  } catch (err) {
    sock.destroy();
    throw new SmtpClientError('tls', 'connect', `TLS handshake with ${o.where} failed: ${(err as Error).message}`, { cause: err });
  }
}

/** One TLS client handshake with a timeout. Rejects with the handshake's own error. */
export function handshakeTls(options: ConnectionOptions, timeoutMs: number): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const t = tlsConnect(options);
    const timer = setTimeout(() => { t.destroy(); reject(new Error(`timed out after ${timeoutMs} ms`)); }, timeoutMs);
    t.once('secureConnect', () => { clearTimeout(timer); t.removeAllListeners('error'); t.setNoDelay(true); resolve(t); });
    t.once('error', (err) => { clearTimeout(timer); t.destroy(); reject(err); });
  });
}

/** The facts of an established TLS session under `t`. Never throws. */
export function sessionFacts(sock: TLSSocket, t: ConnectionTls): TlsFacts {
  const v = judgeCertificate(sock.authorized, sock.authorizationError, sock.getPeerCertificate?.(), t.names);
  return {
    protocol: sock.getProtocol?.() ?? 'unknown', cipher: sock.getCipher?.()?.name ?? 'unknown', verified: v.verified,
    ...(v.reason ? { reason: v.reason } : {}),
  };
}
