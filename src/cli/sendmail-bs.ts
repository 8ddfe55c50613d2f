/**
 * `postline sendmail -bs`: an SMTP session on standard input and output (RFC 5321), for programs
 * that speak SMTP to a local command (Postfix's stand-alone smtpd mode). It is smtpd's own session
 * (src/smtpd/session.ts: the same verbs, PIPELINING, 8BITMIME, SMTPUTF8, DSN, SIZE, CHUNKING, limits and
 * timeouts) over a duplex of stdin and stdout, with no TLS and no AUTH: the caller is a local user,
 * as with the plain command. Every recipient is accepted (relaying is what a local submission is);
 * each message goes to the server through the submit socket, or to the maildrop (sendmail-submit.ts),
 * and the 250 answer comes only once it is there. Logs go to standard error with -v, else nowhere.
 */
import { Duplex, type Readable, type Writable } from 'node:stream';
import { pino } from 'pino';
import { listenerSchema, type PostlineConfig } from '../config/schema.js';
import type { Envelope } from '../core/envelope.js';
import { PostlineError } from '../core/errors.js';
import { reply, R } from '../core/reply.js';
import type { IncomingMessage, MessageSink, RecipientDecision, SmtpPolicy } from '../core/session.js';
import { Session } from '../smtpd/session.js';
import { submitMessage } from './sendmail-submit.js';
import { EX, SendmailExit } from './sysexits.js';

/** stdin and stdout as the one socket a Session reads and writes. */
class StdioSocket extends Duplex {
  constructor(private readonly input: Readable, private readonly output: Writable) {
    super({ allowHalfOpen: true });
    input.on('data', (c: Buffer) => { if (!this.push(c)) input.pause(); });
    input.on('end', () => this.push(null));
    input.on('error', (err) => this.destroy(err));
    output.on('error', (err) => this.destroy(err));
  }

  override _read(): void {
    this.input.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.output.write(chunk, (err) => cb(err ?? null));
  }

  override _final(cb: (err?: Error | null) => void): void {
    cb(null);
  }

  /** A socket's no-op here. */
  setNoDelay(): this {
    return this;
  }
}

/** The policy of a local session: no checks (the caller is a local user), no AUTH. */
const LOCAL_POLICY: SmtpPolicy = {
  checkMailFrom: () => undefined,
  checkRecipient: (_s, rcpt): RecipientDecision => ({ accept: true, recipient: rcpt }),
  authenticate: () => Promise.resolve(false),
  mayRelay: () => true,
};

/** A message of the session: kept in memory (the session bounds it by limits.maxMessageSize), submitted at the end of data. */
function localSink(config: PostlineConfig, user: string, verbose?: (line: string) => void): MessageSink {
  return {
    begin: (_s, envelope: Envelope): Promise<IncomingMessage> => {
      const parts: Buffer[] = [];
      let closed = false;
      return Promise.resolve({
        queueId: 'local',
        write: (chunk: Buffer) => { if (!closed) parts.push(Buffer.from(chunk)); return true; },
        drain: () => Promise.resolve(),
        abort: () => { closed = true; parts.length = 0; return Promise.resolve(); },
        finish: async (): Promise<string> => {
          closed = true;
          const head = parts.length ? parts.shift()! : Buffer.alloc(0);
          async function* rest(): AsyncGenerator<Buffer> { yield* parts; }
          try {
            const out = await submitMessage({ dataDir: config.dataDir, maxMessageSize: config.limits.maxMessageSize, ...(verbose ? { verbose } : {}) }, { envelope, user }, head, rest());
            return out.via === 'socket' ? out.queueId : `maildrop/${out.file}`;
          } catch (err) {
            throw toReplyError(err);
          }
        },
      });
    },
  };
}

/** A failure of the submission as the reply to the end of data. */
function toReplyError(err: unknown): PostlineError {
  if (err instanceof SendmailExit && err.serverReply) {
    const m = /^(\d{3}) (?:(\d\.\d{1,3}\.\d{1,3}) )?(.*)$/.exec(err.serverReply);
    if (m) return new PostlineError('ERR_SUBMIT_REFUSED', err.message, { temporary: m[1]!.startsWith('4'), reply: reply(Number(m[1]), m[2], m[3] ?? '') });
  }
  if (err instanceof SendmailExit && err.exitCode === EX.DATAERR) return new PostlineError('ERR_SIZE', err.message, { temporary: false, reply: R.sizeExceeded });
  return new PostlineError('ERR_SUBMIT_LOCAL', (err as Error).message, { temporary: true, reply: reply(451, '4.3.0', 'Local error: the message could not be handed to Postline') });
}

/**
 * Runs one SMTP session on `input` / `output` until QUIT or the end of input.
 * @returns EX_OK (failed transactions were answered in the session).
 */
export async function runStdioSession(config: PostlineConfig, io: { input: Readable; output: Writable; stderr: Writable; user: string; verbose: boolean }): Promise<number> {
  const listener = listenerSchema.parse({ name: 'stdio', address: '127.0.0.1', port: 25, role: 'mx', tls: 'none' });
  const logger = pino({ level: io.verbose ? 'info' : 'silent', base: undefined }, io.stderr as never);
  const verbose = io.verbose ? (line: string) => void io.stderr.write(`postline sendmail: ${line}\n`) : undefined;
  const socket = new StdioSocket(io.input, io.output);
  const session = new Session({
    config, listener, sink: localSink(config, io.user, verbose), policy: LOCAL_POLICY, logger,
    socket: socket as never, secureContext: () => undefined,
    endpoints: { clientAddress: '127.0.0.1', clientPort: 0, localAddress: '127.0.0.1', localPort: 0 },
  });
  await session.done;
  return EX.OK;
}
