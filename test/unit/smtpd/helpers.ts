/**
 * Test helpers for smtpd: a config builder, an in-memory MessageSink, a test SmtpPolicy, a server
 * starter and a small raw SMTP client over 127.0.0.1 with bounded waits.
 */
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configSchema, type PostlineConfig, type ListenerConfig } from '../../../src/config/schema.js';
import { R, type SmtpReply } from '../../../src/core/reply.js';
import type { Envelope, Recipient } from '../../../src/core/envelope.js';
import { silentLogger } from '../../../src/core/log.js';
import { SmtpServer } from '../../../src/smtpd/server.js';
import { loadOrCreateTls, type TlsMaterial } from '../../../src/smtpd/tls.js';
import type { IncomingMessage, MessageSink, RecipientDecision, SessionInfo, SmtpPolicy } from '../../../src/smtpd/types.js';

export const HOST = 'mx.test';

/** A full config for tests: one listener on 127.0.0.1:0; `patch` overrides top-level sections. */
export function testConfig(patch: { limits?: object; timeouts?: object; listener?: Partial<ListenerConfig> } = {}): PostlineConfig {
  return configSchema.parse({
    hostname: HOST,
    dataDir: mkdtempSync(join(tmpdir(), 'postline-smtpd-')),
    listeners: [{ name: 'test', address: '127.0.0.1', port: 0, role: 'mx', tls: 'starttls', ...patch.listener }],
    limits: patch.limits ?? {},
    timeouts: patch.timeouts ?? {},
    log: { level: 'silent', format: 'json' },
  });
}

export interface StoredMessage {
  readonly session: SessionInfo;
  readonly envelope: Envelope;
  readonly data: Buffer;
  readonly queueId: string;
}

/** A MessageSink that keeps committed messages in memory; knobs to fail or slow it. */
export class MemorySink implements MessageSink {
  readonly messages: StoredMessage[] = [];
  aborted = 0;
  begun = 0;
  failBegin?: Error;
  failFinish?: Error;
  /** When > 0, write() returns false after this many bytes until drain() is called. */
  highWater = 0;
  private n = 0;

  async begin(session: SessionInfo, envelope: Envelope): Promise<IncomingMessage> {
    if (this.failBegin) throw this.failBegin;
    this.begun++;
    const chunks: Buffer[] = [];
    let pending = 0;
    const queueId = `Q${String(++this.n).padStart(17, '0')}`;
    const sink = this;
    return {
      queueId,
      write(chunk: Buffer): boolean {
        chunks.push(Buffer.from(chunk));
        pending += chunk.length;
        return sink.highWater === 0 || pending < sink.highWater;
      },
      drain: () => new Promise<void>((resolve) => setImmediate(() => { pending = 0; resolve(); })),
      finish: async () => {
        if (sink.failFinish) throw sink.failFinish;
        sink.messages.push({ session: { ...session }, envelope, data: Buffer.concat(chunks), queueId });
        return queueId;
      },
      abort: async () => { sink.aborted++; },
    };
  }
}

/** Policy: rejects senders "blocked@…" and recipients "unknown…"; rewrites postmaster; alice/secret. */
export class TestPolicy implements SmtpPolicy {
  connectReply?: SmtpReply;
  checkConnect(): SmtpReply | undefined {
    return this.connectReply;
  }
  checkMailFrom(_s: SessionInfo, mailFrom: string): SmtpReply | undefined {
    return mailFrom.startsWith('blocked@') ? R.senderNotOwned : undefined;
  }
  async checkRecipient(_s: SessionInfo, rcpt: Recipient): Promise<RecipientDecision> {
    if (rcpt.address.startsWith('unknown')) return { accept: false, reply: R.noSuchUser };
    if (rcpt.address.toLowerCase() === 'postmaster') return { accept: true, recipient: { ...rcpt, address: `postmaster@${HOST}` } };
    return { accept: true, recipient: rcpt };
  }
  async authenticate(username: string, password: string): Promise<boolean> {
    if (username === 'boom') throw new Error('user store down');
    return username === 'alice' && password === 'secret';
  }
}

let material: TlsMaterial | undefined;
/** A self-signed cert (made once per process, in a temp dataDir). */
export function testTls(): TlsMaterial {
  material ??= loadOrCreateTls(testConfig(), silentLogger());
  return material;
}

export interface Running {
  readonly server: SmtpServer;
  readonly port: number;
  readonly sink: MemorySink;
  readonly policy: TestPolicy;
  readonly config: PostlineConfig;
}

