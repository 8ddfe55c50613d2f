/**
 * A small SMTP client for end-to-end tests, independent of Postline's own client code: it sends
 * exactly the bytes a test asks for and returns the raw replies. Supports STARTTLS and AUTH PLAIN.
 */
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';

export interface Reply {
  code: number;
  text: string;
}

export class RawSmtp {
  private buf = '';
  private waiters: Array<() => void> = [];
  private closed = false;
  ehloLines: string[] = [];

  private constructor(private sock: Socket | TLSSocket) {
    this.attach(sock);
  }

  /** Connects to host:port (implicit TLS when `tls` is true) and reads the greeting. */
  static async open(port: number, opts: { host?: string; tls?: boolean; localAddress?: string } = {}): Promise<{ c: RawSmtp; greeting: Reply }> {
    const host = opts.host ?? '127.0.0.1';
    const sock = await new Promise<Socket | TLSSocket>((resolve, reject) => {
      const s = opts.tls
        ? tlsConnect({ host, port, rejectUnauthorized: false, ...(opts.localAddress ? { localAddress: opts.localAddress } : {}) } as import('node:tls').ConnectionOptions, () => resolve(s))
        : connect({ host, port, localAddress: opts.localAddress }, () => resolve(s));
      s.once('error', reject);
    });
    const c = new RawSmtp(sock);
    const greeting = await c.read();
    return { c, greeting };
  }

  /** Takes over a connected socket (after a test wrote something of its own first, e.g. a PROXY header) and reads the greeting. */
  static async wrap(sock: Socket | TLSSocket): Promise<{ c: RawSmtp; greeting: Reply }> {
    const c = new RawSmtp(sock);
    const greeting = await c.read();
    return { c, greeting };
  }

  private attach(sock: Socket | TLSSocket): void {
    sock.setNoDelay(true);
    sock.on('data', (d: Buffer) => {
      this.buf += d.toString('latin1');
      this.wake();
    });
    sock.on('close', () => {
      this.closed = true;
      this.wake();
    });
    sock.on('error', () => {});
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    w.forEach((f) => f());
  }

  /** Reads one (possibly multi-line) reply. Rejects when the connection closes first or after timeoutMs. */
  async read(timeoutMs = 30_000): Promise<Reply> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = /^(?:(\d{3})-[^\r\n]*\r\n)*(\d{3})(?: [^\r\n]*)?\r\n/.exec(this.buf);
      if (m) {
        const all = m[0];
        this.buf = this.buf.slice(all.length);
        return { code: Number(m[2]), text: all.trimEnd() };
      }
      if (this.closed) throw new Error(`connection closed; unread: ${JSON.stringify(this.buf)}`);
      if (Date.now() > deadline) throw new Error(`no reply within ${timeoutMs} ms; buffer: ${JSON.stringify(this.buf)}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.max(1, deadline - Date.now()));
        this.waiters.push(() => { clearTimeout(t); resolve(); });
      });
    }
  }

  /** Writes raw bytes (a string is sent as latin1 when it has no char > 0xff, else as UTF-8). */
  write(data: string | Buffer): void {
    this.sock.write(typeof data === 'string' ? Buffer.from(data, /[^\x00-\xff]/.test(data) ? 'utf8' : 'latin1') : data);
  }

  /** Sends one command line (CRLF added) and reads its reply. */
  async cmd(line: string, timeoutMs?: number): Promise<Reply> {
    this.write(line + '\r\n');
    return this.read(timeoutMs);
  }

  async ehlo(name = 'client.test'): Promise<Reply> {
    const r = await this.cmd(`EHLO ${name}`);
    this.ehloLines = r.text.split('\r\n').map((l) => l.slice(4));
    return r;
  }

  /** STARTTLS then a TLS handshake over the same socket (certificate not verified). */
  async starttls(): Promise<Reply> {
    const r = await this.cmd('STARTTLS');
    if (r.code !== 220) return r;
    const plain = this.sock;
    plain.removeAllListeners('data');
    plain.removeAllListeners('close');
    this.sock = await new Promise<TLSSocket>((resolve, reject) => {
      const t = tlsConnect({ socket: plain, rejectUnauthorized: false }, () => resolve(t));
      t.once('error', reject);
    });
    this.attach(this.sock);
    return r;
  }

  async authPlain(user: string, pass: string): Promise<Reply> {
    return this.cmd(`AUTH PLAIN ${Buffer.from(`\0${user}\0${pass}`).toString('base64')}`);
  }

  /**
   * One transaction, pipelined: MAIL, RCPTs and DATA in one write, then the dot-stuffed body.
   * `data` must use CRLF; a missing final CRLF is added. Returns every reply.
   */
  async send(mailFrom: string, rcpts: string[], data: Buffer, mailParams = '', timeoutMs = 60_000): Promise<{ mail: Reply; rcpts: Reply[]; data?: Reply; final?: Reply }> {
    this.write(`MAIL FROM:<${mailFrom}>${mailParams ? ' ' + mailParams : ''}\r\n` + rcpts.map((r) => `RCPT TO:<${r}>\r\n`).join('') + 'DATA\r\n');
    const mail = await this.read(timeoutMs);
    const rr: Reply[] = [];
    for (let i = 0; i < rcpts.length; i++) rr.push(await this.read(timeoutMs));
    const d = await this.read(timeoutMs);
    if (d.code !== 354) return { mail, rcpts: rr, data: d };
    this.write(dotStuff(data));
    const final = await this.read(timeoutMs);
    return { mail, rcpts: rr, data: d, final };
  }

  async quit(): Promise<void> {
    try {
      await this.cmd('QUIT', 5000);
    } catch {
      /* closed already */
    }
    this.sock.destroy();
  }

  destroy(): void {
    this.sock.destroy();
  }
}

/** Dot-stuffs CRLF data and appends the terminator (test-side copy, independent of src). */
export function dotStuff(data: Buffer): Buffer {
  const s = data.toString('latin1');
  let body = s.replace(/\r\n\./g, '\r\n..');
  if (body.startsWith('.')) body = '.' + body;
  if (!body.endsWith('\r\n')) body += '\r\n';
  return Buffer.from(body + '.\r\n', 'latin1');
}
