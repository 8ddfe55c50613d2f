/**
 * One SMTP server session (RFC 5321 4.1.4, 4.5.3.2 timeouts, RFC 2920 pipelining, RFC 3207 STARTTLS).
 *
 * Owns: the socket of one connection, the read loop (one command at a time, in order), the verb
 * dispatch through `commands/`, batching replies (cork/uncork) for pipelined clients, timeouts,
 * the error limit, TLS upgrades and graceful shutdown. Handlers see it as a `SessionContext`.
 */
import type { Socket } from 'node:net';
import type { TlsServerSetup } from './tls-context.js';
import { isUtf8 } from 'node:buffer';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { PostlineConfig, ListenerConfig } from '../config/schema.js';
import { R, replyBytes, replyToString, type SmtpReply } from '../core/reply.js';
import { MAX_COMMAND_LINE, commandLineLimit, parseCommandLine } from '../rfc5321/command.js';
import { COMMANDS } from './commands/index.js';
import type { SessionContext, Transaction, XclientState } from './context.js';
import { InputQueue, type LineResult } from './input.js';
import { awaitHandshake, wrapServerSocket } from './tls-handshake.js';
import { admit, readmit, type AdmissionHost } from './admission.js';
import { DataRateWindow } from './data-rate.js';
import { waitForDrain, waitOrClose } from '../core/drain.js';
import type { SessionDeps } from './context.js';
export type { SessionDeps } from './context.js';
import { normalizeAddress } from '../core/ip.js';
import type { IncomingMessage, MessageSink, PolicyReply, Rejection, SessionInfo, SessionLimits, SmtpPolicy } from './types.js';

/** Pause the socket when this many bytes are queued and not yet processed. */
const HIGH_WATER = 256 * 1024;
/** Unsent reply bytes above which the session stops reading until the client reads (bytes). */
const REPLY_HIGH_WATER = 64 * 1024;
/** After we close, how long (ms) a peer may take to read our last reply before the socket is dropped. */
const CLOSE_LINGER_MS = 10_000;

/** A running session; `done` resolves when it has ended and its socket is closed. */
export class Session implements SessionContext {
  readonly info: SessionInfo;
  readonly config: PostlineConfig;
  readonly listener: ListenerConfig;
  readonly policy: SmtpPolicy;
  readonly sink: MessageSink;
  readonly log: Logger;
  tx: Transaction | undefined;
  messagesAccepted = 0;
  readonly xclient: XclientState = {};
  readonly done: Promise<void>;

  private socket: Socket;
  private readonly input = new InputQueue();
  private waiter: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private eof = false;
  private closed = false;
  private corked = false;
  private idle = false;
  private shutdownRequested = false;
  private errors = 0;
  private verb = '';
  private readonly started = Date.now();
  /** After a 554 greeting (RFC 5321 3.1): only QUIT is accepted, everything else gets 503. */
  private quitOnly = false;
  /** Tarpit and data-rate limits policy set for this client (after the greeting). */
  private limits: SessionLimits = {};
  /** The data-rate window of the current DATA/BDAT command: start (ms) and bytes in it. */
  private rate: DataRateWindow | undefined;
  private readonly admission: AdmissionHost;
  private markSocketGone: () => void = () => {};
  /** Resolves when the current socket has emitted 'close'. */
  private readonly socketGone = new Promise<void>((resolve) => {
    this.markSocketGone = resolve;
  });

  constructor(private readonly deps: SessionDeps) {
    this.config = deps.config;
    this.listener = deps.listener;
    this.policy = deps.policy;
    this.sink = deps.sink;
    this.socket = deps.socket;
    const s = deps.socket;
    const e = deps.endpoints;
    this.info = {
      id: randomBytes(6).toString('hex'),
      listener: deps.listener,
      clientAddress: e?.clientAddress ?? normalizeAddress(s.remoteAddress ?? ''), // "::ffff:1.2.3.4" -> "1.2.3.4", once for every check
      clientPort: e?.clientPort ?? s.remotePort ?? 0,
      localAddress: e?.localAddress ?? s.localAddress ?? '',
      localPort: e?.localPort ?? s.localPort ?? 0,
      ...(e?.proxy ? { proxy: e.proxy } : {}),
      esmtp: false,
    };
    this.log = deps.logger.child({ sid: this.info.id });
    this.admission = this.admissionHost();
    this.done = this.run();
  }

  // ---- lifecycle ----------------------------------------------------------------------------

