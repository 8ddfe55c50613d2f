/**
 * Test helper: a scripted SMTP server on a real loopback socket. Each test chooses the replies.
 *
 * RFC 5321 (commands, DATA and dot-unstuffing), RFC 3207 (STARTTLS via node:tls), RFC 4954 (AUTH
 * PLAIN / LOGIN), RFC 3030 (BDAT, when `extensions` lists CHUNKING). Defaults accept everything;
 * `reply` overrides any command (for BDAT: the reply after its chunk), `dataReply` the reply after
 * the final "." or BDAT LAST. Special replies: 'SILENT' (never answer), 'DROP' (close the socket).
 */
import { createServer, type Server, type Socket } from 'node:net';
import { TLSSocket } from 'node:tls';

export interface PeerMessage {
  readonly mailFrom: string;
  readonly rcpts: string[];
  /** Body as received, dot-unstuffed, without the final ".". */
  readonly data: Buffer;
  /** When its end of data arrived (Date.now()). */
  readonly at?: number;
}

export interface PeerSession {
  readonly id: number;
  /** When the connection was accepted, and when it closed (Date.now()). */
  readonly openedAt: number;
  /** When it ended: QUIT received or the connection closed, whichever came first. */
  closedAt?: number;
  /** Marks the session ended (set by the peer). */
  ended?: () => void;
  tls: boolean;
  /** The name the client sent as SNI (TLS sessions). */
  servername?: string;
  authUser?: string;
  /** Every command line received, in order. */
  readonly commands: string[];
  /** Raw chunks as they arrived (to check pipelining). */
  readonly chunks: string[];
  readonly messages: PeerMessage[];
  mailFrom?: string;
  rcpts: string[];
}

export interface PeerScript {
  /** Greeting ('220 peer.test ESMTP' by default); 'SILENT' never greets. */
  readonly greeting?: string;
  /** EHLO keywords after the first line. */
  readonly extensions?: readonly string[];
  /** Key and certificate (PEM) to offer STARTTLS (and to serve implicit TLS with `implicitTls`). */
  readonly tls?: { key: string; cert: string };
  readonly implicitTls?: boolean;
  /** Valid AUTH credentials; AUTH is offered when given (mechanisms from `extensions` or PLAIN LOGIN). */
  readonly auth?: { username: string; password: string };
  /** Reply to one command; undefined → default behaviour. Multi-line replies use '\n'. */
  readonly reply?: (cmd: string, s: PeerSession) => string | undefined;
  /** Reply after the final "."; undefined → "250 2.0.0 queued". */
  readonly dataReply?: (msg: PeerMessage, s: PeerSession) => string | undefined;
}

export interface SmtpPeer {
  readonly port: number;
  readonly sessions: PeerSession[];
  /** All messages received over all sessions. */
  messages(): PeerMessage[];
  /** Most connections open at the same time so far (a session counts until its QUIT or its close). */
  maxConcurrent(): number;
  close(): Promise<void>;
}

export const DEFAULT_EXTENSIONS = ['PIPELINING', 'SIZE 10485760', '8BITMIME', 'ENHANCEDSTATUSCODES', 'DSN', 'SMTPUTF8'];

