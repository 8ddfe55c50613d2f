/**
 * One outbound SMTP connection: connect, greeting, EHLO (HELO fallback), STARTTLS per policy, AUTH,
 * then commands and replies for mail transactions (smtp-transaction.ts), RSET and QUIT.
 *
 * RFCs: RFC 5321 3.1/4.1.1 (session, EHLO/HELO, RSET, QUIT), 4.5.3.2 (timeouts), RFC 3207
 * (STARTTLS; forget extensions and re-EHLO after TLS), RFC 8314 (implicit TLS), RFC 4954 + RFC 4616
 * (AUTH PLAIN; LOGIN as a de-facto mechanism), RFC 5321 3.8 (a 421 ends the session: the
 * connection is never used again), RFC 2033 4.1 (LMTP: LHLO instead of EHLO, no HELO fallback; over
 * TCP or a unix socket; the per-recipient replies after the data are smtp-transaction.ts's).
 * Owns: the socket and reply stream of one session.
 * Every failure is raised as an SmtpClientError with facts; trouble.ts decides what they mean.
 */
import type { Socket } from 'node:net';
import type { ConnectionOptions, TLSSocket } from 'node:tls';
import type { Readable } from 'node:stream';
import type { Logger } from '../core/log.js';
import { replyToString, type SmtpReply } from '../core/reply.js';
import type { SmtpAuthCredentials } from '../routing/types.js';
import { ReplyParser } from '../rfc5321/reply-parser.js';
import { waitForDrain } from '../core/drain.js';
import { untilAborted } from '../core/abortable.js';
import { SmtpClientError, type SmtpStage } from './client-error.js';
import { connectSocket, handshakeTls, sessionFacts, tlsOptionsFor, type TlsFacts } from './client-tls.js';
import { parseEhlo, authMechanisms, type Extensions } from './mail-params.js';
import { requiresTls, verifiesCertificate, type ConnectionTls } from './tls-policy.js';
import { stageWords } from './trouble.js';

export interface SmtpClientOptions {
  /** IP address to connect to (unused with `path`). */
  readonly address: string;
  readonly port: number;
  /** A unix socket to connect to instead of address and port; the server is then "host[path]". */
  readonly path?: string;
  /** Speak LMTP (RFC 2033): LHLO, and one reply per accepted recipient after the data. */
  readonly lmtp?: boolean;
  /** Server host name (MX name) for TLS SNI and "host[addr]:port"; default: the address ("localhost" with `path`). */
  readonly hostname?: string;
  /** Name sent in EHLO/HELO (LHLO with `lmtp`). */
  readonly heloName: string;
  /** Local source address to bind. */
  readonly localAddress?: string;
  /** TLS level, names to verify, CAs (tls-policy.ts connectionTls). */
  readonly tls: ConnectionTls;
  /** The delivery's policy fingerprint; a pooled connection is reused only under the same one. */
  readonly policyKey?: string;
  /** Credentials for AUTH; only ever sent over TLS. */
  readonly auth?: SmtpAuthCredentials;
  /** TCP connect (and implicit TLS handshake) timeout, ms. */
  readonly connectTimeoutMs: number;
  /** Greeting and each command reply, ms. */
  readonly commandTimeoutMs: number;
  /** Extra node:tls options for the handshake (tests); the certificate is judged by `tls` either way. */
  readonly tlsOptions?: ConnectionOptions;
  readonly logger?: Logger;
  /** Aborts connecting and the set-up (greeting, EHLO, STARTTLS, AUTH): shutdown of a stuck delivery. */
  readonly signal?: AbortSignal;
}

const isOk = (r: SmtpReply) => r.code >= 200 && r.code < 300;

/** "host[addr]:port", or "host[/path]" for a unix socket (Postfix's form for LMTP). */
const serverName = (o: SmtpClientOptions): string =>
  (o.path !== undefined ? `${o.hostname ?? 'localhost'}[${o.path}]` : `${o.hostname ?? o.address}[${o.address}]:${o.port}`);