  private async run(): Promise<void> {
    // Implicit TLS: the plain socket is never read here (its first bytes, maybe left by a PROXY
    // header, go to the TLS layer); otherwise reading starts (a socket a PROXY read paused, too).
    if (this.listener.tls !== 'implicit') this.attach(this.socket).resume();
    this.socket.setNoDelay(true);
    const sessionTimer = setTimeout(() => this.expire('session'), this.config.timeouts.sessionMs);
    // the logger of the listener already carries `listener`
    const via = this.info.proxy;
    this.log.info({ client: this.info.clientAddress, port: this.info.clientPort, ...(via ? { proxy: via.address, via: via.via } : {}) }, 'session start');
    try {
      if (this.listener.tls === 'implicit' && !(await this.handshake())) return;
      if (await admit(this.admission, { ...(this.deps.reject ? { refusal: this.deps.reject } : {}), pause: true })) await this.commandLoop();
    } catch (err) {
      this.log.error({ err }, 'session failed');
      this.close(R.localError);
    } finally {
      clearTimeout(sessionTimer);
      this.clearTimer();
      try { this.policy.closeSession?.(this.info); } catch { /* never throws */ }
      this.deps.slot?.release();
      await this.resetTransaction();
      this.close();
      await this.socketGone;
      this.log.info({ messages: this.messagesAccepted, errors: this.errors, ms: Date.now() - this.started }, 'session end');
    }
  }

  /** The session as admission.ts sees it (greeting and XCLIENT's new start). */
  private admissionHost(): AdmissionHost {
    return {
      info: this.info, policy: this.policy, hostname: this.config.hostname, log: this.log, slot: this.deps.slot,
      closed: () => this.closed, writeNow: (text) => void this.socket.write(text), pause: (ms) => this.pause(ms),
      talked: () => this.input.length > 0 || this.eof, discardInput: () => this.input.clear(),
      reply: (r) => this.reply(r), close: (r) => this.close(r), rejected: (r, pr) => this.rejected(r, pr),
      quitOnly: (on) => { this.quitOnly = on; }, setLimits: (l) => { this.limits = l; },
    };
  }

  /** After XCLIENT changed `info` (admission.ts readmit). */
  readmit(): Promise<void> {
    return readmit(this.admission);
  }

  /** Waits `ms` or until the session closes (replies queued so far are sent first unless `flushFirst` is false); input keeps being buffered. */
  private pause(ms: number, flushFirst = true): Promise<void> {
    if (flushFirst) this.flush();
    return waitOrClose(this.socket, ms);
  }

  /** Reports a refusal to the sink (message.rejected), with the check policy named. */
  rejected(r: Rejection, policyReply?: PolicyReply): void {
    const check = policyReply?.check ?? r.check;
    this.sink.rejected?.(this.info, { ...r, ...(check !== undefined ? { check } : {}) });
  }

  private async commandLoop(): Promise<void> {
    while (!this.closed) {
      if (this.shutdownRequested) return this.close(R.shuttingDown(this.config.hostname));
      this.idle = true;
      const line = await this.readLine(MAX_COMMAND_LINE);
      this.idle = false;
      if (!line) return;
      const errorsBefore = this.errors;
      await this.dispatch(line);
      const soft = this.limits.softErrorLimit;
      if (soft !== undefined && this.errors > errorsBefore && this.errors > soft && !this.closed && this.errors < this.config.limits.maxErrors) {
        await this.pause(this.limits.errorSleepMs ?? 0, false); // error tarpit: the reply waits (Postfix smtpd_error_sleep_time)
      }
      if (!this.closed && this.socket.writableLength > REPLY_HIGH_WATER) await this.drainReplies();
      if (!this.closed && this.errors >= this.config.limits.maxErrors) {
        this.log.info({ errors: this.errors }, 'too many errors');
        this.close(R.tooManyErrors);
      }
    }
  }

  private async dispatch(line: LineResult): Promise<void> {
    this.verb = '';
    this.rate = undefined;
    if (line.kind === 'tooLong') return this.reply(R.lineTooLong);
    if (line.kind === 'bare' || !isUtf8(line.line)) return this.reply(R.syntaxError);
    const cmd = parseCommandLine(line.line.toString('utf8'));
    if (!cmd.ok) return this.reply(cmd.reply);
    this.verb = cmd.value.verb;
    if (line.line.length + 2 > commandLineLimit(this.verb)) return this.reply(R.lineTooLong);
    const handler = Object.hasOwn(COMMANDS, this.verb) ? COMMANDS[this.verb] : undefined;
    if (!handler) return this.reply(R.unknownCommand);
    if (this.quitOnly && this.verb !== 'QUIT') return this.reply(R.badSequence('only QUIT is accepted now'));
    try {
      await handler(this, cmd.value.arg);
    } catch (err) {
      this.log.error({ err, verb: this.verb }, 'command failed');
      this.reply(R.localError);
    }
  }

