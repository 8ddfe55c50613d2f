/**
 * The server side of a TLS handshake on an accepted socket (STARTTLS, RFC 3207, or implicit TLS,
 * RFC 8314): resolves with the negotiated facts, or with the reason it failed (error, EOF, timeout).
 */
import type { TLSSocket } from 'node:tls';
import type { TlsFacts } from '../core/session.js';

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
