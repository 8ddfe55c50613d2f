/**
 * Opening the configured queue store (the server, and the CLI when no server runs): the data
 * directory lock, then the store, with the fault layer when the fault suite asks for it.
 */
import { mkdirSync } from 'node:fs';
import type { PostlineConfig } from '../config/schema.js';
import { NoDataDirError } from '../core/errors.js';
import { createLogger, type Logger } from '../core/log.js';
import { lockDataDir } from './data-dir-lock.js';
import { withFaults } from './fault-store.js';
import { SqliteQueueStore } from './sqlite/store.js';
import type { QueueStore } from './types.js';

/**
 * Opens the queue store of a configuration (the server, and `postline queue` when no server runs).
 * Takes the data directory lock first, so the store's crash recovery never touches the spool of a
 * running server; `close()` releases it.
 * `opts.create` false (the CLI): only an existing queue is opened; nothing is created.
 * @throws PostlineError ERR_DATA_DIR_LOCKED when another Postline runs on the data directory;
 *         NoDataDirError when `opts.create` is false and dataDir holds no queue.
 */
export async function openStore(config: PostlineConfig, logger?: Logger, opts: { create?: boolean } = {}): Promise<QueueStore> {
  if (opts.create === false && !SqliteQueueStore.exists(config.dataDir)) {
    // Checked before the lock and mkdir: a command that only reads the queue creates nothing.
    throw new NoDataDirError(`no queue at ${config.dataDir} (no queue.db there)`, config.dataDir);
  }
  mkdirSync(config.dataDir, { recursive: true });
  const lock = lockDataDir(config.dataDir);
  const store = new SqliteQueueStore({ dataDir: config.dataDir, create: opts.create !== false, recovery: opts.create === false ? 'blocking' : 'background', minFreeBytes: () => config.limits.minFreeBytes, logger: logger ?? createLogger({ level: 'warn', format: 'json' }, process.stderr) });
  try {
    await store.open();
  } catch (err) {
    lock.release();
    throw err;
  }
  const close = store.close.bind(store);
  store.close = async () => {
    try {
      await close();
    } finally {
      lock.release();
    }
  };
  return withFaults(store);
}