  /**
   * A client that pipelines commands but does not read the replies: stop reading its input until
   * the replies drain (or timeouts.commandMs passes), so memory stays bounded.
   */
  private async drainReplies(): Promise<void> {
    this.flush();
    this.socket.pause();
    if ((await waitForDrain(this.socket, this.config.timeouts.commandMs)) === 'timeout') {
      this.log.info('client does not read replies');
      this.destroy();
    }
  }

  /** Server shutdown: idle sessions get 421 now; busy ones after the current command. */
  shutdown(): void {
    this.shutdownRequested = true;
    if (this.idle && !this.tx?.message) {
      this.close(R.shuttingDown(this.config.hostname));
    }
  }

  /** Drops the connection at once. */
  destroy(): void {
    this.closed = true;
    this.socket.destroy();
    this.wake();
  }

  private expire(what: 'command' | 'session'): void {
    this.log.info({ what }, 'timeout');
    this.close(R.timeout(this.config.hostname));
  }

  // ---- socket and input -------------------------------------------------------------------

  private readonly onData = (chunk: Buffer): void => {
    this.input.push(chunk);
    if (this.input.length > HIGH_WATER) this.socket.pause();
    this.wake();
  };
  private readonly onEnd = (): void => {
    this.eof = true;
    this.wake();
  };
  private readonly onClose = (): void => {
    this.closed = true;
    this.wake();
    this.markSocketGone();
  };
  private readonly onError = (err: Error): void => {
    this.log.debug({ err }, 'socket error');
  };

  private attach(s: Socket): Socket {
    s.on('data', this.onData);
    s.on('end', this.onEnd);
    s.on('close', this.onClose);
    s.on('error', this.onError);
    return s;
  }

  private detach(s: Socket): void {
    s.off('data', this.onData);
    s.off('end', this.onEnd);
    s.off('close', this.onClose);
  }

