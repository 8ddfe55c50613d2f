/** Shared helpers for queue store tests: temp dirs, a capturing logger, a message factory. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { silentLogger, type Logger } from '../../../src/core/log.js';
import { SqliteQueueStore, type SqliteQueueStoreOptions } from '../../../src/spool/sqlite/store.js';
import { newQueueId } from '../../../src/core/queue-id.js';
import type { BodyWriter, NewMessage } from '../../../src/spool/types.js';

export async function tempDir(prefix = 'postline-spool-'): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** A logger that keeps every JSON line it writes. */
export function captureLogger(): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const dest = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) if (l.trim()) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { logger: pino({ level: 'debug' }, dest), lines };
}

export function newMessage(id = newQueueId(), over: Partial<NewMessage> = {}): NewMessage {
  return {
    id,
    mailFrom: 'sender@example.com',
    bodyType: '8BITMIME',
    smtputf8: false,
    origin: { kind: 'smtp', clientAddress: '192.0.2.1', clientName: 'client.example' },
    recipients: [
      { address: 'a@example.net', notify: ['FAILURE', 'DELAY'], orcpt: { addrType: 'rfc822', address: 'A@example.net' } },
      { address: 'b@example.org' },
    ],
    arrivedAt: 1_700_000_000_000,
    ...over,
  };
}

/** Writes `data` into the body stream in chunks of `chunk` bytes, honouring backpressure. */
export async function writeBody(body: BodyWriter, data: Buffer, chunk = 64 * 1024): Promise<void> {
  for (let off = 0; off < data.length; off += chunk) {
    const ok = body.stream.write(data.subarray(off, off + chunk));
    if (!ok) await new Promise<void>((r) => body.stream.once('drain', r));
  }
}

/** Reads a whole stream into one Buffer. */
export async function readAll(s: NodeJS.ReadableStream): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

/** A store on `dir` with no free-space reserve and a silent logger; `over` replaces any option. */
export function makeStore(dir: string, over: Partial<SqliteQueueStoreOptions> = {}): SqliteQueueStore {
  return new SqliteQueueStore({ dataDir: dir, minFreeBytes: 0, logger: silentLogger(), ...over });
}

/** Writes `data` as a new body in `chunk`-byte writes and commits it with a test envelope. */
export async function commitOne(store: SqliteQueueStore, data: Buffer, id = newQueueId(), chunk?: number) {
  const body = await store.createBody(id);
  await writeBody(body, data, chunk);
  return store.commit(newMessage(id), body);
}
