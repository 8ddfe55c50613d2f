// A minimal SMTP client for the bench: connects, reads (multi-line) replies, sends commands.
// TCP_NODELAY is on, and the message body and its final ".\r\n" go out in the same write,
// so the measurement never waits on a delayed ACK.
import net from 'node:net';

export class BenchSmtpClient {
  constructor(socket) {
    this.socket = socket;
    this.buf = '';
    this.lines = [];
    this.waiter = null;
    this.closed = false;
    this.error = null;
    socket.setNoDelay(true);
    socket.setEncoding('latin1');
    socket.on('data', (d) => { this.buf += d; this.#drainLines(); });
    socket.on('error', (e) => { this.error = e; this.#wake(); });
    socket.on('close', () => { this.closed = true; this.#wake(); });
  }

  /** Connects and reads the greeting. */
  static connect({ host = '127.0.0.1', port, localAddress, timeoutMs = 30000 }) {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host, port, localAddress });
      const timer = setTimeout(() => { s.destroy(); reject(new Error(`connect timeout ${host}:${port}`)); }, timeoutMs);
      s.once('error', (e) => { clearTimeout(timer); reject(e); });
      s.once('connect', async () => {
        s.removeAllListeners('error');
        const c = new BenchSmtpClient(s);
        try {
          const r = await c.reply(timeoutMs);
          clearTimeout(timer);
          if (r.code !== 220) { s.destroy(); reject(new Error(`greeting ${r.text}`)); return; }
          resolve(c);
        } catch (e) { clearTimeout(timer); s.destroy(); reject(e); }
      });
    });
  }

  #drainLines() {
    let i;
    while ((i = this.buf.indexOf('\r\n')) >= 0) {
      this.lines.push(this.buf.slice(0, i));
      this.buf = this.buf.slice(i + 2);
    }
    this.#wake();
  }

  #wake() { const w = this.waiter; this.waiter = null; w?.(); }

  /** The next complete reply: { code, text }. */
  async reply(timeoutMs = 60000) {
    const deadline = Date.now() + timeoutMs;
    const acc = [];
    for (;;) {
      while (this.lines.length) {
        const line = this.lines.shift();
        acc.push(line);
        if (line.length < 4 || line[3] !== '-') return { code: Number(line.slice(0, 3)), text: acc.join('\n') };
      }
      if (this.error) throw this.error;
      if (this.closed) throw new Error(`connection closed (got: ${acc.join(' | ') || 'nothing'})`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('reply timeout');
      await new Promise((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiter = () => { clearTimeout(t); resolve(); };
      });
    }
  }

  write(data) {
    return new Promise((resolve, reject) => {
      this.socket.write(data, (e) => (e ? reject(e) : resolve()));
    });
  }

  /** Sends a command and checks the reply code class. */
  async cmd(line, expect = 2) {
    await this.write(line + '\r\n');
    const r = await this.reply();
    if (Math.floor(r.code / 100) !== expect) throw new Error(`${line} -> ${r.text}`);
    return r;
  }

  async quit() {
    try { await this.cmd('QUIT'); } catch { /* ignore */ }
    this.socket.destroy();
  }

  destroy() { this.socket.destroy(); }
}

/** A message of about `size` payload bytes: a few headers and 76-character lines of text. */
export function makeMessage(size, tag = 'probe') {
  const head = `From: <bench@source.test>\r\nTo: <rcpt@sink.test>\r\nSubject: postline bench ${tag}\r\n` +
    `Message-ID: <${tag}.${Date.now()}.${Math.random().toString(36).slice(2)}@source.test>\r\n\r\n`;
  const line = 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-abcdefghijkl\r\n';
  const n = Math.max(1, Math.round(size / line.length));
  return head + line.repeat(n);
}
