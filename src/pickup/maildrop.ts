/**
 * MaildropPickup: takes the files `postline sendmail` leaves in `dataDir/maildrop/` while the
 * server is down (or its submit socket refuses) into the queue, like Postfix's pickup(8).
 *
 * The directory is mode 1733 (sticky, writable and searchable by all, listable by its owner only),
 * or 1730 and group `sendmail.group`. A file is written by the command under a temp name
 * ("t.*"), fsynced, made 0644 and renamed to its ready name ("m.*", protocol.ts); only ready
 * names are taken. Each is checked before it is read: a symlink, anything but a regular file, a
 * file with more than one link, or one larger than limits.maxMessageSize (plus its envelope line)
 * is moved to `maildrop/rejected/` (deleted when that fails) with a log line and a
 * `message.rejected` event. The owner's uid names the local user (origin `{ kind: 'local',
 * localUser, localUid, localUserSource: 'uid' }`): a file's owner cannot be forged by a user.
 *
 * A file is deleted only after cleanup committed its message (`finish()` resolved: durable), so
 * nothing is lost; a crash between the commit and the unlink queues it again at the next start
 * (at least once). A temporary refusal (disk full) leaves the file for the next scan; a
 * permanent one moves it aside. Scans run at start, on every directory change (fs.watch), and
 * every `scanIntervalMs`; at most `concurrency` files at once. Temp files older than a day
 * (a command that died) are removed.
 */
