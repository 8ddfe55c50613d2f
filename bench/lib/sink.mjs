// The relay target: Postfix's smtp-sink, counting without dumping. With -c it prints a running
// "sess=N quit=N mesg=N" counter (one \r-terminated update per "." received) on stdout; we keep
// the last mesg= value. No disk I/O, and the C event loop costs far less CPU than any sink we
// could write in Node on a machine whose two cores are shared by everything in the run.
// sess= (sessions ended) is kept too: the connections the sink served, counted at the receiver.
import { spawn } from 'node:child_process';

export class Sink {
  /** @param {{ bin: string, port: number, name: string, host?: string }} o host: the loopback address to listen on (default 127.0.0.1). */
  constructor({ bin, port, name, host = '127.0.0.1' }) {
    this.bin = bin; this.port = port; this.name = name; this.host = host;
    this.count = 0;
    this.sessions = 0; // SMTP sessions ended (smtp-sink's sess=)
    this.proc = null;
    this.exited = false;
    this.stderr = '';
  }

  start() {
    const args = [];
    if (process.getuid?.() === 0) args.push('-u', 'postfix'); // smtp-sink refuses to run as root
    // -m: simultaneous connections it serves (both servers open at most a few dozen)
    args.push('-c', '-m', '1024', `${this.host}:${this.port}`, '1024');
    this.command = [this.bin, ...args].join(' ');
    this.proc = spawn(this.bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let tail = '';
    this.proc.stdout.setEncoding('latin1');
    this.proc.stdout.on('data', (d) => {
      tail = (tail + d).slice(-200);
      const all = [...tail.matchAll(/mesg=(\d+)/g)];
      if (all.length) this.count = Math.max(this.count, Number(all[all.length - 1][1]));
      const sess = [...tail.matchAll(/sess=(\d+)/g)];
      if (sess.length) this.sessions = Math.max(this.sessions, Number(sess[sess.length - 1][1]));
    });
    this.proc.stderr.on('data', (d) => { this.stderr = (this.stderr + d).slice(-2000); });
    this.proc.on('exit', () => { this.exited = true; });
    return new Promise((resolve, reject) => {
      const t = setTimeout(resolve, 300); // it binds synchronously; give it a moment
      this.proc.once('exit', (code) => { clearTimeout(t); reject(new Error(`smtp-sink exited (${code}): ${this.stderr}`)); });
    });
  }

  /** Waits until the counter reaches n; returns the time it did (ms epoch) or null on timeout. */
  async waitFor(n, timeoutMs) {
    const deadline = Date.now() + timeoutMs;
    while (this.count < n) {
      if (this.exited) throw new Error(`smtp-sink ${this.name} exited: ${this.stderr}`);
      if (Date.now() > deadline) return null;
      await new Promise((r) => setTimeout(r, 5));
    }
    return Date.now();
  }

  async stop() {
    if (!this.proc || this.exited) return;
    this.proc.kill('SIGTERM');
    await new Promise((r) => { const t = setTimeout(r, 2000); this.proc.once('exit', () => { clearTimeout(t); r(); }); });
    if (!this.exited) this.proc.kill('SIGKILL');
  }
}

/** Messages received by all of `sinks` together. */
export const totalCount = (sinks) => sinks.reduce((a, s) => a + s.count, 0);
/** Sessions ended at all of `sinks` together (the connections they served). */
export const totalSessions = (sinks) => sinks.reduce((a, s) => a + s.sessions, 0);

/**
 * Waits until `sinks` together have received n messages; returns the time they did (ms epoch) or
 * null after timeoutMs. Throws when one of them exited.
 */
export async function waitForTotal(sinks, n, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (totalCount(sinks) < n) {
    const dead = sinks.find((s) => s.exited);
    if (dead) throw new Error(`smtp-sink ${dead.name} exited: ${dead.stderr}`);
    if (Date.now() > deadline) return null;
    await new Promise((r) => setTimeout(r, 5));
  }
  return Date.now();
}
