/**
 * The SMTP listener (RFC 5321 4.5.3.2 limits, RFC 3207 STARTTLS, RFC 8314 implicit TLS, HAProxy's
 * PROXY protocol v1/v2).
 *
 * Owns: one TCP listener, accepting connections under the connection limits (total and per client
 * IP, 421 4.7.0 at connect), the PROXY header of listeners with `proxyProtocol` (read before
 * anything else, TLS included; only from peers policy trusts as proxies; a bad, late or untrusted
 * one closes the connection; the proxied client is the one counted and checked), the TLS contexts
 * built from the reloadable `tls()` material under the listener's TLS policy (tls-context.ts), and
 * graceful close (421 to idle sessions, in-flight transactions get up to graceMs).
 */
import { normalizeAddress } from '../core/ip.js';
import { ConnectionLimiter } from './connection-limiter.js';
import { createServer, type Server, type Socket } from 'node:net';
import type { Logger } from 'pino';
import type { PostlineConfig, ListenerConfig } from '../config/schema.js';
import { R } from '../core/reply.js';
import { Session } from './session.js';
import type { SessionEndpoints } from './context.js';
import { readProxyHeader } from './socket-peek.js';
import type { ProxyHeader } from './proxy-header.js';
import { ListenerTls, type TlsServerSetup, type TlsSource } from './tls-context.js';
import type { MessageSink, SmtpPolicy } from './types.js';

export interface SmtpServerOptions {
  readonly config: PostlineConfig;
  readonly listener: ListenerConfig;
  /** Where accepted messages go (cleanup). */
  readonly sink: MessageSink;
  readonly policy: SmtpPolicy;
  readonly logger: Logger;
  /**
   * TLS material now (every certificate, or one key/cert pair as node:tls options), or undefined;
   * called again at each use so it can be reloaded (a new object: the contexts are rebuilt).
   */
  readonly tls: () => TlsSource | undefined;
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
  private readonly tls: ListenerTls;
  /** Connections of a PROXY listener whose header is still being read. */
  private readonly pending = new Set<Socket>();

  /** @throws TypeError when a required option is missing. */
  constructor(private readonly opts: SmtpServerOptions) {
    for (const k of ['config', 'listener', 'sink', 'policy', 'logger', 'tls'] as const) {
      if (!opts[k]) throw new TypeError(`SmtpServer: option "${k}" is required`);
    }
    this.log = opts.logger.child({ listener: opts.listener.name });
    this.limiter = opts.limiter ?? new ConnectionLimiter(() => opts.config.limits);
    this.tls = new ListenerTls(opts.listener, opts.tls);
    this.server = createServer({ allowHalfOpen: true }, (socket) => this.onConnection(socket));
    this.server.on('error', (err) => this.log.error({ err }, 'listener error'));
  }

  /**
   * Starts listening on listener.address:listener.port (port 0 picks a free port).
   * @returns the bound address and port.
   * @throws the listen error (EADDRINUSE, EACCES), or node:tls's error for TLS material it refuses.
   */
  listen(): Promise<{ address: string; port: number }> {
    try {
      this.tls.current(); // a certificate or TLS policy node:tls refuses fails the start, not a handshake
    } catch (err) {
      return Promise.reject(err);
    }
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
    for (const s of this.pending) s.destroy();
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

  /** The TLS setup for the current material (rebuilt when `tls()` returns a new object). */
  private secureContext(): TlsServerSetup | undefined {
    return this.tls.current();
  }

  private onConnection(socket: Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    const mode = this.opts.listener.proxyProtocol;
    if (!mode) return this.startSession(socket);
    const peer = clientIp(socket);
    socket.on('error', () => {}); // the session's own handler comes later; a reset now must not throw
    if (!this.opts.policy.isTrustedProxy?.(peer)) {
      this.log.warn({ peer, port: socket.remotePort }, 'PROXY listener: peer not in policy.trustedProxies, connection closed');
      socket.destroy();
      return;
    }
    this.pending.add(socket);
    void readProxyHeader(socket, mode, this.opts.config.timeouts.proxyHeaderMs).then((r) => {
      this.pending.delete(socket);
      if (this.closing || socket.destroyed) return void socket.destroy();
      if (!r.ok) {
        this.log.warn({ peer, port: socket.remotePort, reason: r.reason }, 'PROXY header refused, connection closed');
        return void socket.destroy();
      }
      this.startSession(socket, r.value);
    });
  }

  /** The endpoints a header names (undefined for LOCAL/UNSPEC/UNKNOWN: the socket's own apply). */
  private endpoints(socket: Socket, h: ProxyHeader): SessionEndpoints | undefined {
    if (h.local || !h.source || !h.destination) return undefined;
    return {
      clientAddress: normalizeAddress(h.source.address), clientPort: h.source.port,
      localAddress: h.destination.address, localPort: h.destination.port,
      proxy: { address: clientIp(socket), port: socket.remotePort ?? 0, via: h.version === 1 ? 'proxy-v1' : 'proxy-v2' },
    };
  }

  /** Counts the connection under the client's address (the proxied one) and runs its session. */
  private startSession(socket: Socket, header?: ProxyHeader): void {
    const endpoints = header ? this.endpoints(socket, header) : undefined;
    const slot = this.limiter.acquire(endpoints?.clientAddress ?? clientIp(socket));
    const session = new Session({
      config: this.opts.config,
      listener: this.opts.listener,
      sink: this.opts.sink,
      policy: this.opts.policy,
      logger: this.log,
      socket,
      secureContext: () => this.secureContext(),
      ...(slot ? { slot } : { reject: R.tooManyConnections }),
      ...(endpoints ? { endpoints } : {}),
    });
    this.sessions.add(session);
    void session.done.finally(() => this.sessions.delete(session));
  }
}
