/** The WebhookCursorStore conformance suite against the SQLite backend (queue.db side connection). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { webhookCursorStoreConformance } from '../../conformance/webhook-cursor-store.js';
import { SqliteWebhookCursorStore, lastEventIdIn } from '../../../src/webhooks/cursor-store.js';
import { openSideDatabase } from '../../../src/spool/sqlite/side-db.js';

webhookCursorStoreConformance('sqlite', {
  async open() {
    const dir = await mkdtemp(join(tmpdir(), 'postline-hookcur-'));
    return {
      store: SqliteWebhookCursorStore.open(dir),
      reopen: async () => SqliteWebhookCursorStore.open(dir),
      cleanup: () => rm(dir, { recursive: true, force: true }),
    };
  },
});

test('sqlite: lastEventIdIn is 0 without an events table, else MAX(id)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'postline-hookcur-'));
  const db = openSideDatabase(dir);
  try {
    const hasEvents = db.prepare("SELECT 1 FROM sqlite_master WHERE name = 'events'").get();
    if (!hasEvents) {
      assert.equal(lastEventIdIn(db), 0);
      db.exec('CREATE TABLE events (id INTEGER PRIMARY KEY, at INTEGER, type TEXT, queue_id TEXT, data TEXT)');
    }
    assert.equal(lastEventIdIn(db), (db.prepare('SELECT MAX(id) AS m FROM events').get() as { m: number | null }).m ?? 0);
    db.prepare("INSERT INTO events (id, at, type, data) VALUES (41, 1, 'message.received', '{}')").run();
    assert.equal(lastEventIdIn(db), 41);
  } finally {
    db.close();
    await rm(dir, { recursive: true, force: true });
  }
});