/** One SMTP session with a server. Create with `SmtpClient.open`. */
export class SmtpClient {
  readonly remoteMta: string;
  private sock: Socket;
  private parser = new ReplyParser();
  private queue: SmtpReply[] = [];
  private waiter?: { resolve: (r: SmtpReply) => void; reject: (e: SmtpClientError) => void };
  private broken?: SmtpClientError;
  private deadline?: NodeJS.Timeout;
  private stage: SmtpStage = 'connect';
  private ext: Map<string, string> = new Map();
  private secure: boolean;
  private facts?: TlsFacts;
  /** A 421 reply was received: the server is closing the session (RFC 5321 3.8). */
  private closing?: SmtpReply;
  private esmtp = false;
  /** True while a mail transaction is open (MAIL accepted, final reply not yet seen). */
  inTransaction = false;
  /** True when opportunistic STARTTLS failed and this session fell back to plaintext. */
  tlsFallback = false;

  private constructor(private readonly opts: SmtpClientOptions, sock: Socket, secure: boolean) {
    this.remoteMta = serverName(opts);
    this.sock = sock;
    this.secure = secure;
    this.attach(sock);
  }

  /**
   * Opens a session ready for MAIL: connect (with timeout, optional source address), greeting, EHLO,
   * STARTTLS per `opts.tls.level` and AUTH when credentials are given. Opportunistic TLS that fails
   * the handshake is retried once in plaintext on a new connection (RFC 3207 4.1 leaves this to the
   * client; Postfix does the same). verify / secure: a certificate that is not trusted or does not
   * name the host fails with 'tls-verify' (never a plaintext retry).
   * @throws SmtpClientError (connect, timeout, lost, tls, tls-required, tls-verify, malformed, reply, auth*).
   */
  static async open(opts: SmtpClientOptions): Promise<SmtpClient> {
    try {
      return await SmtpClient.openOnce(opts, opts.tls);
    } catch (err) {
      if (opts.tls.level !== 'opportunistic' || opts.tls.implicit || !(err instanceof SmtpClientError) || err.kind !== 'tls') throw err;
      opts.logger?.info({ server: `${opts.address}:${opts.port}`, err: err.message }, 'STARTTLS failed; retrying in plaintext');
      const c = await SmtpClient.openOnce(opts, { ...opts.tls, level: 'none' });
      c.tlsFallback = true;
      c.reportNoTls(`TLS handshake failed: ${err.message}`);
      return c;
    }
  }

