/**
 * Maildir files (D. J. Bernstein's Maildir format, cr.yp.to/proc/maildir.html; the ",S=<size>"
 * suffix of Courier's Maildir++ and Dovecot): the mailbox path of a recipient, the unique file
 * name, and one delivery: tmp/NAME written and fsynced, renamed into new/NAME,S=SIZE, new/
 * fsynced. A reader never sees a partial file in new/: the rename is atomic and comes only after
 * the data is on disk. A crash before the rename leaves a file in tmp/ (readers delete tmp/ files
 * older than 36 hours, as the format says); the message is delivered again after the restart.
 *
 * Owns: file layout and durability. No policy (quota, loops: maildir-agent.ts).
 */
import { mkdir, open, readdir, rename, stat, unlink } from 'node:fs/promises';
import { constants } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { crashPoint } from '../core/crashpoints.js';
import { toALabel } from '../core/envelope.js';
import { splitAddress } from '../core/envelope.js';
import { PostlineError } from '../core/errors.js';
import { mailboxOf } from '../rfc5321/address.js';

/** A recipient address that cannot name a mailbox directory ("/" or NUL in it, ".", ".."). */
export class MailboxNameError extends PostlineError {
  constructor(message: string) {
    super('ERR_MAILBOX_NAME', message, { temporary: false });
    this.name = 'MailboxNameError';
  }
}

/** A part of an address that is safe as (part of) a path segment. @throws MailboxNameError */
function safePart(what: string, v: string, address: string): string {
  // eslint-disable-next-line no-control-regex
  if (v === '' || v === '.' || v === '..' || /[/\\\x00-\x1f\x7f]/.test(v)) {
    throw new MailboxNameError(`<${address}>: the ${what} cannot name a mailbox directory`);
  }
  return v;
}

/**
 * The Maildir root of `address` from a route's `template`: "{local}" the local part (unquoted, lower
 * case), "{domain}" the domain (lower-case A-label), "{user}" both ("local@domain").
 * @throws MailboxNameError when a part holds "/", "\\", a control character, or is "." or "..".
 */
export function mailboxPath(template: string, address: string): string {
  const { local: l, domain: d } = splitAddress(mailboxOf(address));
  const local = safePart('local part', l.toLowerCase(), address);
  const domain = safePart('domain', toALabel(d) || d.toLowerCase(), address);
  return template.replace(/\{(local|domain|user)\}/g, (_m, k: string) => (k === 'local' ? local : k === 'domain' ? domain : `${local}@${domain}`));
}

