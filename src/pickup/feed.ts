/**
 * Reading a submit stream (socket or maildrop file, protocol.ts): the envelope line, then the
 * message bytes into an IncomingSubmission with backpressure and a byte bound.
 *
 * Owns: `StreamReader` (pulls chunks from a Readable without destroying it when the caller stops
 * early, unlike `for await`, so an answer can still be written) and `feedMessage`.
 */
import type { Readable } from 'node:stream';
import type { IncomingSubmission } from '../core/session.js';

/** Pulls chunks from a Readable. `next()` resolves undefined at the end (or after an error, kept in `error`). */
export class StreamReader {
  private ended = false;
  private waiting: (() => void) | undefined;
  private pushedBack: Buffer | undefined;
  error: Error | undefined;

  constructor(private readonly stream: Readable) {
    const wake = (): void => { const w = this.waiting; this.waiting = undefined; w?.(); };
    stream.on('readable', wake);
    stream.on('end', () => { this.ended = true; wake(); });
    stream.on('close', () => { this.ended = true; wake(); });
    stream.on('error', (err) => { this.error = err; this.ended = true; wake(); });
  }

  /** The next chunk, or undefined at the end. */
  async next(): Promise<Buffer | undefined> {
    if (this.pushedBack) {
      const b = this.pushedBack;
      this.pushedBack = undefined;
      return b;
    }
    for (;;) {
      const c = this.stream.read() as Buffer | string | null;
      if (c !== null) return typeof c === 'string' ? Buffer.from(c) : c;
      if (this.ended) return undefined;
      await new Promise<void>((resolve) => { this.waiting = resolve; });
    }
  }

  /** Gives bytes back: the next `next()` returns them first. */
  unread(b: Buffer): void {
    if (b.length) this.pushedBack = this.pushedBack ? Buffer.concat([b, this.pushedBack]) : b;
  }

  /**
   * Reads up to and without the first LF (a CR before it is dropped).
   * @returns the line, 'too-long' past `max` bytes, or undefined at the end before any LF.
   */
  async line(max: number): Promise<string | 'too-long' | undefined> {
    const parts: Buffer[] = [];
    let len = 0;
    for (;;) {
      const c = await this.next();
      if (!c) return undefined;
      const nl = c.indexOf(0x0a);
      if (nl >= 0) {
        parts.push(c.subarray(0, nl));
        this.unread(c.subarray(nl + 1));
        let s = Buffer.concat(parts).toString('utf8');
        if (s.endsWith('\r')) s = s.slice(0, -1);
        return len + nl + 1 > max ? 'too-long' : s;
      }
      parts.push(c);
      len += c.length;
      if (len > max) return 'too-long';
    }
  }
}

/** How feeding ended. */
export type FeedResult = { readonly done: 'end' } | { readonly done: 'too-big'; readonly bytes: number } | { readonly done: 'error'; readonly error: Error };

/**
 * Writes the rest of `reader` into `msg`, waiting for its drain when it asks. Stops (without
 * reading further) once more than `maxBytes` arrived: the caller refuses with 552 5.3.4.
 * The caller finishes or aborts `msg`.
 */
export async function feedMessage(reader: StreamReader, msg: IncomingSubmission, maxBytes: number): Promise<FeedResult> {
  let bytes = 0;
  for (;;) {
    const c = await reader.next();
    if (!c) return reader.error ? { done: 'error', error: reader.error } : { done: 'end' };
    bytes += c.length;
    if (bytes > maxBytes) return { done: 'too-big', bytes };
    if (!msg.write(c)) await msg.drain();
  }
}
