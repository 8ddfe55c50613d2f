/**
 * The ApiKeyStore conformance suite (src/http/api-keys.ts): every backend runs it from its own
 * test file with `apiKeyStoreConformance(label, open)`.
 *
 * `open` gives two handles on one fresh backend (two connections, or the same object twice for a
 * backend that is only in-process): what one writes, the other must see at once (the CLI revokes,
 * the server refuses).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ApiKeyError, type ApiKeyStore } from '../../src/http/api-keys.js';

export interface ConformanceBackend {
  readonly a: ApiKeyStore;
  readonly b: ApiKeyStore;
  /** Closes both and removes what the backend made. */
  done(): Promise<void>;
}

const KEY_RE = /^pl_[a-z2-7]{10}_[A-Za-z0-9_-]{43}$/;

async function withBackend(open: () => Promise<ConformanceBackend>, fn: (be: ConformanceBackend) => Promise<void>): Promise<void> {
  const be = await open();
  try {
    await fn(be);
  } finally {
    await be.done();
  }
}

async function rejectsWith(p: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(p, (err: unknown) => err instanceof ApiKeyError && err.code === code);
}

/** Registers the suite under `describe(label)`. */
export function apiKeyStoreConformance(label: string, open: () => Promise<ConformanceBackend>): void {
  describe(`ApiKeyStore conformance: ${label}`, () => {
    it('create gives a long random key once; verify gives its record back', () => withBackend(open, async ({ a, b }) => {
      const { key, record } = await a.create({ name: 'app-1', scopes: ['send', 'read'], domains: ['Example.COM', 'example.com', 'mail.example.org.'], ratePerMinute: 120 }, 1_700_000_000_000);
      assert.match(key, KEY_RE);
      assert.equal(key.split('_')[1], record.prefix);
      assert.deepEqual(record.scopes, ['send', 'read']);
      assert.deepEqual(record.domains, ['example.com', 'mail.example.org']);
      assert.equal(record.ratePerMinute, 120);
      assert.equal(record.createdAt, 1_700_000_000_000);
      const seen = await b.verify(key);
      assert.ok(seen);
      assert.deepEqual({ ...seen }, { ...record });
    }));

    it('list shows every key without its secret', () => withBackend(open, async ({ a, b }) => {
      const k1 = await a.create({ name: 'zeta', scopes: ['admin'] });
      const k2 = await a.create({ name: 'alpha', scopes: ['send'] });
      const keys = await b.list();
      assert.deepEqual(keys.map((k) => k.name), ['alpha', 'zeta']);
      const text = JSON.stringify(keys);
      // The secret is everything after "pl_PREFIX_" (base64url: it may hold "_" itself).
      for (const k of [k1, k2]) {
        const secret = k.key.slice(k.key.indexOf(`_${k.record.prefix}_`) + k.record.prefix.length + 2);
        assert.ok(secret.length >= 16, 'the secret part is long');
        assert.ok(!text.includes(secret), 'a secret shows in list()');
      }
      assert.equal(keys[0]!.domains, undefined);
      assert.equal(keys[0]!.ratePerMinute, undefined);
      assert.notEqual(k1.record.prefix, k2.record.prefix);
    }));

    it('refuses a second active key of one name and bad specs', () => withBackend(open, async ({ a }) => {
      await a.create({ name: 'dup', scopes: ['send'] });
      await rejectsWith(a.create({ name: 'dup', scopes: ['read'] }), 'ERR_API_KEY_EXISTS');
      await rejectsWith(a.create({ name: '', scopes: ['send'] }), 'ERR_API_KEY_SPEC');
      await rejectsWith(a.create({ name: 'has space', scopes: ['send'] }), 'ERR_API_KEY_SPEC');
      await rejectsWith(a.create({ name: 'x'.repeat(65), scopes: ['send'] }), 'ERR_API_KEY_SPEC');
      await rejectsWith(a.create({ name: 'noscope', scopes: [] }), 'ERR_API_KEY_SPEC');
      await rejectsWith(a.create({ name: 'badscope', scopes: ['root' as never] }), 'ERR_API_KEY_SPEC');
      await rejectsWith(a.create({ name: 'baddomain', scopes: ['send'], domains: ['exa mple.com'] }), 'ERR_API_KEY_SPEC');
      await rejectsWith(a.create({ name: 'badrate', scopes: ['send'], ratePerMinute: 0 }), 'ERR_API_KEY_SPEC');
      await rejectsWith(a.create({ name: 'badrate2', scopes: ['send'], ratePerMinute: 1.5 }), 'ERR_API_KEY_SPEC');
      assert.deepEqual((await a.list()).map((k) => k.name), ['dup']);
    }));

    it('verify refuses anything but the exact key, and never throws', () => withBackend(open, async ({ a }) => {
      const { key } = await a.create({ name: 'k', scopes: ['send'] });
      const last = key.at(-1) === 'A' ? 'B' : 'A';
      const probes = [
        '', 'pl_', key.slice(0, -1), `${key.slice(0, -1)}${last}`, `${key}x`, key.toUpperCase(), ` ${key}`,
        `pl_${'a'.repeat(10)}_${'A'.repeat(43)}`, 'x'.repeat(10_000), '\0', 'pl_\u00e9\u00e9\u00e9_x', "' OR 1=1 --",
      ];
      for (const p of probes) assert.equal(await a.verify(p), undefined, `verified ${JSON.stringify(p.slice(0, 60))}`);
      assert.ok(await a.verify(key));
    }));

    it('revoke ends a key at once for every handle; its name can be used again', () => withBackend(open, async ({ a, b }) => {
      const first = await a.create({ name: 'rot', scopes: ['send'] });
      const other = await a.create({ name: 'keep', scopes: ['read'] });
      assert.ok(await b.verify(first.key));
      assert.equal(await b.revoke('rot', 1_800_000_000_000), true);
      assert.equal(await a.verify(first.key), undefined);
      assert.equal(await b.verify(first.key), undefined);
      assert.ok(await a.verify(other.key), 'another key stopped working');
      assert.equal(await a.revoke('rot'), false, 'revoked twice');
      assert.equal(await a.revoke('nobody'), false);
      const listed = (await a.list()).find((k) => k.name === 'rot');
      assert.equal(listed?.revokedAt, 1_800_000_000_000);
      const second = await b.create({ name: 'rot', scopes: ['admin'] });
      assert.ok(await a.verify(second.key));
      assert.equal(await a.verify(first.key), undefined, 'the old key came back with its name');
      assert.deepEqual((await a.list()).filter((k) => k.name === 'rot').map((k) => k.scopes), [['admin']]);
    }));
  });
}
