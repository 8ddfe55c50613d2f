// The Node ceiling: the least an SMTP server in Node can do per message on this machine. It speaks
// just enough SMTP for smtp-source and the probe (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT,
// with PIPELINING: every command in a read is answered in one write), accepts each message and
// discards it: no queue, no disk, no parsing beyond finding the end of DATA. Each grid point is
// reported as a percentage of it.
//
//   node bench/lib/ceiling.mjs <port>        (listens on 127.0.0.1; SIGTERM stops it)
import net from 'node:net';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { BenchSmtpClient } from './smtp-client.mjs';

const END = Buffer.from('\r\n.\r\n');

/** One connection: command lines, or the DATA body until CRLF.CRLF. */
function serve(socket) {
  socket.setNoDelay(true);
  let buf = Buffer.alloc(0);
  let inData = false;
  let atLineStart = true; // DATA starts at a line start, so ".\r\n" first ends an empty body
  socket.write('220 ceiling.test ESMTP\r\n');
  socket.on('data', (chunk) => {
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    let out = '';
    let closing = false;
    while (buf.length && !closing) {
      if (inData) {
        if (atLineStart && buf.length >= 3 && buf[0] === 0x2e && buf[1] === 0x0d && buf[2] === 0x0a) {
          buf = buf.subarray(3); inData = false; out += '250 2.0.0 Ok: discarded\r\n'; continue;
        }
        const i = buf.indexOf(END);
        if (i < 0) { // keep the last 4 bytes: the terminator may straddle two reads
          if (buf.length > 4) { atLineStart = false; buf = Buffer.from(buf.subarray(buf.length - 4)); }
          break;
        }
        buf = buf.subarray(i + END.length); inData = false; out += '250 2.0.0 Ok: discarded\r\n';
        continue;
      }
      const nl = buf.indexOf(10);
      if (nl < 0) break;
      const line = buf.subarray(0, nl).toString('latin1').replace(/\r$/, '');
      buf = buf.subarray(nl + 1);
      const verb = line.slice(0, 4).toUpperCase();
      if (verb === 'EHLO') out += '250-ceiling.test\r\n250-PIPELINING\r\n250-SIZE 1073741824\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n';
      else if (verb === 'HELO') out += '250 ceiling.test\r\n';
      else if (verb === 'MAIL' || verb === 'RCPT' || verb === 'RSET' || verb === 'NOOP') out += '250 2.0.0 Ok\r\n';
      else if (verb === 'DATA') { out += '354 End data with <CR><LF>.<CR><LF>\r\n'; inData = true; atLineStart = true; }
      else if (verb === 'QUIT') { out += '221 2.0.0 Bye\r\n'; closing = true; }
      else out += '502 5.5.2 Not implemented\r\n';
    }
    if (out) socket.write(out);
    if (closing) socket.end();
  });
  socket.on('error', () => socket.destroy());
}

/** The ceiling as a child process, measured like the servers (rootPid, start, stop). */
export class CeilingServer {
  constructor({ port }) {
    this.name = 'ceiling';
    this.port = port;
    this.proc = null;
    this.rootPid = null;
    this.exited = false;
  }

  get command() { return `node bench/lib/ceiling.mjs ${this.port}`; }

  async start() {
    this.proc = spawn(process.execPath, [fileURLToPath(import.meta.url), String(this.port)], { stdio: ['ignore', 'ignore', 'inherit'] });
    this.rootPid = this.proc.pid;
    this.exited = false;
    this.proc.on('exit', () => { this.exited = true; });
    const deadline = Date.now() + 10000;
    for (;;) {
      if (this.exited) throw new Error('the ceiling server exited during start');
      try { const c = await BenchSmtpClient.connect({ port: this.port, timeoutMs: 1000 }); await c.quit(); return; } catch (e) {
        if (Date.now() > deadline) throw new Error(`the ceiling server did not answer: ${e.message}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  queueDepth() { return 0; }

  describe() { return { start: this.command }; }

  async stop() {
    if (!this.proc || this.exited) return;
    this.proc.kill('SIGTERM');
    await new Promise((r) => { const t = setTimeout(r, 5000); this.proc.once('exit', () => { clearTimeout(t); r(); }); });
  }

  stopSync() { if (this.proc && !this.exited) { try { this.proc.kill('SIGKILL'); } catch { /* gone */ } } }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const port = Number(process.argv[2]);
  const server = net.createServer(serve);
  server.maxConnections = 20000;
  server.listen(port, '127.0.0.1');
  process.on('SIGTERM', () => { server.close(); process.exit(0); });
}
