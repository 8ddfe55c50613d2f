/** The ApiKeyStore conformance suite against SQLite (two side connections to one queue.db), and the Idempotency store. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteApiKeyStore, openApiStores } from '../../../src/http/sqlite-stores.js';
import { apiKeyStoreConformance } from '../../conformance/api-key-store.js';

apiKeyStoreConformance('sqlite (side connections)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'postline-keys-'));
  const a = SqliteApiKeyStore.open(dir);
  const b = SqliteApiKeyStore.open(dir, { create: false });
  return { a, b, done: async () => { await a.close(); await b.close(); rmSync(dir, { recursive: true, force: true }); } };
});

describe('SqliteIdempotencyStore', () => {
  it('keeps answers per API key, hides them after the TTL and prunes them', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'postline-idem-'));
    const s = openApiStores(dir);
    try {
      await s.idempotency.put('k1', 'abc', { requestHash: 'h', status: 202, body: '{"x":1}', createdAt: 1000 });
      assert.deepEqual(await s.idempotency.get('k1', 'abc', 0), { requestHash: 'h', status: 202, body: '{"x":1}', createdAt: 1000 });
      assert.equal(await s.idempotency.get('k2', 'abc', 0), undefined, 'another API key sees it');
      assert.equal(await s.idempotency.get('k1', 'abc', 1001), undefined, 'seen after its TTL');
      await s.idempotency.put('k1', 'new', { requestHash: 'h2', status: 202, body: '{}', createdAt: 5000 });
      assert.equal(await s.idempotency.prune(2000), 1);
      assert.ok(await s.idempotency.get('k1', 'new', 0));
    } finally {
      await s.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
