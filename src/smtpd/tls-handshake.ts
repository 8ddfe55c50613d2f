/**
 * The server side of a TLS handshake on an accepted socket (STARTTLS, RFC 3207, or implicit TLS,
 * RFC 8314): the server TLSSocket made with the context for the ClientHello's server name (SNI,
 * RFC 6066 3), and the wait for the handshake, resolving with the negotiated facts or with the
 * reason it failed (error, EOF, timeout).
 */
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import type { TlsFacts } from '../core/session.js';
import { peekClientHelloName } from './socket-peek.js';
import type { TlsServerSetup } from './tls-context.js';

/**
 * Wraps `plain` (no reader attached) in a server TLSSocket. With several server names the
 * ClientHello is read first (within `timeoutMs`) and its name picks the context; its bytes stay
 * for the handshake. Never rejects.
 */
export async function wrapServerSocket(plain: Socket, setup: TlsServerSetup, timeoutMs: number): Promise<{ readonly ok: true; readonly secure: TLSSocket } | { readonly ok: false; readonly err: Error }> {
  let context = setup.context;
  if (setup.select) {
    const hello = await peekClientHelloName(plain, timeoutMs);
    if (!hello.ok) return { ok: false, err: new Error(hello.reason) };
    context = setup.select(hello.value);
  }
  return { ok: true, secure: new TLSSocket(plain, { isServer: true, secureContext: context }) };
}

/** What the handshake gave: TLS facts, or the error that ended it. */
export type HandshakeResult = { readonly ok: true; readonly tls: TlsFacts } | { readonly ok: false; readonly err: Error };

/** Waits for `secure` (a server TLSSocket already wrapping the client's socket) to finish its handshake within `timeoutMs`. Never rejects. */
export function awaitHandshake(secure: TLSSocket, timeoutMs: number): Promise<HandshakeResult> {
  return new Promise((resolve) => {
    let settled = false;
    const finish = (r: HandshakeResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      secure.off('secure', onSecure).off('error', onFail).off('close', onFail).off('end', onFail);
      resolve(r);
    };
    const onSecure = (): void => {
      const cipher = secure.getCipher();
      finish({
        ok: true,
        tls: { protocol: secure.getProtocol() ?? '', cipher: cipher?.name ?? '', ...(cipher?.standardName ? { standardName: cipher.standardName } : {}) },
      });
    };
    const timer = setTimeout(() => finish({ ok: false, err: new Error('handshake timeout') }), timeoutMs);
    const onFail = (err?: Error): void => finish({ ok: false, err: err ?? new Error('closed during handshake') });
    secure.once('secure', onSecure);
    secure.once('error', onFail);
    secure.once('close', onFail);
    secure.once('end', onFail); // EOF before the handshake completed
  });
}