  private static async openOnce(opts: SmtpClientOptions, t: ConnectionTls): Promise<SmtpClient> {
    const where = serverName(opts);
    const aborted = (stage: SmtpStage) => new SmtpClientError('aborted', stage, 'delivery aborted (shutdown)');
    const signal = opts.signal;
    if (signal?.aborted) throw aborted('connect');
    const connecting = connectSocket({ ...opts, where }, t.implicit ? tlsOptionsFor(t, opts.tlsOptions) : undefined);
    const sock = signal ? await untilAborted(connecting, signal, () => aborted('connect'), (so) => so.destroy()) : await connecting;
    const c = new SmtpClient(opts, sock, t.implicit);
    const onAbort = () => c.destroy(aborted(c.stage));
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      if (t.implicit) c.checkTls(t, 'connect');
      await c.handshake(t);
      return c;
    } catch (err) {
      c.destroy();
      throw err;
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  /** EHLO keywords of the current session (after TLS: the post-TLS EHLO). */
  get extensions(): Extensions { return this.ext; }
  /** True when TLS is up (STARTTLS or implicit). */
  get isSecure(): boolean { return this.secure; }
  /** True after EHLO succeeded (false after a HELO fallback). */
  get isEsmtp(): boolean { return this.esmtp; }
  /** True for an LMTP session (RFC 2033): one reply per accepted recipient after the data. */
  get isLmtp(): boolean { return this.opts.lmtp === true; }
  /** True while the connection can carry another command (false once broken, closed or after a 421). */
  get usable(): boolean { return !this.broken && !this.closing && !this.sock.destroyed; }
  /** The policy fingerprint this connection was opened under (SmtpClientOptions.policyKey). */
  get policyKey(): string | undefined { return this.opts.policyKey; }
  /** The TLS protocol, cipher and certificate verdict when secure. */
  get tlsInfo(): TlsFacts | undefined { return this.secure ? this.facts : undefined; }

  private async handshake(t: ConnectionTls): Promise<void> {
    const greeting = await this.readReply('greeting', this.opts.commandTimeoutMs);
    if (!isOk(greeting)) throw this.replyError('greeting', greeting);
    await this.hello();
    if (t.level !== 'none' && !this.secure) await this.startTls(t);
    if (this.opts.auth) await this.authenticate(this.opts.auth);
  }

  /**
   * Judges the TLS session just set up: records its facts; under verify / secure a certificate
   * that fails ends the connection (4.7.5). MTA-STS testing logs the failure instead.
   * @throws SmtpClientError 'tls-verify'
   */
  private checkTls(t: ConnectionTls, stage: SmtpStage): void {
    const f = sessionFacts(this.sock as TLSSocket, t);
    this.facts = f;
    if (f.verified) return;
    if (verifiesCertificate(t.level)) {
      const e = new SmtpClientError('tls-verify', stage, `server certificate verification failed for ${this.remoteMta} (TLS policy: ${t.level}, from ${t.source}): ${f.reason}`);
      this.broken = e;
      throw e;
    }
    if (t.reportOnly) this.opts.logger?.warn({ host: this.remoteMta, policy: t.reportOnly }, `${t.reportOnly}: would refuse ${this.remoteMta}: ${f.reason}`);
  }

  /** MTA-STS testing: the delivery goes on without TLS; say what enforce would have refused. */
  private reportNoTls(why: string): void {
    const r = this.opts.tls.reportOnly;
    if (r) this.opts.logger?.warn({ host: this.remoteMta, policy: r }, `${r}: would refuse ${this.remoteMta}: ${why}`);
  }

  /** EHLO, or HELO when the server answers 5xx to EHLO (RFC 5321 4.1.4); LHLO only for LMTP (RFC 2033 4.1). */
  private async hello(): Promise<void> {
    const stage = this.opts.lmtp ? 'lhlo' : 'ehlo';
    const r = await this.command(`${this.opts.lmtp ? 'LHLO' : 'EHLO'} ${this.opts.heloName}`, stage);
    if (isOk(r)) {
      this.ext = parseEhlo(r);
      this.esmtp = true;
      return;
    }
    if (r.code < 500 || this.opts.lmtp) throw this.replyError(stage, r);
    const h = await this.command(`HELO ${this.opts.heloName}`, 'helo');
    if (!isOk(h)) throw this.replyError('helo', h);
    this.ext = new Map();
    this.esmtp = false;
  }

  private async startTls(t: ConnectionTls): Promise<void> {
    const must = requiresTls(t.level);
    const policy = `TLS is required (policy ${t.level}, from ${t.source})`;
    if (!this.ext.has('STARTTLS')) {
      if (must) throw new SmtpClientError('tls-required', 'starttls', `${policy}, but was not offered by host ${this.remoteMta}`);
      this.reportNoTls('STARTTLS not offered');
      return;
    }
    const r = await this.command('STARTTLS', 'starttls');
    if (r.code !== 220) {
      if (must) {
        throw new SmtpClientError('tls-required', 'starttls', `${policy}, but host ${this.remoteMta} refused to start TLS: ${replyToString(r)}`, { remoteReply: r });
      }
      this.reportNoTls(`STARTTLS refused: ${replyToString(r)}`);
      return; // opportunistic: carry on in plaintext on this connection
    }
    await this.upgrade(t);
    this.checkTls(t, 'starttls');
    await this.hello(); // RFC 3207 4.2: discard what was learnt and EHLO again
  }

  private async upgrade(tls: ConnectionTls): Promise<void> {
    const plain = this.sock;
    this.detach(plain);
    try {
      const t = await handshakeTls({ ...tlsOptionsFor(tls, this.opts.tlsOptions), socket: plain }, this.opts.connectTimeoutMs);
      this.sock = t;
      this.attach(t);
      this.parser = new ReplyParser();
      this.secure = true;
    } catch (err) {
      plain.destroy();
      const e = new SmtpClientError('tls', 'starttls', `TLS handshake with ${this.remoteMta} failed: ${(err as Error).message}`, { cause: err });
      this.broken = e;
      throw e;
    }
  }

  /** AUTH PLAIN or LOGIN (RFC 4954), only over TLS. */
  private async authenticate(cred: SmtpAuthCredentials): Promise<void> {
    if (!this.secure) {
      throw new SmtpClientError('auth-insecure', 'auth', `not sending credentials to ${this.remoteMta}: TLS is not active (AUTH is never sent in plaintext)`);
    }
    const mechs = authMechanisms(this.ext);
    if (mechs.length === 0) return; // server offers no AUTH; send unauthenticated (like Postfix)
    const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
    let r: SmtpReply;
    if (mechs.includes('PLAIN')) {
      r = await this.command(`AUTH PLAIN ${b64(`\0${cred.username}\0${cred.password}`)}`, 'auth');
    } else if (mechs.includes('LOGIN')) {
      r = await this.command('AUTH LOGIN', 'auth');
      if (r.code === 334) r = await this.command(b64(cred.username), 'auth');
      if (r.code === 334) r = await this.command(b64(cred.password), 'auth');
    } else {
      throw new SmtpClientError('auth-unavailable', 'auth', `no supported AUTH mechanism offered by ${this.remoteMta} (offered: ${mechs.join(' ')})`);
    }
    if (r.code !== 235) throw new SmtpClientError('auth', 'auth', `authentication to ${this.remoteMta} failed: ${replyToString(r)}`, { remoteReply: r });
  }

  private replyError(stage: SmtpStage, r: SmtpReply): SmtpClientError {
    return new SmtpClientError('reply', stage, `host ${this.remoteMta} refused ${stageWords(stage)}: ${replyToString(r)}`, { remoteReply: r });
  }

  /** Sends one command line (CRLF added) and reads its reply. @throws SmtpClientError */
  async command(line: string, stage: SmtpStage, timeoutMs = this.opts.commandTimeoutMs): Promise<SmtpReply> {
    this.write(line + '\r\n');
    return this.readReply(stage, timeoutMs);
  }

  /** Writes raw command text (for pipelining several commands in one write, RFC 2920). @throws SmtpClientError */
  write(text: string): void {
    if (this.broken) throw this.broken;
    this.sock.write(text);
  }

  /**
   * Writes raw bytes (a BDAT chunk, RFC 3030) and waits for the socket to drain when its buffer is
   * full. @throws SmtpClientError when the connection is or becomes broken.
   */
  async writeData(data: Buffer | string): Promise<void> {
    if (this.broken) throw this.broken;
    this.stage = 'body';
    if (!this.sock.write(data)) await this.drained();
  }

  /** A reply that has already arrived, without waiting; undefined when none has. */
  takeReply(): SmtpReply | undefined {
    return this.queue.shift();
  }

  /** Reads the next reply; on timeout the connection is closed. @throws SmtpClientError */
  readReply(stage: SmtpStage, timeoutMs: number = this.opts.commandTimeoutMs): Promise<SmtpReply> {
    this.stage = stage;
    const queued = this.queue.shift();
    if (queued) return Promise.resolve(queued);
    if (this.broken) return Promise.reject(this.broken);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.fail(new SmtpClientError('timeout', stage, `conversation with ${this.remoteMta} timed out after ${timeoutMs} ms while waiting for reply to ${stageWords(stage)}`));
      }, timeoutMs);
      this.waiter = {
        resolve: (r) => { clearTimeout(timer); resolve(r); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      };
    });
  }

  /**
   * Reads the next reply like readReply; a 421 ends the session (RFC 5321 3.8): the connection is
   * closed at once (never pooled again) and the 421 is thrown.
   * @throws SmtpClientError ('reply' with the 421 as remoteReply, or the read's own error)
   */
  async expectReply(stage: SmtpStage, timeoutMs: number = this.opts.commandTimeoutMs): Promise<SmtpReply> {
    const r = await this.readReply(stage, timeoutMs);
    if (r.code === 421) throw this.closedBy421(stage, r);
    return r;
  }

  /** Closes the connection after a 421 reply to `stage`; returns the error that says so. */
  closedBy421(stage: SmtpStage, r: SmtpReply): SmtpClientError {
    const e = new SmtpClientError('reply', stage, `host ${this.remoteMta} closed the session in reply to ${stageWords(stage)}: ${replyToString(r)}`, { remoteReply: r });
    this.destroy(e);
    return e;
  }

  /**
   * Streams wire-ready body bytes (already dot-stuffed, with the end-of-data indicator) to the server
   * with backpressure. An error from `body` closes the connection (the server then discards the mail).
   * @throws the body's own error, or SmtpClientError when the connection fails.
   */
  async sendBody(body: Readable): Promise<void> {
    this.stage = 'body';
    if (this.broken) throw this.broken;
    // A plain write loop rather than stream.pipeline: pipeline with {end:false} on a reused socket
    // leaves one 'close' listener per message and costs an AbortController per call.
    const iterator = body[Symbol.asyncIterator]();
    for (;;) {
      let step: IteratorResult<unknown>;
      try {
        step = await iterator.next();
      } catch (sourceError) {
        this.fail(new SmtpClientError('local', 'body', `message body failed: ${(sourceError as Error).message}`, { cause: sourceError }));
        throw sourceError;
      }
      if (step.done) return;
      if (this.broken) {
        body.destroy();
        throw this.broken;
      }
      if (!this.sock.write(step.value as Buffer)) {
        try {
          await this.drained();
        } catch (err) {
          body.destroy(); // release the body file
          throw err;
        }
      }
    }
  }

  /** Resolves on 'drain' (core/drain.ts); rejects when the connection breaks first (deadline, reset, close). */
  private async drained(): Promise<void> {
    if ((await waitForDrain(this.sock)) === 'drain') return;
    throw this.broken ?? new SmtpClientError('lost', 'body', `lost connection with ${this.remoteMta} while sending message body`);
  }

  /** Starts the whole-transaction deadline (ms); when it passes the connection is closed. */
  setDeadline(ms: number): void {
    this.clearDeadline();
    this.deadline = setTimeout(() => {
      this.fail(new SmtpClientError('timeout', this.stage, `transaction with ${this.remoteMta} exceeded its deadline of ${ms} ms (during ${stageWords(this.stage)})`));
    }, ms);
  }

  clearDeadline(): void {
    if (this.deadline) clearTimeout(this.deadline);
    this.deadline = undefined;
  }

  /** RSET (RFC 5321 4.1.1.5); resolves true on 250. Never throws. */
  async reset(): Promise<boolean> {
    try {
      const r = await this.command('RSET', 'rset');
      if (isOk(r)) this.inTransaction = false;
      else this.destroy();
      return isOk(r);
    } catch {
      return false;
    }
  }

  /** QUIT (RFC 5321 4.1.1.10) and close; waits at most the command timeout (cap 5 s). Never throws. */
  async quit(): Promise<void> {
    if (this.usable) {
      try {
        await this.command('QUIT', 'quit', Math.min(this.opts.commandTimeoutMs, 5000));
      } catch { /* closing anyway */ }
    }
    this.destroy();
  }

  /** Closes the connection at once. */
  destroy(reason?: SmtpClientError): void {
    this.fail(reason ?? new SmtpClientError('lost', this.stage, `connection to ${this.remoteMta} closed`));
  }

  private fail(e: SmtpClientError): void {
    this.clearDeadline();
    if (!this.broken) this.broken = e;
    this.sock.destroy();
    const w = this.waiter;
    this.waiter = undefined;
    w?.reject(this.broken);
  }

  private readonly onData = (chunk: Buffer): void => {
    const r = this.parser.push(chunk);
    for (const x of r.replies) if (x.code === 421) this.closing ??= x;
    this.queue.push(...r.replies);
    while (this.waiter && this.queue.length > 0) {
      const w = this.waiter;
      this.waiter = undefined;
      w.resolve(this.queue.shift()!);
    }
    if (r.error) {
      this.fail(new SmtpClientError('malformed', this.stage, `malformed reply from ${this.remoteMta} to ${stageWords(this.stage)}: ${r.error.message} ("${r.error.excerpt}")`, { cause: r.error }));
    }
  };

  private readonly onError = (err: Error): void => {
    this.fail(new SmtpClientError('lost', this.stage, `lost connection with ${this.remoteMta} while waiting for reply to ${stageWords(this.stage)}: ${err.message}`, { cause: err }));
  };

  private readonly onClose = (): void => {
    this.fail(new SmtpClientError('lost', this.stage, `lost connection with ${this.remoteMta} while waiting for reply to ${stageWords(this.stage)}`));
  };

  private attach(s: Socket): void {
    s.on('data', this.onData);
    s.on('error', this.onError);
    s.on('close', this.onClose);
  }

  private detach(s: Socket): void {
    s.off('data', this.onData);
    s.off('error', this.onError);
    s.off('close', this.onClose);
  }
}
