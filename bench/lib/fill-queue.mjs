#!/usr/bin/env node
// Fills a Postline queue quickly through the store itself (the same commit path cleanup uses,
// group-committed 500 at a time), for the million-message restart figure of bench/scale.mjs.
// Usage: node bench/lib/fill-queue.mjs DATADIR COUNT SIZE
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const { SqliteQueueStore } = await import(join(root, 'dist', 'src', 'spool', 'sqlite', 'store.js'));
const { newQueueId } = await import(join(root, 'dist', 'src', 'core', 'queue-id.js'));
const { createLogger } = await import(join(root, 'dist', 'src', 'core', 'log.js'));
const [dataDir, countArg, sizeArg] = process.argv.slice(2);
const count = Number(countArg);
const size = Number(sizeArg);
const body = Buffer.concat([Buffer.from('From: bench@source.test\r\nTo: rcpt@sink.test\r\nSubject: fill\r\n\r\n'), Buffer.alloc(size, 'x'), Buffer.from('\r\n')]);
const store = new SqliteQueueStore({ dataDir, minFreeBytes: 0, logger: createLogger({ level: 'warn', format: 'json' }, process.stderr) });
await store.open();
const one = async () => {
  const id = newQueueId(Date.now());
  const w = await store.createBody(id);
  await new Promise((res, rej) => w.stream.write(body, (e) => (e ? rej(e) : res())));
  await store.commit({ id, mailFrom: 'bench@source.test', bodyType: '7BIT', smtputf8: false, origin: { kind: 'smtp', clientAddress: '127.0.0.1', clientName: 'localhost' }, recipients: [{ address: 'rcpt@sink.test' }], arrivedAt: Date.now() }, w);
};
const t0 = Date.now();
for (let done = 0; done < count;) {
  const n = Math.min(500, count - done);
  await Promise.all(Array.from({ length: n }, one));
  done += n;
  if (done % 100_000 === 0) console.error(`filled ${done} in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
}
await store.close();
