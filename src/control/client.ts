/**
 * Control socket client: sends one request to a running Postline and returns its answer
 * (protocol.ts). Used by `postline queue ...`.
 */
import { createConnection } from 'node:net';
import type { ControlRequest, ControlResponse } from './protocol.js';

/** Raised when no server answers (socket missing: ENOENT, nobody listening: ECONNREFUSED) or on timeout (ETIMEDOUT). */
export class ControlUnavailableError extends Error {
  constructor(message: string, readonly code: string) {
    super(message);
    this.name = 'ControlUnavailableError';
  }
}

/** True for errors meaning "no server is running" (the caller may open the store itself). */
export function isNoServer(err: unknown): boolean {
  return err instanceof ControlUnavailableError && (err.code === 'ENOENT' || err.code === 'ECONNREFUSED');
}

/**
 * Sends `req` over the unix socket at `socketPath` and resolves with the server's response
 * ({ok:true,result} or {ok:false,error}).
 * @param timeoutMs whole exchange deadline in ms.
 * @throws ControlUnavailableError code ENOENT / ECONNREFUSED (no server), ETIMEDOUT, or EPROTO (bad answer, connection lost).
 */
export function controlRequest(socketPath: string, req: ControlRequest | { readonly op: string }, timeoutMs: number): Promise<ControlResponse> {
  return new Promise((resolve, reject) => {
    const sock = createConnection(socketPath);
    let buf = '';
    let done = false;
    const finish = (err: Error | undefined, res?: ControlResponse): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(res!);
    };
    const timer = setTimeout(() => finish(new ControlUnavailableError(`control socket ${socketPath}: no answer within ${timeoutMs} ms`, 'ETIMEDOUT')), timeoutMs);
    sock.setEncoding('utf8');
    sock.once('connect', () => sock.write(JSON.stringify(req) + '\n'));
    sock.on('data', (chunk: string) => {
      buf += chunk;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      try {
        const res = JSON.parse(buf.slice(0, nl)) as ControlResponse;
        if (typeof res !== 'object' || res === null || typeof res.ok !== 'boolean') throw new Error('not a response');
        finish(undefined, res);
      } catch {
        finish(new ControlUnavailableError(`control socket ${socketPath}: malformed answer`, 'EPROTO'));
      }
    });
    sock.on('error', (err: NodeJS.ErrnoException) => finish(new ControlUnavailableError(`control socket ${socketPath}: ${err.message}`, err.code ?? 'EPROTO')));
    sock.on('close', () => finish(new ControlUnavailableError(`control socket ${socketPath}: connection closed without an answer`, 'EPROTO')));
  });
}
