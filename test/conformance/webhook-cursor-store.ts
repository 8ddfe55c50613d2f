/**
 * The conformance suite of WebhookCursorStore (src/webhooks/cursor-store.ts): every backend must
 * pass it. Call `webhookCursorStoreConformance(name, open)` from a test file; `open` gives a fresh,
 * empty store and a cleanup function; `reopen` (optional) opens the same data again, for the
 * persistence case.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { WebhookCursorStore } from '../../src/webhooks/cursor-store.js';

export interface CursorStoreFactory {
  /** A fresh, empty store. */
  open(): Promise<{ store: WebhookCursorStore; reopen?: () => Promise<WebhookCursorStore>; cleanup: () => Promise<void> }>;
}

/** Registers the suite's tests under `name`. */
export function webhookCursorStoreConformance(name: string, factory: CursorStoreFactory): void {
  const withStore = async (fn: (s: WebhookCursorStore, reopen?: () => Promise<WebhookCursorStore>) => Promise<void>): Promise<void> => {
    const { store, reopen, cleanup } = await factory.open();
    try {
      await fn(store, reopen);
    } finally {
      await store.close().catch(() => {});
      await cleanup();
    }
  };

  test(`${name}: an unknown endpoint has no state; ensure creates it once`, () => withStore(async (s) => {
    assert.equal(await s.get('a'), undefined);
    assert.deepEqual(await s.list(), []);
    const c = await s.ensure('a', 42, 1000);
    assert.deepEqual(c, { endpoint: 'a', cursor: 42, createdAt: 1000, attempts: 0, delivered: 0, skipped: 0 });
    const again = await s.ensure('a', 99, 2000);
    assert.equal(again.cursor, 42, 'ensure keeps an existing cursor');
    assert.equal(again.createdAt, 1000);
    await s.ensure('b', 0, 1500);
    assert.deepEqual((await s.list()).map((x) => x.endpoint), ['a', 'b']);
  }));

  test(`${name}: advance moves forward only, and a delivery clears the failure state`, () => withStore(async (s) => {
    await s.ensure('a', 10, 1000);
    await s.recordFailure('a', { at: 2000, error: 'HTTP 500', failing: false });
    await s.recordFailure('a', { at: 3000, error: 'timeout after 100 ms', failing: true });
    await s.recordFailure('a', { at: 4000, error: 'connection refused', failing: true });
    let c = (await s.get('a'))!;
    assert.equal(c.attempts, 3);
    assert.equal(c.failingSince, 3000, 'failingSince is the first time it was marked');
    assert.equal(c.lastError, 'connection refused');
    assert.equal(c.lastAttemptAt, 4000);
    assert.equal(c.cursor, 10);
    await s.advance('a', 15, 5000, 0);
    c = (await s.get('a'))!;
    assert.equal(c.cursor, 15, 'a filter-only advance moves the cursor');
    assert.equal(c.attempts, 3, '...and leaves the failure state');
    assert.equal(c.failingSince, 3000);
    await s.advance('a', 20, 6000, 3);
    c = (await s.get('a'))!;
    assert.deepEqual(c, { endpoint: 'a', cursor: 20, createdAt: 1000, lastSuccessAt: 6000, lastAttemptAt: 6000, attempts: 0, delivered: 3, skipped: 0 });
    await s.advance('a', 12, 7000, 1);
    c = (await s.get('a'))!;
    assert.equal(c.cursor, 20, 'never moves back');
    assert.equal(c.delivered, 4);
  }));

  test(`${name}: endpoints are independent; errors are one line; skipped counts add up; remove forgets`, () => withStore(async (s) => {
    await s.ensure('a', 1, 1);
    await s.ensure('b', 1, 1);
    await s.recordFailure('a', { at: 5, error: 'line one\r\nline two', failing: true });
    await s.advance('b', 9, 6, 2);
    await s.addSkipped('b', 4);
    await s.addSkipped('b', 3);
    const a = (await s.get('a'))!;
    const b = (await s.get('b'))!;
    assert.equal(a.lastError, 'line one line two');
    assert.equal(a.cursor, 1);
    assert.equal(b.failingSince, undefined);
    assert.equal(b.cursor, 9);
    assert.equal(b.skipped, 7);
    await s.remove('a');
    assert.equal(await s.get('a'), undefined);
    assert.deepEqual((await s.list()).map((x) => x.endpoint), ['b']);
  }));

  test(`${name}: advance or recordFailure on an unknown endpoint throws`, () => withStore(async (s) => {
    await assert.rejects(s.advance('nope', 5, 1, 1));
    await assert.rejects(s.recordFailure('nope', { at: 1, error: 'x', failing: false }));
  }));

  test(`${name}: state survives close and reopen`, () => withStore(async (s, reopen) => {
    if (!reopen) return;
    await s.ensure('a', 3, 100);
    await s.advance('a', 7, 200, 4);
    await s.close();
    const s2 = await reopen();
    try {
      const c = (await s2.get('a'))!;
      assert.equal(c.cursor, 7);
      assert.equal(c.delivered, 4);
      assert.equal(c.lastSuccessAt, 200);
    } finally {
      await s2.close();
    }
  }));
}
