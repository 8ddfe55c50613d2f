/** Signed per-recipient return paths: round trip, case folding, forgeries refused, shape limits. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ReturnPaths, isOwnMail } from '../../../src/bounce/return-path.js';
import { loadOrCreateSecret } from '../../../src/core/secret-file.js';
import { newQueueId } from '../../../src/core/queue-id.js';

const rp = new ReturnPaths({ domain: 'Bounces.Example.TEST', key: Buffer.alloc(32, 7) });

test('a return path names its queue entry and recipient, in any case, and fits a local part', () => {
  const id = newQueueId();
  const a = rp.encode(id, 37);
  assert.match(a, /^b-[0-9a-z]{18}-11-[0-9a-z]{16}@bounces\.example\.test$/);
  assert.ok(a.split('@')[0]!.length <= 64);
  assert.deepEqual(rp.decode(a), { queueId: id, idx: 37 });
  assert.deepEqual(rp.decode(a.toUpperCase()), { queueId: id, idx: 37 });
  assert.ok(rp.isOurs('x@bounces.example.test.'));
});

test('forged, mangled or foreign return paths are refused', () => {
  const id = newQueueId();
  const a = rp.encode(id, 0);
  const other = new ReturnPaths({ domain: 'bounces.example.test', key: Buffer.alloc(32, 8) });
  assert.equal(other.decode(a), undefined, 'another key');
  assert.equal(rp.decode(a.replace('@bounces.example.test', '@elsewhere.test')), undefined, 'another domain');
  assert.equal(rp.decode(a.replace(/^b-/, 'c-')), undefined, 'another prefix');
  assert.equal(rp.decode(`b-${id.toLowerCase()}-1-${a.split('-')[3]}`), undefined, 'another recipient index');
  assert.equal(rp.decode('postmaster@bounces.example.test'), undefined);
  fc.assert(fc.property(fc.nat({ max: a.indexOf('@') - 1 }), fc.constantFrom(...'0123456789abcdefghjkmnpqrstvwxyz-'), (pos, ch) => {
    if (a[pos] === ch) return true;
    const changed = a.slice(0, pos) + ch + a.slice(pos + 1);
    return rp.decode(changed) === undefined;
  }), { numRuns: 500 });
});

test('own mail: API, local, authenticated or trusted SMTP; not relayed mail nor DSNs', () => {
  const trusted = (a: string) => a === '127.0.0.1';
  assert.ok(isOwnMail({ kind: 'api' }, trusted));
  assert.ok(isOwnMail({ kind: 'smtp', authUser: 'u', clientAddress: '192.0.2.1' }, trusted));
  assert.ok(isOwnMail({ kind: 'smtp', clientAddress: '127.0.0.1' }, trusted));
  assert.equal(isOwnMail({ kind: 'smtp', clientAddress: '192.0.2.1' }, trusted), false);
  assert.equal(isOwnMail({ kind: 'dsn' }, trusted), false);
  assert.equal(isOwnMail(undefined, trusted), false);
});

test('the made secret is kept, 0600, and the same on the next read', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pl-secret-'));
  try {
    const a = loadOrCreateSecret(dir, 'k.key');
    const b = loadOrCreateSecret(dir, 'k.key');
    assert.equal(a.length, 32);
    assert.deepEqual(a, b);
    assert.equal(statSync(join(dir, 'k.key')).mode & 0o777, 0o600);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
