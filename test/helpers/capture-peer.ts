/**
 * A capturing SMTP receiver for end-to-end tests where Postfix's smtp-sink cannot serve (it does not
 * offer SMTPUTF8): a real TCP server on 127.0.0.1 that accepts every transaction and keeps the exact
 * bytes (dot-unstuffed, CRLF kept). Offers PIPELINING, 8BITMIME, SMTPUTF8, DSN and ENHANCEDSTATUSCODES.
 */
import { createServer, type Socket } from 'node:net';

export interface CapturedMessage {
  readonly mailFrom: string;
  readonly recipients: string[];
  readonly mailParams: string;
  readonly data: Buffer;
  /** The client's source address and the name it gave in EHLO/HELO. */
  readonly clientAddress?: string;
  readonly ehlo?: string;
}

export interface CapturePeer {
  readonly port: number;
  readonly messages: CapturedMessage[];
  /** Connections accepted so far. */
  connections(): number;
  close(): Promise<void>;
}

export async function startCapturePeer(opts: { smtputf8?: boolean } = {}): Promise<CapturePeer> {
  const messages: CapturedMessage[] = [];
  const sockets = new Set<Socket>();
  let accepted = 0;
  const server = createServer((sock) => {
    accepted++;
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => {});
    serve(sock, messages, opts.smtputf8 ?? true);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    messages,
    connections: () => accepted,
    close: () => new Promise<void>((resolve) => {
      sockets.forEach((s) => s.destroy());
      server.close(() => resolve());
    }),
  };
}

function serve(sock: Socket, out: CapturedMessage[], smtputf8: boolean): void {
  let buf = Buffer.alloc(0);
  let inData = false;
  let from = '';
  let params = '';
  let rcpts: string[] = [];
  let ehlo = '';
  const clientAddress = (sock.remoteAddress ?? '').replace(/^::ffff:/, '');
  const reply = (s: string) => sock.write(s + '\r\n');
  reply('220 capture.test ESMTP');
  sock.on('data', (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    for (;;) {
      if (inData) {
        const end = buf.indexOf('\r\n.\r\n');
        const atStart = buf.subarray(0, 3).toString() === '.\r\n';
        if (!atStart && end < 0) return;
        const raw = atStart ? Buffer.alloc(0) : buf.subarray(0, end + 2);
        buf = buf.subarray(atStart ? 3 : end + 5);
        const data = Buffer.from(raw.toString('latin1').replace(/(^|\r\n)\./g, '$1'), 'latin1');
        out.push({ mailFrom: from, recipients: rcpts, mailParams: params, data, clientAddress, ehlo });
        inData = false;
        reply('250 2.0.0 captured');
        continue;
      }
      const nl = buf.indexOf('\r\n');
      if (nl < 0) return;
      const line = buf.subarray(0, nl).toString('utf8');
      buf = buf.subarray(nl + 2);
      const verb = line.slice(0, 4).toUpperCase();
      if (verb === 'EHLO' || verb === 'HELO') ehlo = line.slice(5).trim();
      if (verb === 'EHLO') reply(['250-capture.test', '250-PIPELINING', '250-8BITMIME', ...(smtputf8 ? ['250-SMTPUTF8'] : []), '250-DSN', '250 ENHANCEDSTATUSCODES'].join('\r\n'));
      else if (verb === 'HELO') reply('250 capture.test');
      else if (verb === 'MAIL') {
        const m = /^MAIL FROM:<([^>]*)>\s*(.*)$/i.exec(line);
        from = m?.[1] ?? '';
        params = m?.[2] ?? '';
        rcpts = [];
        reply('250 2.1.0 ok');
      } else if (verb === 'RCPT') {
        rcpts.push(/^RCPT TO:<([^>]*)>/i.exec(line)?.[1] ?? '');
        reply('250 2.1.5 ok');
      } else if (verb === 'DATA') {
        inData = true;
        reply('354 go ahead');
      } else if (verb === 'QUIT') {
        reply('221 2.0.0 bye');
        sock.end();
        return;
      } else if (verb === 'RSET' || verb === 'NOOP') reply('250 2.0.0 ok');
      else reply('502 5.5.1 not implemented');
    }
  });
}
