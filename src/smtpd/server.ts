/**
 * The SMTP listener (RFC 5321 4.5.3.2 limits, RFC 3207 STARTTLS, RFC 8314 implicit TLS).
 *
 * Owns: one TCP listener, accepting connections under the connection limits (total and per client
 * IP, 421 4.7.0 at connect), the TLS context built from the reloadable `tls()` material, and
 * graceful close (421 to idle sessions, in-flight transactions get up to graceMs).
 */
import { normalizeAddress } from '../core/ip.js';
import { ConnectionLimiter } from './connection-limiter.js';
import { createServer, type Server, type Socket } from 'node:net';
import { createSecureContext, type SecureContext, type SecureContextOptions } from 'node:tls';
import type { Logger } from 'pino';
import type { PostlineConfig, ListenerConfig } from '../config/schema.js';
import { R } from '../core/reply.js';
import { Session } from './session.js';
import type { MessageSink, SmtpPolicy } from './types.js';

export interface SmtpServerOptions {
  readonly config: PostlineConfig;
  readonly listener: ListenerConfig;
  /** Where accepted messages go (cleanup). */
  readonly sink: MessageSink;
  readonly policy: SmtpPolicy;
  readonly logger: Logger;
  /** TLS material (key/cert PEM) now, or undefined; called again at each use so it can be reloaded. */
  readonly tls: () => SecureContextOptions | undefined;
  /** Connection counts shared with the other listeners; default: this listener's own. */
  readonly limiter?: ConnectionLimiter;
}

/** "::ffff:1.2.3.4" -> "1.2.3.4", so IPv4 clients count the same on dual-stack sockets. */
function clientIp(s: Socket): string {
  return normalizeAddress(s.remoteAddress ?? '');
}

/** An SMTP server for one listener. */
export class SmtpServer {
  private readonly server: Server;
  private readonly log: Logger;
  private readonly sessions = new Set<Session>();
  private readonly limiter: ConnectionLimiter;
  private closing = false;
  private listening = false;
  private tlsCache: { options: SecureContextOptions; context: SecureContext } | undefined;

  /** @throws TypeError when a required option is missing. */
  constructor(private readonly opts: SmtpServerOptions) {
    for (const k of ['config', 'listener', 'sink', 'policy', 'logger', 'tls'] as const) {
      if (!opts[k]) throw new TypeError(`SmtpServer: option "${k}" is required`);
    }
    this.log = opts.logger.child({ listener: opts.listener.name });
    this.limiter = opts.limiter ?? new ConnectionLimiter(() => opts.config.limits);
    this.server = createServer({ allowHalfOpen: true }, (socket) => this.onConnection(socket));
    this.server.on('error', (err) => this.log.error({ err }, 'listener error'));
  }

  /**
   * Starts listening on listener.address:listener.port (port 0 picks a free port).
   * @returns the bound address and port.
   * @throws the listen error (EADDRINUSE, EACCES).
   */
  listen(): Promise<{ address: string; port: number }> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.server.once('error', onError);
      this.server.listen(this.opts.listener.port, this.opts.listener.address, () => {
        this.server.off('error', onError);
        this.listening = true;
        const a = this.server.address();
        if (a && typeof a === 'object') resolve({ address: a.address, port: a.port });
        else reject(new Error('SmtpServer: no TCP address'));
      });
    });
  }

  /**
   * Stops accepting, sends 421 to idle sessions, lets in-flight transactions finish for up to
   * `graceMs` milliseconds, then drops what is left. Resolves when every connection is closed.
   */
  async close(graceMs = 10_000): Promise<void> {
    this.closing = true;
    const stopped = this.listening ? new Promise<void>((resolve) => this.server.close(() => resolve())) : Promise.resolve();
    this.listening = false;
    for (const s of this.sessions) s.shutdown();
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<void>((resolve) => { timer = setTimeout(resolve, Math.max(0, graceMs)); });
    await Promise.race([Promise.all([...this.sessions].map((s) => s.done)), grace]);
    clearTimeout(timer);
    for (const s of this.sessions) s.destroy();
    await Promise.all([...this.sessions].map((s) => s.done));
    await stopped;
  }

  /** Open connections (including ones being refused). */
  connectionCount(): number {
    return this.sessions.size;
  }

  /** A TLS context for the current material; rebuilt only when `tls()` returns a new object. */
  private secureContext(): SecureContext | undefined {
    const options = this.opts.tls();
    if (!options) return undefined;
    if (this.tlsCache?.options !== options) this.tlsCache = { options, context: createSecureContext(options) };
    return this.tlsCache.context;
  }

  private onConnection(socket: Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    const ip = clientIp(socket);
    const tooMany = !this.limiter.tryAcquire(ip);
    const session = new Session({
      config: this.opts.config,
      listener: this.opts.listener,
      sink: this.opts.sink,
      policy: this.opts.policy,
      logger: this.log,
      socket,
      secureContext: () => this.secureContext(),
      reject: tooMany ? R.tooManyConnections : undefined,
    });
    this.sessions.add(session);
    void session.done.finally(() => {
      this.sessions.delete(session);
      if (!tooMany) this.limiter.release(ip);
    });
  }
}
