/** `postline webhooks status` (the real CLI as a child process) over a real queue.db. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { runCli } from '../../helpers/postline-process.js';
import { SqliteWebhookCursorStore } from '../../../src/webhooks/cursor-store.js';
import { openSideDatabase } from '../../../src/spool/sqlite/side-db.js';
import { newSecret } from '../../helpers/webhook-receiver.js';
import type { WebhookStatusReport } from '../../../src/cli/webhooks.js';

test('webhooks status: text and --json, configured, new and no longer configured endpoints; no queue: exit 2', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'postline-hookcli-'));
  try {
    const dataDir = join(dir, 'var');
    const configFile = join(dir, 'postline.yaml');
    const secret = newSecret();
    await writeFile(configFile, stringify({
      dataDir,
      listeners: [{ name: 'mx', port: 2525 }],
      webhooks: [
        { name: 'crm', url: 'https://hooks.example.com/crm', secret },
        { name: 'billing', url: 'https://hooks.example.com/billing', secret },
        { name: 'fresh', url: 'https://hooks.example.com/fresh', secret },
      ],
    }));
    const none = await runCli(['webhooks', 'status', '--config', configFile], undefined, {}, { cleanEnv: true });
    assert.equal(none.code, 2, none.stderr);
    assert.match(none.stderr, /no queue/);

    const db = openSideDatabase(dataDir);
    if (!db.prepare("SELECT 1 FROM sqlite_master WHERE name = 'events'").get()) {
      db.exec('CREATE TABLE events (id INTEGER PRIMARY KEY, at INTEGER NOT NULL, type TEXT NOT NULL, queue_id TEXT, data TEXT NOT NULL)');
    }
    db.prepare("INSERT INTO events (id, at, type, data) VALUES (120, 1, 'message.received', '{}')").run();
    const s = new SqliteWebhookCursorStore(db);
    await s.ensure('crm', 100, 1_700_000_000_000);
    await s.advance('crm', 110, 1_700_000_001_000, 10);
    await s.ensure('billing', 50, 1_700_000_000_000);
    await s.recordFailure('billing', { at: 1_700_000_002_000, error: 'HTTP 503', failing: true });
    await s.ensure('old', 7, 1_700_000_000_000);
    await s.close();

    const j = await runCli(['webhooks', 'status', '--json', '--config', configFile], undefined, {}, { cleanEnv: true });
    assert.equal(j.code, 0, j.stderr);
    const r = JSON.parse(j.stdout) as WebhookStatusReport;
    assert.equal(r.lastEventId, 120);
    const by = new Map(r.endpoints.map((e) => [e.name, e]));
    assert.deepEqual([...by.keys()], ['crm', 'billing', 'fresh', 'old']);
    assert.deepEqual(by.get('crm'), {
      name: 'crm', url: 'https://hooks.example.com/crm', configured: true, state: 'ok', cursor: 110, backlog: 10,
      lastSuccessAt: '2023-11-14T22:13:21.000Z', lastAttemptAt: '2023-11-14T22:13:21.000Z', attempts: 0, failedAttempts: 0, delivered: 10, skipped: 0,
    });
    assert.equal(by.get('billing')!.state, 'failing');
    assert.equal(by.get('billing')!.failingSince, '2023-11-14T22:13:22.000Z');
    assert.equal(by.get('billing')!.lastError, 'HTTP 503');
    assert.equal(by.get('billing')!.backlog, 70);
    assert.equal(by.get('fresh')!.state, 'new');
    assert.equal(by.get('old')!.configured, false);

    const t = await runCli(['webhooks', 'status', '--config', configFile], undefined, {}, { cleanEnv: true });
    assert.equal(t.code, 0, t.stderr);
    assert.match(t.stdout, /^crm {2}https:\/\/hooks\.example\.com\/crm {2}\[ok\]\n {2}cursor 110 {2}backlog 10/m);
    assert.match(t.stdout, /billing .*\[failing\][\s\S]*failing since {2}2023-11-14T22:13:22\.000Z\n {2}last error {5}HTTP 503/);
    assert.match(t.stdout, /old {2}\(not in the configuration read/);

    const cfg = await runCli(['config', '--config', configFile], undefined, {}, { cleanEnv: true });
    assert.equal(cfg.code, 0, cfg.stderr);
    assert.ok(!cfg.stdout.includes(secret.slice(6)), '`postline config` hides webhook secrets');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
