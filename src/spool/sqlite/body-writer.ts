/**
 * One message body being written to `${dataDir}/spool/tmp/<queueId>` (SQLite store).
 *
 * Owns: the temporary body file of a message until the store renames it into place. Bytes are
 * streamed straight to the file (never held whole in memory); the stream's final step
 * fdatasyncs the file with async fs so the event loop never waits on the disk.
 */
import { Writable } from 'node:stream';
import { open, unlink, type FileHandle } from 'node:fs/promises';
import type { BodyWriter } from '../types.js';

/** Writable high-water mark of a body stream, bytes. */
const HIGH_WATER_MARK = 256 * 1024;

/** Internal lifecycle of a body file. */
type BodyState = 'writing' | 'synced' | 'placed' | 'committed' | 'aborted';

/** A BodyWriter backed by one file; the store calls `finish()` and `placed()` while committing. */
export class FileBodyWriter implements BodyWriter {
  readonly stream: Writable;
  private written = 0;
  private failure: Error | undefined;
  private state: BodyState = 'writing';
  private closed = false;
  private aborting: Promise<void> | undefined;
  /** Where the file is now (tmp path, then its final path after the rename). */
  private path: string;

  private constructor(readonly id: string, tmpPath: string, private readonly fh: FileHandle) {
    this.path = tmpPath;
    this.stream = new Writable({
      highWaterMark: HIGH_WATER_MARK,
      write: (chunk: Buffer, _enc, cb) => { this.writeAll(chunk).then(() => cb(), cb); },
      writev: (chunks, cb) => {
        this.writeAll(Buffer.concat(chunks.map((c) => c.chunk as Buffer))).then(() => cb(), cb);
      },
      final: (cb) => { this.syncAndClose().then(() => cb(), cb); },
      destroy: (err, cb) => { this.closeQuietly().then(() => cb(err)); },
    });
    // Keep the first error; a listener must exist so an I/O error never becomes an uncaught event.
    this.stream.on('error', (err) => { this.failure ??= err; });
  }

  /**
   * Creates the temporary file (exclusive: an existing file with that name is an error).
   * @throws NodeJS.ErrnoException from open (EEXIST, ENOSPC, EACCES...).
   */
  static async create(id: string, tmpPath: string): Promise<FileBodyWriter> {
    const fh = await open(tmpPath, 'wx', 0o600);
    return new FileBodyWriter(id, tmpPath, fh);
  }

  /** Bytes accepted so far: on the file plus still buffered in the stream. */
  bytesWritten(): number {
    return this.written + (this.stream.destroyed ? 0 : this.stream.writableLength);
  }

  /** Bytes actually written to the file (equals bytesWritten() after finish()). */
  bytesOnFile(): number {
    return this.written;
  }

  /** The current path of the body file (tmp, or final once placed). */
  currentPath(): string {
    return this.path;
  }

  /** True while the body can still be committed (not aborted, not committed). */
  isOpen(): boolean {
    return this.state === 'writing' || this.state === 'synced';
  }

  /**
   * Ends the stream and waits until the file is fdatasynced and closed.
   * @throws the first write/sync error (e.g. ENOSPC), or Error when aborted or used twice.
   */
  async finish(): Promise<void> {
    if (this.failure) throw this.failure;
    if (this.state !== 'writing') throw new Error(`body ${this.id} is ${this.state}`);
    const s = this.stream;
    if (!s.writableFinished) {
      await new Promise<void>((resolve, reject) => {
        const onFinish = (): void => { s.off('error', onError); resolve(); };
        const onError = (err: Error): void => { s.off('finish', onFinish); reject(err); };
        s.once('finish', onFinish);
        s.once('error', onError);
        if (!s.writableEnded) s.end();
      });
    }
    if (this.failure) throw this.failure;
    this.state = 'synced';
  }

  /** Records that the store renamed the synced file to `finalPath`. */
  placed(finalPath: string): void {
    this.path = finalPath;
    this.state = 'placed';
  }

  /** Records that the database row is committed; abort() no longer removes anything. */
  committed(): void {
    this.state = 'committed';
  }

  /** Discards the body: destroys the stream and removes the file wherever it is. Never throws. */
  abort(): Promise<void> {
    if (this.state === 'committed') return Promise.resolve();
    if (this.aborting) return this.aborting; // a second caller waits for the same cleanup
    this.state = 'aborted';
    this.aborting = (async () => {
      if (!this.stream.destroyed) this.stream.destroy();
      await this.closeQuietly();
      await unlink(this.path).catch(() => undefined);
    })();
    return this.aborting;
  }

  private async writeAll(buf: Buffer): Promise<void> {
    let off = 0;
    while (off < buf.length) {
      const { bytesWritten } = await this.fh.write(buf, off, buf.length - off);
      if (bytesWritten <= 0) throw new Error(`short write on body ${this.id}`);
      off += bytesWritten;
      this.written += bytesWritten;
    }
  }

  private async syncAndClose(): Promise<void> {
    await this.fh.datasync();
    this.closed = true;
    await this.fh.close();
  }

  private async closeQuietly(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.fh.close().catch(() => undefined);
  }
}