let counter = 0;
/** The host part of unique names: "/" and ":" written as \057 and \072 (the format's rule), "," as \054 (it starts the ",S=" info). */
const host = hostname().replace(/\//g, '\\057').replace(/:/g, '\\072').replace(/,/g, '\\054') || 'localhost';

/**
 * A unique file name: "SECONDS.M<microseconds>P<pid>Q<n>.HOST" (the format's modern form: the
 * time, the microseconds, the process id and a per-process delivery counter, so two deliveries of
 * this process never share a name, and the host's name).
 * @param nowMs ms since the epoch, with a fraction (performance.timeOrigin + performance.now()).
 */
export function uniqueName(nowMs: number = performance.timeOrigin + performance.now()): string {
  const sec = Math.floor(nowMs / 1000);
  const usec = Math.floor((nowMs - sec * 1000) * 1000);
  counter = (counter + 1) % Number.MAX_SAFE_INTEGER;
  return `${sec}.M${usec}P${process.pid}Q${counter}.${host}`;
}

/** The size a file name states (",S=<bytes>"), or undefined. */
export function sizeFromName(name: string): number | undefined {
  const m = /,S=(\d+)/.exec(name);
  return m ? Number(m[1]) : undefined;
}

/** fsyncs a directory (its entries: a new name is durable only then). */
async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Creates `root` with tmp/, new/ and cur/ when missing (mode `0o700`), fsyncing each directory
 * whose entries changed (so a new mailbox is durable before the first message in it).
 */
export async function ensureMaildir(root: string): Promise<void> {
  const made = await mkdir(root, { recursive: true, mode: 0o700 });
  const created: string[] = [];
  for (const sub of ['tmp', 'new', 'cur']) {
    try {
      await mkdir(join(root, sub), { mode: 0o700 });
      created.push(sub);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  if (created.length) await syncDir(root);
  if (made) {
    // mkdir made `made` and everything below it: their parents' entries must be on disk too.
    let dir = root;
    while (dir.length >= made.length) {
      const parent = join(dir, '..');
      await syncDir(parent);
      if (parent === dir) break;
      dir = parent;
    }
  }
}

/**
 * Bytes the messages of a mailbox take (new/ and cur/): the ",S=" size of each name, else its
 * file size. O(messages in the mailbox) per call (a readdir of each, a stat for names without S=).
 */
export async function mailboxUsage(root: string): Promise<number> {
  let total = 0;
  for (const sub of ['new', 'cur']) {
    let names: string[];
    try {
      names = await readdir(join(root, sub));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    for (const n of names) {
      if (n.startsWith('.')) continue;
      const s = sizeFromName(n);
      if (s !== undefined) total += s;
      else total += await stat(join(root, sub, n)).then((st) => st.size, () => 0);
    }
  }
  return total;
}

/** CRLF to LF, streaming: a CR at the end of a chunk waits for the next one. */
class LineEndings {
  private cr = false;

  /** The chunk with each CRLF turned into LF (a lone CR stays). */
  lf(chunk: Buffer): Buffer {
    let b = chunk;
    if (this.cr) {
      b = b.length && b[0] === 0x0a ? b : Buffer.concat([Buffer.from('\r'), b]);
      this.cr = false;
    }
    if (b.length && b[b.length - 1] === 0x0d) {
      this.cr = true;
      b = b.subarray(0, b.length - 1);
    }
    if (b.indexOf(0x0d) < 0) return b;
    return Buffer.from(b.toString('latin1').replace(/\r\n/g, '\n'), 'latin1');
  }

  /** What is still held at the end (a lone final CR). */
  end(): Buffer {
    return this.cr ? Buffer.from('\r') : Buffer.alloc(0);
  }
}

/** One delivery into a Maildir. */
export interface MaildirWrite {
  /** The mailbox root (tmp/, new/, cur/ are created when missing). */
  readonly root: string;
  /** Header fields written first (Return-Path, Delivered-To), CRLF line endings. */
  readonly prefix: Buffer;
  /** The message (CRLF lines); read once, never held whole. */
  readonly body: Readable;
  /** Keep CRLF line endings (default: LF). */
  readonly crlf: boolean;
  readonly signal?: AbortSignal;
}

/**
 * Writes one message into a Maildir: tmp/NAME (created exclusively, mode 0600), fsynced, renamed
 * to new/NAME,S=SIZE (SIZE: the file's bytes), new/ fsynced. On any failure the tmp/ file is
 * removed. @returns the path in new/ and the size in bytes.
 * @throws the file system's error (ENOSPC, EDQUOT, EACCES, ...), the body's read error, or an
 *         AbortError when `signal` aborts.
 */
export async function writeMaildir(w: MaildirWrite): Promise<{ path: string; size: number }> {
  await ensureMaildir(w.root);
  const name = uniqueName();
  const tmp = join(w.root, 'tmp', name);
  const fh = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  let size = 0;
  let closed = false;
  try {
    const eol = w.crlf ? undefined : new LineEndings();
    const put = async (b: Buffer): Promise<void> => {
      let off = 0;
      while (off < b.length) off += (await fh.write(b, off, b.length - off)).bytesWritten;
      size += b.length;
    };
    await put(eol ? eol.lf(w.prefix) : w.prefix);
    let first = true;
    for await (const chunk of w.body as AsyncIterable<Buffer>) {
      if (w.signal?.aborted) throw Object.assign(new Error('delivery aborted'), { name: 'AbortError', code: 'ABORT_ERR' });
      await put(eol ? eol.lf(chunk) : chunk);
      if (first) crashPoint('maildir-mid-write');
      first = false;
    }
    if (eol) await put(eol.end());
    await fh.sync();
    closed = true;
    await fh.close();
    const final = join(w.root, 'new', `${name},S=${size}`);
    await rename(tmp, final);
    await syncDir(join(w.root, 'new'));
    crashPoint('maildir-after-rename');
    return { path: final, size };
  } catch (err) {
    w.body.destroy();
    if (!closed) await fh.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    throw err;
  }
}
