/**
 * ControlServer: the control socket (`${dataDir}/control.sock`, unix socket, mode 0600) through
 * which `postline queue ...` reaches the running scheduler, so the scheduler stays the only writer
 * of queue state. Protocol in protocol.ts. A bad request gets {ok:false}; nothing a client sends
 * can crash the server. Owns the socket file: removes a stale one at start and its own at stop.
 */
import { PostlineError } from '../core/errors.js';
import { chmodSync, existsSync, unlinkSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import type { Logger } from '../core/log.js';
import type { QueueAdmin } from '../scheduler/admin.js';
import { executeRequest, MAX_REQUEST_BYTES, parseRequest, type ControlResponse } from './protocol.js';
import { executeSuppressionRequest, isSuppressionRequest } from './suppression-ops.js';
import type { SuppressionAdmin } from '../suppression/admin.js';

export interface ControlServerOptions {
  /** Path of the unix socket, normally `${dataDir}/control.sock`. */
  readonly socketPath: string;
  /** The scheduler (or any QueueAdmin). */
  readonly scheduler: QueueAdmin;
  readonly logger: Logger;
  /** The suppression list's actions (suppression.* requests); absent: they are refused. */
  readonly suppressions?: SuppressionAdmin;
}

/** True when something answers on the unix socket `path` (another running server). */
function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection(path);
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

export class ControlServer {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();

  constructor(private readonly o: ControlServerOptions) {}

  /**
   * Listens on the socket path (mode 0600), removing a stale socket file first.
   * @throws Error when another process answers on the socket, or listen fails (EACCES, path too long).
   */
  async start(): Promise<void> {
    if (this.server) return;
    const path = this.o.socketPath;
    if (existsSync(path)) {
      if (await socketAnswers(path)) throw new PostlineError('ERR_DATA_DIR_LOCKED', `control socket ${path} is in use: is another Postline running on this data directory?`, { temporary: false });
      unlinkSync(path);
    }
    const server = createServer((sock) => this.onConnection(sock));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => { server.off('error', reject); resolve(); });
    });
    chmodSync(path, 0o600);
    server.on('error', (err) => this.o.logger.error({ err }, 'control socket error'));
    this.server = server;
    this.o.logger.debug({ socketPath: path }, 'control socket listening');
  }

  /** Stops listening, closes client connections and removes the socket file. Never rejects. */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    try { unlinkSync(this.o.socketPath); } catch { /* already gone */ }
  }

  private onConnection(sock: Socket): void {
    this.sockets.add(sock);
    sock.setEncoding('utf8');
    let buf = '';
    let chain: Promise<void> = Promise.resolve();
    const reply = (r: ControlResponse): void => { if (!sock.destroyed) sock.write(JSON.stringify(r) + '\n'); };
    sock.on('data', (chunk: string) => {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).replace(/\r$/, '');
        buf = buf.slice(nl + 1);
        if (line.trim() === '') continue;
        chain = chain.then(() => this.handle(line)).then(reply);
      }
      if (Buffer.byteLength(buf) > MAX_REQUEST_BYTES) {
        buf = '';
        chain = chain.then(() => { reply({ ok: false, error: 'request too long' }); sock.end(); });
      }
    });
    sock.on('error', (err) => this.o.logger.debug({ err }, 'control client error'));
    sock.on('close', () => this.sockets.delete(sock));
  }

  private async handle(line: string): Promise<ControlResponse> {
    const req = parseRequest(line);
    if ('error' in req) return { ok: false, error: req.error };
    const res = isSuppressionRequest(req) ? await executeSuppressionRequest(this.o.suppressions, req) : await executeRequest(this.o.scheduler, req);
    this.o.logger.debug({ op: req.op, ...('id' in req ? { queueId: req.id } : {}), ok: res.ok }, 'control request');
    return res;
  }
}
