/**
 * Reading a submit stream (socket or maildrop file, protocol.ts): the envelope line, then the
 * message bytes into an IncomingSubmission with backpressure and a byte bound.
 *
 * Owns: `StreamReader` (pulls chunks from a Readable without destroying it when the caller stops
 * early, unlike `for await`, so an answer can still be written), `feedMessage` (a maildrop file:
 * bytes to its end) and `feedFramed` (the socket: length-prefixed frames, so a client that dies
 * mid-message is never taken for one that finished).
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

/** Largest frame of the socket form accepted, bytes. */
export const MAX_FRAME_BYTES = 1024 * 1024;

/**
 * The socket form (protocol.ts): frames of a 4-byte big-endian length and that many message bytes,
 * ended by a frame of length 0; the end of the stream before it means the client went away (the
 * message is abandoned, never committed half). Writes the payloads into `msg` as they arrive.
 */
export async function feedFramed(reader: StreamReader, msg: IncomingSubmission, maxBytes: number): Promise<FeedResult> {
  let bytes = 0;
  for (;;) {
    const head = await readExact(reader, 4);
    if (!head) return { done: 'error', error: reader.error ?? new Error('the stream ended before the end of the message') };
    let left = head.readUInt32BE(0);
    if (left === 0) return { done: 'end' };
    if (left > MAX_FRAME_BYTES) return { done: 'error', error: new Error(`frame of ${left} bytes`) };
    bytes += left;
    if (bytes > maxBytes) return { done: 'too-big', bytes };
    while (left > 0) {
      const c = await reader.next();
      if (!c) return { done: 'error', error: reader.error ?? new Error('the stream ended inside a frame') };
      const piece = c.length > left ? c.subarray(0, left) : c;
      if (c.length > left) reader.unread(c.subarray(left));
      left -= piece.length;
      if (!msg.write(piece)) await msg.drain();
    }
  }
}

/** Exactly `n` bytes (n small), or undefined at the end. */
async function readExact(reader: StreamReader, n: number): Promise<Buffer | undefined> {
  const parts: Buffer[] = [];
  let have = 0;
  while (have < n) {
    const c = await reader.next();
    if (!c) return undefined;
    const need = n - have;
    if (c.length > need) reader.unread(c.subarray(need));
    const piece = c.subarray(0, need);
    parts.push(piece);
    have += piece.length;
  }
  return parts.length === 1 ? parts[0] : Buffer.concat(parts);
}

/** One frame of the socket form: the 4-byte length, then `payload` (no copy of it). */
export function frameHeader(length: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(length, 0);
  return b;
}

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
