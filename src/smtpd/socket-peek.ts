/**
 * Reading the first bytes of a socket before its real reader takes it: the PROXY protocol header
 * (proxy-header.ts) before the session or TLS, and a TLS ClientHello's server name (client-hello.ts)
 * before the TLS context is chosen. Bounded in time; the bytes not consumed are given back to the
 * socket, which is left paused, so the next reader (the session, or a TLSSocket wrapping it: node
 * feeds a wrapped socket's buffered bytes to TLS) sees them first.
 */
import type { Socket } from 'node:net';
import { parseProxyHeader, type ProxyHeader, type ProxyMode } from './proxy-header.js';
import { peekServerName } from './client-hello.js';

/** What an examiner says about the bytes so far. */
export type Examined<T> =
  | { readonly kind: 'more' }
  | { readonly kind: 'done'; readonly value: T; /** bytes taken off the front; the rest is given back */ readonly consumed: number }
  | { readonly kind: 'error'; readonly reason: string };

export type PeekResult<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly reason: string };

/**
 * Collects bytes from `socket` until `examine` is done or fails, the peer closes, or `timeoutMs`
 * (ms) passes. Never rejects; on failure the caller closes the socket.
 */
export function peekSocket<T>(socket: Socket, timeoutMs: number, examine: (buf: Buffer) => Examined<T>, what: string): Promise<PeekResult<T>> {
  return new Promise((resolve) => {
    let buf: Buffer = Buffer.alloc(0);
    let settled = false;
    const finish = (r: PeekResult<T>, keep?: Buffer): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.off('data', onData).off('end', onEnd).off('close', onEnd).off('error', onError);
      socket.pause();
      if (keep && keep.length) socket.unshift(keep);
      resolve(r);
    };
    const onData = (chunk: Buffer): void => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      const e = examine(buf);
      if (e.kind === 'done') finish({ ok: true, value: e.value }, buf.subarray(e.consumed));
      else if (e.kind === 'error') finish({ ok: false, reason: e.reason });
    };
    const onEnd = (): void => finish({ ok: false, reason: buf.length ? `closed inside the ${what}` : `closed before the ${what}` });
    const onError = (err: Error): void => finish({ ok: false, reason: `socket error: ${err.message}` });
    const timer = setTimeout(() => finish({ ok: false, reason: `no complete ${what} within ${timeoutMs} ms` }), timeoutMs);
    socket.on('data', onData).on('end', onEnd).on('close', onEnd).on('error', onError);
    socket.resume();
  });
}

/** Reads a PROXY header within `timeoutMs`; the bytes after it stay in the socket for the client's session. */
export function readProxyHeader(socket: Socket, mode: ProxyMode, timeoutMs: number): Promise<PeekResult<ProxyHeader>> {
  return peekSocket(socket, timeoutMs, (buf) => {
    const p = parseProxyHeader(buf, mode);
    if (p.kind === 'header') return { kind: 'done', value: p.header, consumed: p.length };
    return p.kind === 'more' ? p : { kind: 'error', reason: p.reason };
  }, 'PROXY header');
}

/**
 * Waits for the TLS ClientHello within `timeoutMs` and returns the server name it asks for (RFC
 * 6066 3), or undefined (none, or bytes that are no ClientHello: the TLS layer refuses those). All
 * bytes stay in the socket for the handshake.
 */
export function peekClientHelloName(socket: Socket, timeoutMs: number): Promise<PeekResult<string | undefined>> {
  return peekSocket(socket, timeoutMs, (buf) => {
    const p = peekServerName(buf);
    return p.kind === 'more' ? p : { kind: 'done', value: p.servername, consumed: 0 };
  }, 'TLS ClientHello');
}