/** Starts a server on 127.0.0.1:0 with the test sink and policy. */
export async function startServer(config = testConfig(), opts: { tls?: boolean } = {}): Promise<Running> {
  const sink = new MemorySink();
  const policy = new TestPolicy();
  const tls = opts.tls === false ? undefined : testTls();
  const server = new SmtpServer({ config, listener: config.listeners[0]!, sink, policy, logger: silentLogger(), tls: () => tls });
  const { port } = await server.listen();
  return { server, port, sink, policy, config };
}

/** Starts a server that is closed when test `t` ends, pass or fail (so a failed test never hangs the file). */
export async function serverFor(t: { after(fn: () => Promise<void>): void }, config = testConfig(), opts: { tls?: boolean } = {}): Promise<Running> {
  const s = await startServer(config, opts);
  t.after(() => s.server.close(1000));
  return s;
}

/** A raw SMTP client: write bytes, read whole replies; every wait is bounded. */
export class RawClient {
  private buf = '';
  private waiters: Array<() => void> = [];
  ended = false;
  socket: Socket | TLSSocket;

  private constructor(socket: Socket | TLSSocket) {
    this.socket = socket;
    this.bind(socket);
  }

  private bind(s: Socket | TLSSocket): void {
    s.setEncoding('latin1');
    s.on('data', (d: string) => { this.buf += d; this.notify(); });
    s.on('end', () => { this.ended = true; this.notify(); });
    s.on('close', () => { this.ended = true; this.notify(); });
    s.on('error', () => { this.ended = true; this.notify(); });
  }

  private notify(): void {
    const w = this.waiters;
    this.waiters = [];
    w.forEach((f) => f());
  }

  static async connect(port: number, opts: { tls?: boolean } = {}): Promise<RawClient> {
    const socket = opts.tls
      ? tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false })
      : connect({ host: '127.0.0.1', port });
    await new Promise<void>((resolve, reject) => {
      socket.once(opts.tls ? 'secureConnect' : 'connect', () => resolve());
      socket.once('error', reject);
    });
    return new RawClient(socket);
  }

  write(raw: string | Buffer): void {
    this.socket.write(raw);
  }

  /** Next complete reply as its raw text lines (e.g. ["250-a", "250 b"]). */
  async reply(timeoutMs = 5000): Promise<string[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const lines = this.buf.split('\r\n');
      const done = lines.findIndex((l) => /^\d{3}( |$)/.test(l));
      if (done >= 0 && done < lines.length - 1) {
        const out = lines.slice(0, done + 1);
        this.buf = lines.slice(done + 1).join('\r\n');
        return out;
      }
      if (this.ended) throw new Error(`connection closed; pending: ${JSON.stringify(this.buf)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no reply within ${timeoutMs} ms; pending: ${JSON.stringify(this.buf)}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => { clearTimeout(t); resolve(); });
      });
    }
  }

  /** The last line of the next reply, e.g. "250 2.1.0 Sender OK". */
  async last(timeoutMs?: number): Promise<string> {
    const r = await this.reply(timeoutMs);
    return r[r.length - 1]!;
  }

  /** Sends a command line (CRLF added) and returns the last line of its reply. */
  async cmd(line: string): Promise<string> {
    this.write(line + '\r\n');
    return this.last();
  }

  /** Resolves when the server has closed the connection (bounded). */
  async closed(timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.ended) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('connection still open');
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => { clearTimeout(t); resolve(); });
      });
    }
  }

  /** Upgrades this connection to TLS after a 220 to STARTTLS. */
  async startTls(): Promise<void> {
    const plain = this.socket as Socket;
    plain.removeAllListeners('data');
    const secure = tlsConnect({ socket: plain, rejectUnauthorized: false, servername: 'localhost' });
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', () => resolve());
      secure.once('error', reject);
    });
    this.socket = secure;
    this.bind(secure);
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** Connects, reads the greeting, sends EHLO; returns the client and the EHLO reply lines. */
export async function ehlo(port: number, opts: { tls?: boolean } = {}): Promise<{ c: RawClient; lines: string[] }> {
  const c = await RawClient.connect(port, opts);
  const greeting = await c.last();
  if (!greeting.startsWith('220 ')) throw new Error(`bad greeting ${greeting}`);
  c.write('EHLO client.test\r\n');
  return { c, lines: await c.reply() };
}
