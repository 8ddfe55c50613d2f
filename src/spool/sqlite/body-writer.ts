/**
 * One message body being received by the SQLite queue store.
 *
 * Owns: the body of a message until the store commits it. A body starts in memory; as long as it
 * stays within `inlineMaxBytes` it never touches the file system and the store writes it as a BLOB
 * in the same transaction as its envelope row (one WAL fsync for a whole group commit). The first
 * write that would take it past the limit "spills" it: the temporary file
 * `${dataDir}/spool/tmp/<queueId>` is created, the buffered bytes written, and from then on bytes
 * stream straight to the file (memory stays flat); the stream's final step fdatasyncs the file with
 * async fs, so the event loop never waits on the disk.
 */
import { Writable } from 'node:stream';
import { open, unlink, type FileHandle } from 'node:fs/promises';
import type { BodyWriter } from '../types.js';

/** Writable high-water mark of a body stream, bytes. */
const HIGH_WATER_MARK = 256 * 1024;

/** Internal lifecycle of a body. */
type BodyState = 'writing' | 'synced' | 'placed' | 'committed' | 'aborted';

/** A BodyWriter kept in memory up to a limit, else backed by one file; the store drives the rest. */
export class SpoolBodyWriter implements BodyWriter {
  readonly stream: Writable;
  /** Bytes written to the file (0 while the body is in memory). */
  private written = 0;
  /** The in-memory body while not spilled (chunks as received, not copied). */
  private chunks: Buffer[] = [];
  private inlineBytes = 0;
  private fh: FileHandle | undefined;
  /** True once a file was created for this body (abort must then remove it). */
  private spilled = false;
  private failure: Error | undefined;
  private state: BodyState = 'writing';
  private closed = false;
  private aborting: Promise<void> | undefined;
  /** Where the file is (tmp path, then its final path after the rename). */
  private path: string;

  private constructor(readonly id: string, tmpPath: string, private readonly inlineMaxBytes: number) {
    this.path = tmpPath;
    this.stream = new Writable({
      highWaterMark: HIGH_WATER_MARK,
      write: (chunk: Buffer, _enc, cb) => { this.take([chunk]).then(() => cb(), cb); },
      writev: (chunks, cb) => { this.take(chunks.map((c) => c.chunk as Buffer)).then(() => cb(), cb); },
      final: (cb) => { this.syncAndClose().then(() => cb(), cb); },
      destroy: (err, cb) => { this.closeQuietly().then(() => cb(err)); },
    });
    // Keep the first error; a listener must exist so an I/O error never becomes an uncaught event.
    this.stream.on('error', (err) => { this.failure ??= err; });
  }

  /**
   * Starts a body. With `inlineMaxBytes` > 0 nothing is created until the body outgrows it; with 0
   * the temporary file is created at once (exclusive: an existing file with that name is an error).
   * @param inlineMaxBytes largest body kept in memory and stored inline, bytes (0 = always a file).
   * @throws NodeJS.ErrnoException from open (EEXIST, ENOSPC, EACCES...) when the file is created here.
   */
  static async create(id: string, tmpPath: string, inlineMaxBytes: number): Promise<SpoolBodyWriter> {
    const w = new SpoolBodyWriter(id, tmpPath, Math.max(0, inlineMaxBytes));
    if (w.inlineMaxBytes === 0) await w.spill();
    return w;
  }

  /** Bytes accepted so far: stored (memory or file) plus still buffered in the stream. */
  bytesWritten(): number {
    return this.written + this.inlineBytes + (this.stream.destroyed ? 0 : this.stream.writableLength);
  }

  /** Size of the finished body, bytes (valid after finish()). */
  size(): number {
    return this.written + this.inlineBytes;
  }

  /**
   * The whole body when it stayed in memory (one Buffer of exactly size() bytes), else undefined.
   * It is backed by a SharedArrayBuffer of exactly that size, so posting it to the writer thread
   * shares the bytes instead of cloning (cloning a view copies its whole ArrayBuffer: a 64 KiB
   * socket read or the 8 KiB Buffer pool), and the body cache holds no more than the body.
   */
  inlineBody(): Buffer | undefined {
    if (this.spilled) return undefined;
    if (!this.shared) {
      const out = Buffer.from(new SharedArrayBuffer(this.inlineBytes));
      let off = 0;
      for (const c of this.chunks) off += c.copy(out, off);
      this.chunks = [out];
      this.shared = true;
    }
    return this.chunks[0];
  }

  private shared = false;

  /** The current path of the body file (tmp, or final once placed); meaningful only when spilled. */
  currentPath(): string {
    return this.path;
  }

  /** True while the body can still be committed (not aborted, not committed). */
  isOpen(): boolean {
    return this.state === 'writing' || this.state === 'synced';
  }

  /**
   * Ends the stream and waits until the body is complete: in memory, or fdatasynced and closed.
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
    this.chunks = [];
  }

  /** Discards the body: destroys the stream, drops memory, removes the file wherever it is. Never throws. */
  abort(): Promise<void> {
    if (this.state === 'committed') return Promise.resolve();
    if (this.aborting) return this.aborting; // a second caller waits for the same cleanup
    this.state = 'aborted';
    this.chunks = [];
    this.aborting = (async () => {
      if (!this.stream.destroyed) this.stream.destroy();
      await this.closeQuietly();
      if (this.spilled) await unlink(this.path).catch(() => undefined);
    })();
    return this.aborting;
  }

  /** Takes chunks in memory while they fit, else spills and appends them to the file. */
  private async take(bufs: readonly Buffer[]): Promise<void> {
    if (!this.spilled) {
      const n = bufs.reduce((sum, b) => sum + b.length, 0);
      if (this.inlineBytes + n <= this.inlineMaxBytes) {
        for (const b of bufs) this.chunks.push(b); // no spread: writev may pass very many chunks
        this.inlineBytes += n;
        return;
      }
      await this.spill();
    }
    await this.writeAll(bufs);
  }

  /** Creates the temporary file and moves the in-memory bytes into it. */
  private async spill(): Promise<void> {
    this.fh = await open(this.path, 'wx', 0o600);
    this.spilled = true; // only now is the file ours to remove
    const held = this.chunks;
    this.chunks = [];
    this.inlineBytes = 0;
    if (held.length) await this.writeAll(held);
  }

  /** Appends the buffers with one writev (no concatenation copy); finishes a short write piecewise. */
  private async writeAll(bufs: readonly Buffer[]): Promise<void> {
    const total = bufs.reduce((sum, b) => sum + b.length, 0);
    if (total === 0) return;
    const { bytesWritten } = await this.fh!.writev(bufs as Buffer[]);
    this.written += bytesWritten;
    if (bytesWritten === total) return;
    let skip = bytesWritten;
    for (const buf of bufs) {
      if (skip >= buf.length) { skip -= buf.length; continue; }
      let off = skip;
      skip = 0;
      while (off < buf.length) {
        const r = await this.fh!.write(buf, off, buf.length - off);
        if (r.bytesWritten <= 0) throw new Error(`short write on body ${this.id}`);
        off += r.bytesWritten;
        this.written += r.bytesWritten;
      }
    }
  }

  private async syncAndClose(): Promise<void> {
    if (!this.fh) return;
    await this.fh.datasync();
    this.closed = true;
    await this.fh.close();
  }

  private async closeQuietly(): Promise<void> {
    if (this.closed || !this.fh) return;
    this.closed = true;
    await this.fh.close().catch(() => undefined);
  }
}
