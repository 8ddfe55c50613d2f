/** The `local.lmtp` keys: defaults, limits, and refusals that name the key. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { configSchema } from '../../../src/config/schema.js';

test('local.lmtp defaults', () => {
  const c = configSchema.parse({});
  assert.deepEqual(c.local.lmtp, {
    connectTimeoutMs: 10_000, commandTimeoutMs: 120_000, dataDoneTimeoutMs: 600_000, transactionTimeoutMs: 1_800_000,
    idleTimeoutMs: 10_000, maxConnections: 50, messagesPerConnection: 1000, recipientsPerTransaction: 50, chunking: true,
  });
});

test('local.lmtp refuses bad values and unknown keys, naming the key', () => {
  for (const [lmtp, path] of [
    [{ lhloName: 'two words' }, 'local.lmtp.lhloName'],
    [{ connectionsPerTarget: 0 }, 'local.lmtp.connectionsPerTarget'],
    [{ idleTimeoutMs: -1 }, 'local.lmtp.idleTimeoutMs'],
    [{ chunk: true }, 'local.lmtp'],
  ] as const) {
    const r = configSchema.safeParse({ local: { lmtp } });
    assert.equal(r.success, false, JSON.stringify(lmtp));
    assert.ok(r.error!.issues.some((i) => i.path.join('.') === path), `${JSON.stringify(lmtp)}: ${JSON.stringify(r.error!.issues)}`);
  }
  const ok = configSchema.parse({ local: { lmtp: { lhloName: 'mx.example.test', connectionsPerTarget: 4, idleTimeoutMs: 0 } } });
  assert.equal(ok.local.lmtp.connectionsPerTarget, 4);
});
