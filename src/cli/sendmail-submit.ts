/**
 * How `postline sendmail` hands a prepared message to Postline (src/pickup/protocol.ts): over the
 * submit socket `dataDir/submit.sock` when the server answers there, else as a file in
 * `dataDir/maildrop/` that the server picks up when it runs.
 *
 * Nothing is lost between the two: the bytes sent to the socket are kept (in memory, at most
 * limits.maxMessageSize) until the server answers, so a connection that breaks, a refused
 * connection or a 4xx answer moves the whole message to the maildrop. A maildrop file is written
 * under a temp name, fsynced, made 0644 and renamed (the directory itself cannot be fsynced by
 * other users: 1733 has no read bit for them). Owns only this client side.
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { open, rename, stat, unlink } from 'node:fs/promises';
import { createConnection, type Socket } from 'node:net';
import { join } from 'node:path';
import { frameHeader } from '../pickup/feed.js';
import { encodeEnvelope, MAILDROP_FILE_MODE, maildropNames, parseAnswer, type SubmitAnswer, type SubmitEnvelope } from '../pickup/protocol.js';
import { EX, exitForErrno, exitForRefusal, SendmailExit } from './sysexits.js';

export interface SubmitTarget {
  readonly dataDir: string;
  /** Upper bound on the message, bytes (limits.maxMessageSize): past it EX_DATAERR, nothing is queued. */
  readonly maxMessageSize: number;
  /** Connecting to the socket, ms. */
  readonly connectTimeoutMs?: number;
  /** Waiting for the server's answer after the last byte, ms. */
  readonly answerTimeoutMs?: number;
  /** Told what happened, for -v. */
  readonly verbose?: (line: string) => void;
}

/** Where the message went. */
export type SubmitOutcome =
  | { readonly via: 'socket'; readonly queueId: string; readonly reply: string }
  | { readonly via: 'maildrop'; readonly file: string; readonly why: string };

/** Largest frame sent on the socket, bytes. */
const FRAME = 64 * 1024;

/** Counts bytes of the message and refuses past the limit. */
function sizeGuard(max: number): (n: number) => void {
  let total = 0;
  return (n) => {
    total += n;
    if (total > max) throw new SendmailExit(EX.DATAERR, `the message is over limits.maxMessageSize (${max} bytes)`);
  };
}

/**
 * Queues `head` + `body` with envelope `env`.
 * @throws SendmailExit: the server's permanent refusal (exit code by its status: sysexits.ts), the
 *         size limit (EX_DATAERR), or a maildrop that cannot take it (EX_CANTCREAT, EX_NOPERM, EX_TEMPFAIL, EX_IOERR).
 */
export async function submitMessage(t: SubmitTarget, env: SubmitEnvelope, head: Buffer, body: AsyncIterable<Buffer>): Promise<SubmitOutcome> {
  const count = sizeGuard(t.maxMessageSize);
  count(head.length);
  const kept: Buffer[] = [head];
  const iter = body[Symbol.asyncIterator]();
  const sock = await connect(join(t.dataDir, 'submit.sock'), t.connectTimeoutMs ?? 5000).catch((err: NodeJS.ErrnoException) => err);
  let why: string;
  if (!(sock instanceof Error)) {
    const r = await sendOverSocket(sock, env, kept, iter, count, t.answerTimeoutMs ?? 300_000);
    if (r.answer?.ok) return { via: 'socket', queueId: r.answer.queueId ?? '?', reply: r.answer.reply };
    if (r.answer && r.answer.reply.startsWith('5')) throw new SendmailExit(exitForRefusal(r.answer.reply), `refused by the server: ${r.answer.reply}`, { serverReply: r.answer.reply });
    why = r.answer ? `the server answered ${r.answer.reply}` : `the submit connection broke (${r.error ?? 'no answer'})`;
  } else {
    why = sock.code === 'ENOENT' || sock.code === 'ECONNREFUSED' ? 'the server is not running' : `cannot use the submit socket (${sock.code ?? sock.message})`;
  }
  const file = await writeMaildrop(t.dataDir, env, kept, iter, count);
  return { via: 'maildrop', file, why };
}

/** Connects to the unix socket. @throws the connect error (ENOENT, ECONNREFUSED, EACCES, ETIMEDOUT). */
function connect(path: string, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = createConnection({ path, allowHalfOpen: true });
    const t = setTimeout(() => { s.destroy(); reject(Object.assign(new Error('connect timed out'), { code: 'ETIMEDOUT' })); }, timeoutMs);
    s.once('connect', () => { clearTimeout(t); s.off('error', reject); resolve(s); });
    s.once('error', (err) => { clearTimeout(t); reject(err); });
  });
}