/** Starts the peer on 127.0.0.1 with an ephemeral port. */
export async function startSmtpPeer(script: PeerScript = {}): Promise<SmtpPeer> {
  const sessions: PeerSession[] = [];
  const sockets = new Set<Socket>();
  let open = 0;
  let maxOpen = 0;
  const server: Server = createServer((raw) => {
    sockets.add(raw);
    open++;
    maxOpen = Math.max(maxOpen, open);
    const s: PeerSession = { id: sessions.length + 1, openedAt: Date.now(), tls: false, commands: [], chunks: [], messages: [], rcpts: [] };
    s.ended = () => { if (s.closedAt === undefined) { open--; s.closedAt = Date.now(); } };
    raw.on('close', () => { sockets.delete(raw); s.ended?.(); });
    raw.on('error', () => { /* client went away */ });
    sessions.push(s);
    if (script.implicitTls && script.tls) {
      const t = new TLSSocket(raw, { isServer: true, key: script.tls.key, cert: script.tls.cert });
      t.on('error', () => { /* handshake failures are the client's business */ });
      s.tls = true;
      t.once('secure', () => { s.servername = (t as TLSSocket & { servername?: string | false }).servername || undefined; runSession(t, s, script, sockets); });
    } else {
      runSession(raw, s, script, sockets);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    sessions,
    messages: () => sessions.flatMap((x) => x.messages),
    maxConcurrent: () => maxOpen,
    close: () => new Promise<void>((resolve) => {
      for (const so of sockets) so.destroy();
      server.close(() => resolve());
    }),
  };
}

/** Writes a reply; a last line 'DROP' closes the connection after the lines before it. */
function send(sock: Socket, text: string): void {
  if (text === 'SILENT' || sock.destroyed) return;
  const lines = text.split('\n');
  const drop = lines[lines.length - 1] === 'DROP';
  if (drop) lines.pop();
  const wire = lines.map((l) => l + '\r\n').join('');
  if (drop) sock.end(wire);
  else sock.write(wire);
}

function ehloReply(script: PeerScript, s: PeerSession): string {
  const ext = [...(script.extensions ?? DEFAULT_EXTENSIONS)];
  if (script.tls && !s.tls) ext.push('STARTTLS');
  if (script.auth && !ext.some((e) => e.startsWith('AUTH'))) ext.push('AUTH PLAIN LOGIN');
  if (!script.auth) for (let i = ext.length - 1; i >= 0; i--) if (ext[i]!.startsWith('AUTH')) ext.splice(i, 1);
  const lines = ['peer.test hello', ...ext];
  return lines.map((l, i) => `250${i === lines.length - 1 ? ' ' : '-'}${l}`).join('\n');
}

function runSession(sock: Socket, s: PeerSession, script: PeerScript, sockets: Set<Socket>): void {
  sockets.add(sock);
  let buf = Buffer.alloc(0);
  let inData = false;
  let bdat: { remaining: number; last: boolean; line: string; parts: Buffer[] } | undefined;
  let chunks: Buffer[] = [];
  let bdatFailed = false; // RFC 3030: after a failed chunk the transaction is over (503 until RSET/MAIL)
  let authLogin: string[] | undefined;
  send(sock, script.greeting ?? '220 peer.test ESMTP');
  const onData = (chunk: Buffer) => {
    s.chunks.push(chunk.toString('latin1'));
    buf = Buffer.concat([buf, chunk]);
    for (let guard = 0; guard < 100000; guard++) {
      if (bdat) {
        const take = Math.min(bdat.remaining, buf.length);
        bdat.parts.push(buf.subarray(0, take));
        buf = buf.subarray(take);
        bdat.remaining -= take;
        if (bdat.remaining > 0) return;
        const done = bdat;
        bdat = undefined;
        chunks.push(...done.parts);
        if (bdatFailed) { send(sock, '503 5.5.1 Error: previous BDAT failed'); continue; }
        const override = script.reply?.(done.line, s);
        if (override && !override.startsWith('250')) { chunks = []; bdatFailed = true; send(sock, override); continue; }
        if (!done.last) { send(sock, override ?? '250 2.0.0 chunk ok'); continue; }
        const msg: PeerMessage = { mailFrom: s.mailFrom ?? '', rcpts: [...s.rcpts], data: Buffer.concat(chunks), at: Date.now() };
        chunks = [];
        const r = script.dataReply?.(msg, s);
        if (!r || r.startsWith('250')) s.messages.push(msg);
        s.rcpts = [];
        send(sock, r ?? '250 2.0.0 queued');
        continue;
      }
      if (inData) {
        const end = buf.indexOf('\r\n.\r\n');
        const empty = buf.subarray(0, 3).toString() === '.\r\n';
        if (end < 0 && !empty) return;
        const body = empty ? Buffer.alloc(0) : buf.subarray(0, end + 2);
        buf = buf.subarray(empty ? 3 : end + 5);
        inData = false;
        const msg: PeerMessage = { mailFrom: s.mailFrom ?? '', rcpts: [...s.rcpts], data: unstuff(body), at: Date.now() };
        const r = script.dataReply?.(msg, s);
        if (!r || r.startsWith('250')) s.messages.push(msg);
        s.rcpts = [];
        send(sock, r ?? '250 2.0.0 queued');
        continue;
      }
      const nl = buf.indexOf('\r\n');
      if (nl < 0) return;
      const line = buf.subarray(0, nl).toString('utf8');
      buf = buf.subarray(nl + 2);
      s.commands.push(line);
      const chunk = /^BDAT (\d+)( LAST)?$/i.exec(line);
      if (chunk) { bdat = { remaining: Number(chunk[1]), last: !!chunk[2], line, parts: [] }; continue; }
      if (/^(MAIL|RSET)\b/i.test(line)) { bdatFailed = false; chunks = []; }
      if (authLogin) { authLogin.push(line); if (authLogin.length < 2) { send(sock, '334 UGFzc3dvcmQ6'); continue; } }
      const out = script.reply?.(line, s) ?? defaultReply(line, s, script, () => (authLogin = authLogin ? undefined : []), authLogin);
      if (authLogin && authLogin.length === 2) authLogin = undefined;
      if (out === 'STARTTLS') {
        send(sock, '220 2.0.0 go ahead');
        sock.off('data', onData);
        const t = new TLSSocket(sock, { isServer: true, key: script.tls!.key, cert: script.tls!.cert });
        t.on('error', () => { /* ignore */ });
        t.once('secure', () => { s.tls = true; s.servername = (t as TLSSocket & { servername?: string | false }).servername || undefined; runSessionAfterTls(t, s, script, sockets); });
        return;
      }
      if (/^DATA$/i.test(line) && out.startsWith('354')) inData = true;
      send(sock, out);
      if (/^QUIT/i.test(line)) { s.ended?.(); sock.end(); return; }
    }
  };
  sock.on('data', onData);
}

function runSessionAfterTls(t: Socket, s: PeerSession, script: PeerScript, sockets: Set<Socket>): void {
  // RFC 3207: no new greeting after TLS; reuse the loop with a silent greeting.
  runSession(t, s, { ...script, greeting: 'SILENT' }, sockets);
}

function defaultReply(line: string, s: PeerSession, script: PeerScript, toggleLogin: () => void, login?: string[]): string {
  if (login && login.length === 2) {
    const [u, p] = login.map((x) => Buffer.from(x, 'base64').toString());
    return checkAuth(s, script, u!, p!);
  }
  const verb = line.split(' ')[0]!.toUpperCase();
  switch (verb) {
    case 'EHLO': return ehloReply(script, s);
    case 'HELO': return '250 peer.test';
    case 'STARTTLS': return script.tls && !s.tls ? 'STARTTLS' : '502 5.5.1 no';
    case 'AUTH': {
      const [, mech, arg] = line.split(' ');
      if (mech?.toUpperCase() === 'LOGIN') { toggleLogin(); return '334 VXNlcm5hbWU6'; }
      const parts = Buffer.from(arg ?? '', 'base64').toString().split('\0');
      return checkAuth(s, script, parts[1] ?? '', parts[2] ?? '');
    }
    case 'MAIL': s.mailFrom = /<([^>]*)>/.exec(line)?.[1] ?? ''; s.rcpts = []; return '250 2.1.0 OK';
    case 'RCPT': s.rcpts.push(/<([^>]*)>/.exec(line)?.[1] ?? ''); return '250 2.1.5 OK';
    case 'DATA': return s.rcpts.length ? '354 go' : '554 5.5.1 no valid recipients';
    case 'RSET': s.mailFrom = undefined; s.rcpts = []; return '250 2.0.0 OK';
    case 'NOOP': return '250 2.0.0 OK';
    case 'QUIT': return '221 2.0.0 bye';
    default: return '500 5.5.2 what';
  }
}

function checkAuth(s: PeerSession, script: PeerScript, u: string, p: string): string {
  if (script.auth && u === script.auth.username && p === script.auth.password) { s.authUser = u; return '235 2.7.0 ok'; }
  return '535 5.7.8 bad credentials';
}

function unstuff(body: Buffer): Buffer {
  return Buffer.from(body.toString('latin1').split('\r\n').map((l) => (l.startsWith('.') ? l.slice(1) : l)).join('\r\n'), 'latin1');
}
