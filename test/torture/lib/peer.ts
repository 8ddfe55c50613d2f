/**
 * A hostile next hop for the fault suite: a tiny SMTP receiver on loopback whose behaviour can be
 * switched at any time. Modes: 'ok' (a plain receiver), 'blackhole' (accepts TCP, never writes),
 * 'slow-read' (after DATA reads one byte a second), 'drop-after-data' (reads the whole message,
 * then closes without a reply, the first time it sees that message; later copies get 250), 'malformed' (answers EHLO with lines that are not SMTP replies).
 * Counts connections, and every complete message it read by the `m<N>@` number of its recipient
 * (whether or not it answered 250), so duplicates show.
 */
import { createServer, type Server, type Socket } from 'node:net';

export type PeerMode = 'ok' | 'blackhole' | 'slow-read' | 'drop-after-data' | 'malformed';

export class HostilePeer {
  mode: PeerMode;
  connections = 0;
  /** Connections closed so far (by either side). */
  closed = 0;
  /** Complete messages read, by number: how many times. */
  readonly received = new Map<number, number>();
  /** Numbers answered 250. */
  readonly accepted = new Map<number, number>();
  private server?: Server;
  private readonly sockets = new Set<Socket>();
  private readonly timers = new Set<NodeJS.Timeout>();
  port = 0;

  constructor(mode: PeerMode) { this.mode = mode; }

  async start(port = 0): Promise<this> {
    this.server = createServer((s) => this.onConnection(s));
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(port, '127.0.0.1', () => resolve());
    });
    this.port = (this.server.address() as { port: number }).port;
    return this;
  }

  /** Closes the listener and every connection. */
  async stop(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.timers.clear();
    for (const s of this.sockets) s.destroy();
    const srv = this.server;
    this.server = undefined;
    if (srv) await new Promise<void>((resolve) => srv.close(() => resolve()));
  }

  /** Open connections now. */
  open(): number { return this.sockets.size; }

  private onConnection(s: Socket): void {
    this.connections++;
    this.sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => { this.sockets.delete(s); this.closed++; });
    const mode = this.mode;
    if (mode === 'blackhole') { s.resume(); return; }
    s.write('220 peer.test ESMTP\r\n');
    let buf = '';
    let inData = false;
    let rcpt = -1;
    const onData = (d: Buffer): void => {
      buf += d.toString('latin1');
      for (;;) {
        if (inData) {
          const end = buf.indexOf('\r\n.\r\n');
          if (end < 0) { if (buf.length > 4096) buf = buf.slice(-8); return; }
          buf = buf.slice(end + 5);
          inData = false;
          if (rcpt >= 0) this.received.set(rcpt, (this.received.get(rcpt) ?? 0) + 1);
          if (mode === 'drop-after-data' && this.received.get(rcpt) === 1) { s.destroy(); return; }
          if (rcpt >= 0) this.accepted.set(rcpt, (this.accepted.get(rcpt) ?? 0) + 1);
          s.write('250 2.0.0 ok\r\n');
          continue;
        }
        const nl = buf.indexOf('\r\n');
        if (nl < 0) return;
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 2);
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === 'EHLO' || verb === 'HELO') {
          s.write(mode === 'malformed' ? 'hello there\r\n25O-what\r\n' : '250-peer.test\r\n250 8BITMIME\r\n');
        } else if (verb === 'RCPT') {
          const m = /<m(\d+)@/.exec(line);
          rcpt = m ? Number(m[1]) : -1;
          s.write('250 2.1.5 ok\r\n');
        } else if (verb === 'DATA') {
          s.write('354 go ahead\r\n');
          inData = true;
          if (mode === 'slow-read') { this.slowRead(s, onData); return; }
        } else if (verb === 'QUIT') {
          s.end('221 bye\r\n');
          return;
        } else {
          s.write('250 ok\r\n');
        }
      }
    };
    s.on('data', onData);
  }

  /** From now on reads one byte a second (the kernel buffers fill, the sender stalls). */
  private slowRead(s: Socket, onData: (d: Buffer) => void): void {
    s.off('data', onData);
    s.pause();
    const t = setInterval(() => {
      if (s.destroyed) { clearInterval(t); this.timers.delete(t); return; }
      s.read(1);
    }, 1000);
    this.timers.add(t);
  }
}