/**
 * Sends the envelope line and the message, keeping every byte in `kept`; stops sending when an
 * answer comes early (a refusal). @returns the answer, or the error that ended the connection.
 */
async function sendOverSocket(
  sock: Socket, env: SubmitEnvelope, kept: Buffer[], iter: AsyncIterator<Buffer>, count: (n: number) => void, answerTimeoutMs: number,
): Promise<{ answer?: SubmitAnswer; error?: string }> {
  let text = '';
  let answer: SubmitAnswer | undefined;
  let error: string | undefined;
  let settle: () => void = () => {};
  const finished = new Promise<void>((resolve) => { settle = resolve; });
  sock.setEncoding('utf8');
  sock.on('data', (d: string) => {
    text += d;
    const nl = text.indexOf('\n');
    if (nl >= 0 && !answer) {
      answer = parseAnswer(text.slice(0, nl));
      if (!answer) error = 'unreadable answer';
      settle();
    }
    if (text.length > 65536) { error = 'answer too long'; settle(); }
  });
  sock.on('error', (err) => { error = err.message; settle(); });
  sock.on('close', () => settle());
  const write = (b: Buffer): Promise<void> | undefined => {
    if (sock.write(b)) return undefined;
    return new Promise((resolve) => {
      const done = (): void => { sock.off('drain', done); sock.off('close', done); resolve(); };
      sock.on('drain', done);
      sock.on('close', done);
    });
  };
  const frame = async (b: Buffer): Promise<void> => {
    for (let at = 0; at < b.length; at += FRAME) { // frames of at most 64 KiB (the server takes up to 1 MiB)
      const piece = b.subarray(at, at + FRAME);
      sock.write(frameHeader(piece.length));
      await write(piece);
    }
  };
  try {
    await write(encodeEnvelope(env));
    await frame(kept[0]!);
    for (;;) {
      if (answer || error || sock.destroyed) break;
      const r = await iter.next();
      if (r.done) { sock.end(frameHeader(0)); break; } // the empty frame: the message is complete
      count(r.value.length);
      kept.push(r.value);
      await frame(r.value);
    }
    const timer = setTimeout(() => { error ??= 'no answer in time'; settle(); }, answerTimeoutMs);
    timer.unref();
    await finished;
    clearTimeout(timer);
  } finally {
    sock.destroy();
  }
  return { ...(answer ? { answer } : {}), ...(error !== undefined ? { error } : {}) };
}

/**
 * Writes one maildrop file: temp name, data, fsync, mode 0644, rename to the ready name.
 * @returns the file's ready name. @throws SendmailExit by the errno (exitForErrno), EX_CANTCREAT without the directory.
 */
export async function writeMaildrop(
  dataDir: string, env: SubmitEnvelope, kept: readonly Buffer[], iter: AsyncIterator<Buffer>, count: (n: number) => void,
): Promise<string> {
  const dir = join(dataDir, 'maildrop');
  try {
    if (!(await stat(dir)).isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' });
  } catch (err) {
    // Nowhere to put it; still, a message over the limit is told as such (EX_DATAERR), so read it to its end.
    for (let r = await iter.next(); !r.done; r = await iter.next()) count(r.value.length);
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM') throw new SendmailExit(EX.NOPERM, `no server answers, and the maildrop ${dir} is out of reach (${code}): dataDir must be searchable by local users`, { cause: err });
    throw new SendmailExit(EX.CANTCREAT, `no server answers and there is no maildrop at ${dir} (${code ?? 'error'}): start \`postline serve\` once to make it, and check dataDir in the configuration`, { cause: err });
  }
  const names = maildropNames(Date.now(), process.pid, randomBytes(8).toString('hex'));
  const temp = join(dir, names.temp);
  let fh;
  try {
    fh = await open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  } catch (err) {
    throw new SendmailExit(exitForErrno(err), `cannot create a file in the maildrop ${dir}: ${(err as Error).message}`, { cause: err });
  }
  let ok = false;
  try {
    await fh.write(encodeEnvelope(env));
    for (const b of kept) await fh.write(b);
    for (;;) {
      const r = await iter.next();
      if (r.done) break;
      count(r.value.length);
      await fh.write(r.value);
    }
    await fh.sync();
    await fh.chmod(MAILDROP_FILE_MODE);
    await fh.close();
    await rename(temp, join(dir, names.ready));
    ok = true;
    return names.ready;
  } catch (err) {
    if (err instanceof SendmailExit) throw err;
    throw new SendmailExit(exitForErrno(err) === EX.SOFTWARE ? EX.IOERR : exitForErrno(err), `cannot write the maildrop file: ${(err as Error).message}`, { cause: err });
  } finally {
    if (!ok) {
      await fh.close().catch(() => {});
      await unlink(temp).catch(() => {});
    }
  }
}
