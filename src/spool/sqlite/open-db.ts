/**
 * Opening queue.db for the store (store.ts open()): the spool directories, the database with
 * WAL and synchronous=FULL, the migrations, the writer thread, and one fsync'ing commit before
 * any event counts as durable. Kept apart from store.ts by size only.
 */
import Database from 'better-sqlite3';
import type { Logger } from '../../core/log.js';
import { lastEventIdOf } from './event-log.js';
import type { SpoolLayout } from './layout.js';
import { migrate } from './migrations.js';
import { prepareVacuum } from './vacuum.js';
import { WriterClient } from './writer-client.js';

/**
 * Opens (or creates) queue.db under `layout` and starts its writer thread, numbering events after
 * the newest stored one. @throws what SQLite or the writer throws (the caller maps it to StoreError);
 * nothing is left open then.
 */
export async function openDatabase(layout: SpoolLayout, logger: Logger, maxDatabasePages?: number): Promise<{ db: Database.Database; writer: WriterClient }> {
  await layout.ensureDirs();
  const db = new Database(layout.dbPath);
  let writer: WriterClient | undefined;
  try {
    prepareVacuum(db, logger);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('busy_timeout = 5000');
    migrate(db);
    writer = await WriterClient.start({ dbPath: layout.dbPath, ...(maxDatabasePages !== undefined ? { maxPageCount: maxDatabasePages } : {}) });
    // After a crash, the last commits of the dead process (relaxed ones) may be only in the page
    // cache: one WAL fsync before any event counts as durable, or a reader could be handed an
    // event that a power loss now would still take back.
    await writer.run({ kind: 'sync' });
    writer.startEventIds(lastEventIdOf(db));
    return { db, writer };
  } catch (err) {
    await writer?.close().catch(() => {});
    db.close();
    throw err;
  }
}