  private wake(): void {
    this.clearTimer();
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Flushes queued replies, then waits for input, end, close or the timeout (ms). */
  private waitForInput(timeoutMs: number, quiet = false): Promise<void> {
    this.flush();
    this.socket.resume();
    return new Promise((resolve) => {
      this.waiter = resolve;
      this.timer = setTimeout(() => {
        if (!quiet) this.expire('command');
        this.wake();
      }, timeoutMs);
    });
  }

  /**
   * Reads one command line (commands and AUTH responses alike). timeouts.commandMs bounds the whole
   * line, not each read, so a client sending one byte a second (slowloris) cannot hold its slot for
   * longer than that. A line ending in a bare LF is a line under bareNewline: normalize; under
   * reject it gets 550 5.5.2 and the session ends (undefined is returned), like Postfix's
   * smtpd_forbid_bare_newline = reject: closing is the one answer that cannot be read differently
   * by a proxy in front that frames lines at CRLF.
   */
  async readLine(maxOctets: number): Promise<LineResult | undefined> {
    const deadline = Date.now() + this.config.timeouts.commandMs;
    for (;;) {
      if (this.closed) return undefined;
      const line = this.input.readLine(maxOctets);
      if (line && line.kind !== 'bare' && line.bareLf && this.listener.bareNewline === 'reject') {
        this.log.info({ client: this.info.clientAddress }, 'bare LF in a command line');
        this.close(R.bareLf);
        return undefined;
      }
      if (line) return line;
      if (this.eof) return undefined;
      await this.waitForInput(Math.max(1, deadline - Date.now()));
    }
  }

  /**
   * Reads message data. With a minimum data rate (SessionLimits.minDataRate) every window of the
   * current DATA/BDAT command must bring `bytes`; a slower client gets 421 4.4.2 and is closed.
   * Time spent waiting for our own sink (backpressure) is not held against the client.
   */
  async readChunk(max = Infinity): Promise<Buffer | undefined> {
    const min = this.limits.minDataRate;
    if (min && !this.rate) this.rate = new DataRateWindow(min);
    for (;;) {
      if (this.closed) return undefined;
      const chunk = this.input.take(max);
      if (chunk) {
        this.rate?.add(chunk.length);
        return this.rateOk() ? chunk : undefined;
      }
      if (this.eof) return undefined;
      if (!this.rate) {
        await this.waitForInput(this.config.timeouts.dataBlockMs);
        continue;
      }
      const windowLeft = this.rate.left();
      if (windowLeft <= 0) {
        if (!this.rateOk()) return undefined;
        continue;
      }
      await this.waitForInput(Math.min(this.config.timeouts.dataBlockMs, windowLeft + 1), true);
    }
  }

  /** At the end of a data-rate window: false (and 421 4.4.2, closed) when it brought too few bytes. */
  private rateOk(): boolean {
    const r = this.rate?.check();
    if (!r || r.ok) return true;
    this.log.info({ bytes: r.sent, windowMs: this.rate!.min.windowMs }, 'data rate too low');
    const reply: PolicyReply = { ...R.dataTooSlow(this.config.hostname), check: 'data-rate' };
    this.rejected({ stage: 'data', reply: replyToString(reply), ...(this.tx ? { mailFrom: this.tx.mailFrom } : {}), ...(this.tx?.message ? { queueId: this.tx.message.queueId } : {}) }, reply);
    this.close(reply);
    return false;
  }

  unread(bytes: Buffer): void {
    this.input.unshift(bytes);
  }

  async writeMessage(msg: IncomingMessage, data: readonly Buffer[]): Promise<void> {
    for (const chunk of data) {
      if (!msg.write(chunk)) {
        this.socket.pause();
        const t0 = Date.now();
        await msg.drain();
        this.rate?.pauseFor(Date.now() - t0); // our disk's time is not the client's
      }
    }
  }

  // ---- replies ----------------------------------------------------------------------------

  reply(r: SmtpReply): void {
    if (this.closed || this.socket.destroyed) return;
    if (!this.corked) {
      this.socket.cork();
      this.corked = true;
    }
    this.socket.write(replyBytes(r));
    if (r.code >= 400 && r.code !== 421 && r !== R.tooManyRecipients) {
      this.errors++;
      this.log.info({ verb: this.verb || undefined, reply: replyToString(r) }, 'command error');
    }
  }

  private flush(): void {
    if (!this.corked) return;
    this.corked = false;
    this.socket.uncork();
  }

  close(r?: SmtpReply): void {
    if (this.closed) return;
    if (r) this.reply(r);
    this.flush();
    this.closed = true;
    const s = this.socket;
    if (!s.destroyed) {
      s.end(() => s.destroy());
      // a peer that never reads would keep the socket forever: drop it after a while
      const linger = setTimeout(() => s.destroy(), CLOSE_LINGER_MS);
      linger.unref();
      s.once('close', () => clearTimeout(linger));
    }
    this.wake();
  }

  async resetTransaction(): Promise<void> {
    const tx = this.tx;
    this.tx = undefined;
    this.info.forwarded = undefined; // XFORWARD attributes last one transaction
    await tx?.message?.abort();
  }

  // ---- TLS --------------------------------------------------------------------------------

  secureContext(): TlsServerSetup | undefined {
    return this.deps.secureContext();
  }

  async startTls(ctx: TlsServerSetup): Promise<void> {
    this.reply(R.readyTls);
    this.flush();
    this.input.clear(); // plaintext pipelined after STARTTLS is never used (CVE-2011-0411)
    if (this.eof) return this.close(); // the client already sent FIN: no handshake can follow
    if (!(await this.handshake(ctx))) return;
    await this.resetTransaction();
    this.info.heloName = undefined;
    this.info.esmtp = false;
    this.info.authUser = this.xclient.login;
  }

  /** Wraps the socket in TLS (server side); returns false (session closed) on failure or timeout. */
  private async handshake(ctx = this.deps.secureContext()): Promise<boolean> {
    const plain = this.socket;
    this.detach(plain);
    const timeoutMs = this.config.timeouts.tlsHandshakeMs;
    const w = ctx ? await wrapServerSocket(plain, ctx, timeoutMs) : { ok: false as const, err: new Error('no TLS material for implicit TLS') };
    if (w.ok) this.attach((this.socket = w.secure));
    const r = w.ok ? await awaitHandshake(w.secure, timeoutMs) : w;
    if (!r.ok) {
      this.log.info({ err: r.err.message }, 'TLS handshake failed');
      if (!w.ok) this.attach(plain); // its close must still be seen
      this.destroy();
      return false;
    }
    this.info.tls = r.tls;
    this.log.info(this.info.tls, 'TLS established');
    return true;
  }
}
