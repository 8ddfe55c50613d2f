/**
 * SubmitServer: the submit socket (`dataDir/submit.sock`, unix socket) through which
 * `postline sendmail` hands a message to the running server. It accepts one verb, submit
 * (protocol.ts): the envelope line, the message in frames up to an empty frame, one answer line.
 * Every message enters cleanup's door for whole messages (`openSubmission`) with origin
 * `{ kind: 'local', localUser: <claimed>, localUserSource: 'claimed' }`: Node cannot read the
 * peer's credentials (SO_PEERCRED), so the name is the client's word.
 *
 * Open to every local user (mode 0666) or, with `sendmail.group`, to that group (0660). The control
 * socket (src/control/, 0600, admin verbs) is a different socket: nothing here reaches the queue
 * but cleanup. Bounds: limits.maxMessageSize (counted as bytes arrive: past it the answer is
 * 552 5.3.4 at once and the rest is read away for at most 5 s), the envelope line
 * (MAX_ENVELOPE_BYTES), sendmail.maxConnections, and sendmail.idleTimeoutMs of silence.
 */
import { chmodSync, chownSync, existsSync, unlinkSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { PostlineError, toPostlineError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { R, reply } from '../core/reply.js';
import type { MessageOrigin, Rejection, StreamSubmissionSink } from '../core/session.js';
import { feedFramed, StreamReader } from './feed.js';
import { acceptedAnswer, encodeAnswer, MAX_ENVELOPE_BYTES, parseEnvelope, refusedAnswer, type SubmitAnswer } from './protocol.js';

export interface SubmitServerOptions {
  /** Path of the unix socket, normally `${dataDir}/submit.sock`. */
  readonly socketPath: string;
  readonly sink: StreamSubmissionSink;
  /** Read at each message (live limits). */
  readonly limits: () => { readonly maxMessageSize: number; readonly maxRecipients: number };
  /** Group allowed to connect (mode 0660); undefined: everyone (0666). */
  readonly gid?: number;
  readonly maxConnections: number;
  /** Silence on a connection before it is dropped, ms. */
  readonly idleTimeoutMs: number;
  readonly logger: Logger;
  /** Records a refusal (message.rejected, stage 'local'). */
  readonly rejected?: (origin: MessageOrigin, r: Omit<Rejection, 'stage'>) => void;
}

/** After a refusal, how long the rest of a message is read away so the client sees the answer, ms. */
const DISCARD_MS = 5000;

/** True when something answers on the unix socket `path`. */
function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection(path);
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

export class SubmitServer {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private readonly inFlight = new Set<Promise<void>>();

  constructor(private readonly o: SubmitServerOptions) {}

  /**
   * Listens (mode 0666, or 0660 with the group), removing a stale socket file first.
   * @throws Error when another process answers on the path, or listen / chown fails.
   */
  async start(): Promise<void> {
    if (this.server) return;
    const path = this.o.socketPath;
    if (existsSync(path)) {
      if (await socketAnswers(path)) throw new Error(`submit socket ${path} is in use: is another Postline running on this data directory?`);
      unlinkSync(path);
    }
    const server = createServer({ allowHalfOpen: true }, (sock) => this.onConnection(sock));
    server.maxConnections = this.o.maxConnections;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => { server.off('error', reject); resolve(); });
    });
    try {
      if (this.o.gid !== undefined) chownSync(path, -1, this.o.gid);
      chmodSync(path, this.o.gid !== undefined ? 0o660 : 0o666);
    } catch (err) {
      server.close();
      throw err;
    }
    server.on('error', (err) => this.o.logger.error({ err }, 'submit socket error'));
    this.server = server;
    this.o.logger.debug({ socketPath: path }, 'submit socket listening');
  }

  /** Stops listening; messages being received get `graceMs` to finish, then their connections are cut (nothing was answered: the command falls back to the maildrop). Never rejects. */
  async stop(graceMs = 2000): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    try { unlinkSync(this.o.socketPath); } catch { /* already gone */ }
    await Promise.race([Promise.allSettled([...this.inFlight]), new Promise((r) => setTimeout(r, graceMs).unref())]);
    for (const s of this.sockets) s.destroy();
    await closed;
  }

  private onConnection(sock: Socket): void {
    this.sockets.add(sock);
    sock.setTimeout(this.o.idleTimeoutMs, () => {
      this.o.logger.info('submit connection idle: dropped');
      sock.destroy();
    });
    sock.on('error', (err) => this.o.logger.debug({ err }, 'submit client error'));
    const run = this.serve(sock).catch((err: unknown) => {
      this.o.logger.error({ err }, 'submit connection failed');
      sock.destroy();
    });
    this.inFlight.add(run);
    void run.finally(() => { this.inFlight.delete(run); this.sockets.delete(sock); });
  }

  /** One submission: envelope line, message, answer. */
  private async serve(sock: Socket): Promise<void> {
    const reader = new StreamReader(sock);
    const line = await reader.line(MAX_ENVELOPE_BYTES);
    if (line === undefined) return void sock.destroy();
    if (line === 'too-long') return this.answer(sock, refusedAnswer(reply(552, '5.5.3', 'Envelope line too long'), 'ERR_SUBMIT_ENVELOPE'), reader);
    const limits = this.o.limits();
    const parsed = parseEnvelope(line, limits);
    if (!parsed.ok) {
      this.o.logger.info({ reply: parsed.reply.code, code: parsed.code }, 'submit refused');
      return this.answer(sock, refusedAnswer(parsed.reply, parsed.code), reader);
    }
    const { envelope, user } = parsed.value;
    const origin: MessageOrigin = { kind: 'local', localUser: user ?? 'unknown', localUserSource: 'claimed' };
    const refuse = (e: PostlineError): Promise<void> => {
      this.o.rejected?.(origin, { reply: refusedAnswer(e.reply).reply, mailFrom: envelope.mailFrom, ...(e.check ? { check: e.check } : {}) });
      this.o.logger.info({ from: envelope.mailFrom, user, reply: e.reply.code, code: e.code }, 'submit refused');
      return this.answer(sock, refusedAnswer(e.reply, e.code), reader);
    };
    let msg;
    try {
      msg = await this.o.sink.openSubmission({ origin, envelope, addMissingFields: true });
    } catch (err) {
      return refuse(toPostlineError(err));
    }
    const fed = await feedFramed(reader, msg, limits.maxMessageSize);
    if (fed.done !== 'end') {
      await msg.abort();
      if (fed.done === 'error' || sock.destroyed) return void sock.destroy(); // the client is gone: nothing was answered
      return refuse(new PostlineError('ERR_SIZE', `over ${limits.maxMessageSize} bytes`, { temporary: false, reply: R.sizeExceeded }));
    }
    if (sock.destroyed) return void (await msg.abort());
    try {
      const done = await msg.finish();
      await this.answer(sock, acceptedAnswer(done.queueId), undefined);
    } catch (err) {
      await refuse(toPostlineError(err));
    }
  }

  /** Writes the answer and ends the connection; after a refusal, reads away what the client still sends (bounded). */
  private async answer(sock: Socket, a: SubmitAnswer, discard: StreamReader | undefined): Promise<void> {
    if (sock.destroyed) return;
    if (discard) {
      const t = setTimeout(() => sock.destroy(), DISCARD_MS);
      t.unref();
      void (async () => { while (await discard.next()); })().finally(() => clearTimeout(t));
    }
    await new Promise<void>((resolve) => {
      sock.end(encodeAnswer(a), () => resolve());
      sock.once('close', () => resolve());
    });
    if (!discard) sock.destroy();
  }
}
