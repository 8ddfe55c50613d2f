/**
 * Reading a PROXY protocol header (proxy-header.ts) off an accepted socket, before anything else
 * touches it (no greeting, no TLS): bounded in time and size, the bytes after the header given
 * back to the socket for the session (or the TLS handshake) to read.
 */
import type { Socket } from 'node:net';
import { parseProxyHeader, type ProxyHeader, type ProxyMode } from './proxy-header.js';

/** A header, or why there is none (for the log). */
export type ProxyReadResult = { readonly ok: true; readonly header: ProxyHeader } | { readonly ok: false; readonly reason: string };

/**
 * Waits for a complete PROXY header on `socket` within `timeoutMs` (ms). On success the socket is
 * left paused with the bytes that followed the header unshifted into it, so the next reader (the
 * session, or a TLSSocket wrapping it) sees the client's first bytes; on failure the caller closes
 * it. Never rejects.
 */
export function readProxyHeader(socket: Socket, mode: ProxyMode, timeoutMs: number): Promise<ProxyReadResult> {
  return new Promise((resolve) => {
    let buf: Buffer = Buffer.alloc(0);
    let settled = false;
    const finish = (r: ProxyReadResult, rest?: Buffer): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.off('data', onData).off('end', onEnd).off('close', onEnd).off('error', onError);
      socket.pause();
      if (rest && rest.length) socket.unshift(rest);
      resolve(r);
    };
    const onData = (chunk: Buffer): void => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      const p = parseProxyHeader(buf, mode);
      if (p.kind === 'header') finish({ ok: true, header: p.header }, buf.subarray(p.length));
      else if (p.kind === 'error') finish({ ok: false, reason: p.reason });
    };
    const onEnd = (): void => finish({ ok: false, reason: buf.length ? 'closed inside the PROXY header' : 'closed before the PROXY header' });
    const onError = (err: Error): void => finish({ ok: false, reason: `socket error: ${err.message}` });
    const timer = setTimeout(() => finish({ ok: false, reason: `no complete PROXY header within ${timeoutMs} ms` }), timeoutMs);
    socket.on('data', onData).on('end', onEnd).on('close', onEnd).on('error', onError);
  });
}