import { constants, mkdirSync, watch, type FSWatcher } from 'node:fs';
import { chmod, chown, lstat, open, readdir, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { crashPoint } from '../core/crashpoints.js';
import { toPostlineError, type PostlineError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { R, reply, type SmtpReply } from '../core/reply.js';
import type { MessageOrigin, Rejection, StreamSubmissionSink } from '../core/session.js';
import { feedMessage, StreamReader } from './feed.js';
import { MAX_ENVELOPE_BYTES, parseEnvelope, READY_NAME, refusedAnswer, TEMP_NAME } from './protocol.js';
import type { LocalUsers } from './local-users.js';

export interface MaildropOptions {
  /** The maildrop directory, normally `${dataDir}/maildrop`. */
  readonly dir: string;
  readonly sink: StreamSubmissionSink;
  /** Read at each file (live limits). */
  readonly limits: () => { readonly maxMessageSize: number; readonly maxRecipients: number };
  readonly users: LocalUsers;
  /** Group of the directory (mode 1730); undefined: 1733. */
  readonly gid?: number;
  readonly scanIntervalMs: number;
  readonly concurrency: number;
  readonly logger: Logger;
  /** Records a refusal (message.rejected, stage 'local'). */
  readonly rejected?: (origin: MessageOrigin, r: Omit<Rejection, 'stage'>) => void;
  readonly now?: () => number;
}

/** Temp files older than this are a command that died, ms. */
const STALE_TEMP_MS = 24 * 3600_000;

/** What became of one file. */
type Outcome = 'queued' | 'rejected' | 'kept' | 'gone';

export class MaildropPickup {
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private scanning: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  /** Files being picked up now. */
  private readonly busy = new Set<string>();
  /** Counts since start, for logs and tests. */
  readonly counts = { queued: 0, rejected: 0, kept: 0 };

  constructor(private readonly o: MaildropOptions) {}

  /** The directory and its `rejected/` folder, made with their modes (umask does not apply). */
  static async prepare(dir: string, gid?: number): Promise<void> {
    mkdirSync(dir, { recursive: true });
    if (gid !== undefined) await chown(dir, -1, gid);
    await chmod(dir, gid !== undefined ? 0o1730 : 0o1733);
    mkdirSync(join(dir, 'rejected'), { recursive: true, mode: 0o700 });
    await chmod(join(dir, 'rejected'), 0o700);
  }

  /** Prepares the directory, scans it once (in the background) and starts watching. @throws when the directory cannot be made or its mode set. */
  async start(): Promise<void> {
    await MaildropPickup.prepare(this.o.dir, this.o.gid);
    try {
      this.watcher = watch(this.o.dir, { persistent: false }, (_e, name) => {
        if (typeof name === 'string' && READY_NAME.test(name)) this.kick();
      });
      this.watcher.on('error', (err) => this.o.logger.warn({ err }, 'maildrop watch failed; scanning every sendmail.scanIntervalMs'));
    } catch (err) {
      this.o.logger.warn({ err }, 'cannot watch the maildrop; scanning every sendmail.scanIntervalMs');
    }
    this.timer = setInterval(() => this.kick(), this.o.scanIntervalMs);
    this.timer.unref();
    this.kick();
  }

  /** Stops watching and waits for the files being picked up (each finishes or stays for the next start). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.watcher?.close();
    if (this.timer) clearInterval(this.timer);
    await this.scanning;
  }

  /** Asks for a scan (one runs at a time; a request during one runs another after it). */
  kick(): void {
    if (this.stopped) return;
    if (this.scanning) { this.again = true; return; }
    this.scanning = this.scanLoop().finally(() => { this.scanning = undefined; });
  }

  /** Resolves when no scan runs (tests). */
  async idle(): Promise<void> {
    while (this.scanning) await this.scanning;
  }

  private async scanLoop(): Promise<void> {
    do {
      this.again = false;
      try {
        await this.scan();
      } catch (err) {
        this.o.logger.warn({ err }, 'maildrop scan failed');
      }
    } while (this.again && !this.stopped);
  }

  /** One pass over the directory: ready files oldest first, `concurrency` at once. */
  private async scan(): Promise<void> {
    const names = (await readdir(this.o.dir)).sort();
    const ready = names.filter((n) => READY_NAME.test(n) && !this.busy.has(n));
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < ready.length && !this.stopped) {
        const name = ready[next++]!;
        this.busy.add(name);
        try {
          const out = await this.pick(name);
          if (out !== 'gone') this.counts[out]++;
        } catch (err) {
          this.o.logger.warn({ err, file: name }, 'maildrop file not picked up; trying again at the next scan');
          this.counts.kept++;
        } finally {
          this.busy.delete(name);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.o.concurrency, ready.length) }, worker));
    await this.removeStaleTemps(names.filter((n) => TEMP_NAME.test(n)));
  }

  private async removeStaleTemps(temps: readonly string[]): Promise<void> {
    const now = (this.o.now ?? Date.now)();
    for (const t of temps) {
      const path = join(this.o.dir, t);
      try {
        const st = await lstat(path);
        if (now - st.mtimeMs < STALE_TEMP_MS) continue;
        await unlink(path);
        this.o.logger.info({ file: t, uid: st.uid }, 'maildrop: removed a temp file a sendmail command left a day ago');
      } catch { /* gone meanwhile */ }
    }
  }

  /** Checks, reads and queues one file; deletes it only after the commit. */
  private async pick(name: string): Promise<Outcome> {
    const path = join(this.o.dir, name);
    let st;
    try {
      st = await lstat(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'gone';
      throw err;
    }
    const limits = this.o.limits();
    const unknownOrigin: MessageOrigin = { kind: 'local', localUid: st.uid, localUser: this.o.users.userName(st.uid), localUserSource: 'uid' };
    if (st.isSymbolicLink()) return this.reject(name, unknownOrigin, reply(554, '5.7.1', 'Maildrop entry is a symbolic link'));
    if (!st.isFile()) return this.reject(name, unknownOrigin, reply(554, '5.7.1', 'Maildrop entry is not a regular file'));
    if (st.size > limits.maxMessageSize + MAX_ENVELOPE_BYTES) return this.reject(name, unknownOrigin, R.sizeExceeded, `${st.size} bytes`);
    let fh: FileHandle;
    try {
      fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return 'gone';
      if (code === 'ELOOP') return this.reject(name, unknownOrigin, reply(554, '5.7.1', 'Maildrop entry is a symbolic link'));
      throw err;
    }
    try {
      const fst = await fh.stat();
      if (!fst.isFile() || fst.ino !== st.ino || fst.dev !== st.dev) return this.reject(name, unknownOrigin, reply(554, '5.7.1', 'Maildrop entry changed while it was opened'));
      if (fst.nlink !== 1) return this.reject(name, unknownOrigin, reply(554, '5.7.1', 'Maildrop file has more than one link'));
      const origin: MessageOrigin = { ...unknownOrigin, localUid: fst.uid, localUser: this.o.users.userName(fst.uid) };
      return await this.queue(name, fh, origin, limits);
    } finally {
      await fh.close().catch(() => {});
    }
  }

  private async queue(name: string, fh: FileHandle, origin: MessageOrigin, limits: ReturnType<MaildropOptions['limits']>): Promise<Outcome> {
    const stream = fh.createReadStream({ autoClose: false, highWaterMark: 64 * 1024 });
    const reader = new StreamReader(stream);
    try {
      const line = await reader.line(MAX_ENVELOPE_BYTES);
      if (line === undefined || line === 'too-long') return await this.reject(name, origin, reply(554, '5.6.0', 'Maildrop file has no valid envelope line'));
      const parsed = parseEnvelope(line, limits);
      if (!parsed.ok) return await this.reject(name, origin, parsed.reply);
      const envelope = parsed.value.envelope;
      let msg;
      try {
        msg = await this.o.sink.openSubmission({ origin, envelope, addMissingFields: true });
      } catch (err) {
        return await this.refused(name, origin, toPostlineError(err), envelope.mailFrom);
      }
      const fed = await feedMessage(reader, msg, limits.maxMessageSize);
      if (fed.done !== 'end') {
        await msg.abort();
        if (fed.done === 'error') throw fed.error;
        return await this.reject(name, origin, R.sizeExceeded, `over ${limits.maxMessageSize} bytes`, envelope.mailFrom);
      }
      let queueId: string;
      try {
        queueId = (await msg.finish()).queueId;
      } catch (err) {
        return await this.refused(name, origin, toPostlineError(err), envelope.mailFrom);
      }
      // Committed (durable): only now may the file go. A crash before this unlink queues it again.
      crashPoint('pickup-after-commit-before-unlink');
      await unlink(join(this.o.dir, name)).catch((err: unknown) => this.o.logger.error({ err, file: name, queueId }, 'maildrop: queued, but the file cannot be removed (it will be queued again)'));
      this.o.logger.info({ file: name, queueId, uid: origin.localUid, user: origin.localUser }, 'maildrop file picked up');
      return 'queued';
    } finally {
      stream.destroy();
    }
  }

  /** A refusal by cleanup: temporary ones keep the file for the next scan. */
  private async refused(name: string, origin: MessageOrigin, e: PostlineError, mailFrom: string): Promise<Outcome> {
    if (e.temporary) {
      this.o.logger.warn({ file: name, reply: refusedAnswer(e.reply).reply }, 'maildrop file kept: temporary refusal, trying again at the next scan');
      return 'kept';
    }
    return this.reject(name, origin, e.reply, e.message, mailFrom);
  }

  /** Moves a refused file to rejected/ (deletes it when that fails), with a log line and an event. */
  private async reject(name: string, origin: MessageOrigin, r: SmtpReply, detail?: string, mailFrom?: string): Promise<Outcome> {
    const text = refusedAnswer(r).reply;
    const from = join(this.o.dir, name);
    let where = 'maildrop/rejected';
    try {
      await rename(from, join(this.o.dir, 'rejected', name));
    } catch {
      where = 'deleted';
      await unlink(from).catch(() => { where = 'left in place'; });
    }
    this.o.logger.warn({ file: name, uid: origin.localUid, user: origin.localUser, reply: text, ...(detail ? { detail } : {}), where }, 'maildrop file refused');
    this.o.rejected?.(origin, { reply: text, ...(mailFrom !== undefined ? { mailFrom } : {}) });
    return 'rejected';
  }
}

/** The mode bits a maildrop directory should have (tests, `postline sendmail -v`). */
export async function maildropMode(dir: string): Promise<number> {
  return (await stat(dir)).mode & 0o7777;
}

