/**
 * Reading stored message bodies for the scheduler: a cheap readability probe before a delivery
 * attempt, the header section (RFC 5322 2.1: up to the first empty line) for DSNs with RET=HDRS
 * and `queue show`, and the whole message for RET=FULL. Bodies are CRLF text as stored.
 */
import type { Readable } from 'node:stream';
import type { QueueStore } from '../spool/types.js';

const CRLFCRLF = Buffer.from('\r\n\r\n');

/** Largest header section read (bytes); longer headers are cut here. */
export const MAX_HEADER_BYTES = 256 * 1024;

function open(store: QueueStore, id: string): Readable {
  return store.openBody(id);
}

/**
 * Checks that the body of `id` can be opened and yields its first bytes (or ends cleanly when
 * `size` is 0). Resolves undefined when readable, or the reason why not (missing, I/O error,
 * empty although the stored size is positive). Never throws.
 */
export async function probeBody(store: QueueStore, id: string, size: number): Promise<string | undefined> {
  let stream: Readable;
  try {
    stream = open(store, id);
  } catch (err) {
    return `body cannot be opened: ${(err as Error).message}`;
  }
  // Events rather than for-await: leaving a for-await loop early makes the stream build an
  // AbortError with a stack trace, at every delivery attempt.
  return new Promise<string | undefined>((resolve) => {
    let settled = false;
    const done = (reason: string | undefined): void => {
      if (settled) return;
      settled = true;
      stream.off('readable', onReadable);
      stream.destroy();
      resolve(reason);
    };
    const onReadable = (): void => {
      const chunk = stream.read() as Buffer | null;
      if (chunk !== null && chunk.length > 0) done(undefined);
    };
    stream.on('error', (err: Error) => done(`body cannot be read: ${err.message}`));
    stream.once('end', () => done(size > 0 ? `body is empty but its stored size is ${size} bytes` : undefined));
    stream.on('readable', onReadable);
  });
}

/**
 * Reads the header section of a stored message: bytes up to and including the first CRLF CRLF
 * (or the whole message when it has no body, or the first MAX_HEADER_BYTES).
 * @throws StoreError (or the stream's error) when the body cannot be read.
 */
export async function readHeaders(store: QueueStore, id: string): Promise<Buffer> {
  const stream = open(store, id);
  const parts: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of stream) {
      parts.push(chunk as Buffer);
      total += (chunk as Buffer).length;
      const buf = Buffer.concat(parts);
      const end = buf.indexOf(CRLFCRLF, Math.max(0, total - (chunk as Buffer).length - 3));
      if (end >= 0) return buf.subarray(0, end + 4);
      if (total >= MAX_HEADER_BYTES) return buf.subarray(0, MAX_HEADER_BYTES);
      parts.length = 0;
      parts.push(buf);
    }
    return Buffer.concat(parts);
  } finally {
    stream.destroy();
  }
}

/**
 * Reads the whole stored message into memory.
 * @throws StoreError (or the stream's error) when the body cannot be read.
 */
export async function readWhole(store: QueueStore, id: string): Promise<Buffer> {
  const stream = open(store, id);
  const parts: Buffer[] = [];
  try {
    for await (const chunk of stream) parts.push(chunk as Buffer);
    return Buffer.concat(parts);
  } finally {
    stream.destroy();
  }
}
