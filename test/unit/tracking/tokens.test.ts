/**
 * Link tokens (src/tracking/tokens.ts): round trip of every kind, refusal of tampered, re-spelled,
 * truncated or foreign tokens (a fast-check property: any change to a token's characters is
 * refused), another secret refuses, and the key file made once with mode 0600 and read again.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { mkdtempSync, rmSync, statSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LinkSigner, LINK_KEY_FILE, loadLinkSecret, TokenError, type LinkToken } from '../../../src/tracking/tokens.js';

const signer = new LinkSigner(Buffer.from('0123456789abcdef0123456789abcdef'));
const QID = '0190ABCDEF12345678';
const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

test('every kind of token verifies to what was signed', () => {
  const cases: LinkToken[] = [
    { kind: 'open', queueId: QID, recipient: 'rcpt@example.com' },
    { kind: 'open', queueId: QID, recipient: '' },
    { kind: 'click', queueId: QID, recipient: 'rcpt@example.com', url: 'https://example.com/a?b=1&c=%20#frag' },
    { kind: 'click', queueId: QID, recipient: 'Ünïcode@例え.jp', url: 'https://例え.jp/パス' },
    { kind: 'unsubscribe', queueId: QID, recipient: 'rcpt@example.com', scope: 'news.example.com' },
  ];
  for (const t of cases) {
    const tok = signer.sign(t);
    assert.match(tok, /^[A-Za-z0-9_-]+$/);
    assert.deepEqual(signer.verify(tok), t);
    assert.deepEqual(signer.verify(tok, t.kind), t);
  }
});

test('a token of another kind, another secret, or malformed input is refused with a reason', () => {
  const open = signer.sign({ kind: 'open', queueId: QID, recipient: 'a@example.com' });
  assert.throws(() => signer.verify(open, 'click'), (e: unknown) => e instanceof TokenError && /not a click token/.test(e.message));
  const other = new LinkSigner(Buffer.from('another secret of 32 bytes......'));
  assert.throws(() => other.verify(open), /signature does not match/);
  for (const bad of ['', 'a', 'not base64!', 'A'.repeat(9000), `${open}=`, `${open.slice(0, -1)}`]) {
    assert.throws(() => signer.verify(bad), TokenError, JSON.stringify(bad.slice(0, 30)));
  }
  assert.throws(() => signer.sign({ kind: 'click', queueId: QID, recipient: 'a@b.c' }), /needs its URL/);
  assert.throws(() => signer.sign({ kind: 'open', queueId: QID, recipient: 'a\0b' }), /NUL/);
  assert.throws(() => new LinkSigner(Buffer.from('short')), /16 bytes/);
});

test('property: any change to a token\'s characters is refused', () => {
  const token = fc.record({
    kind: fc.constantFrom('open' as const, 'click' as const, 'unsubscribe' as const),
    recipient: fc.oneof(fc.constant(''), fc.emailAddress()),
    path: fc.webPath(),
  }).map(({ kind, recipient, path }): LinkToken => ({
    kind, queueId: QID, recipient,
    ...(kind === 'click' ? { url: `https://example.com${path}` } : {}),
    ...(kind === 'unsubscribe' ? { scope: 'example.com' } : {}),
  }));
  const change = fc.oneof(
    fc.record({ op: fc.constant('replace' as const), at: fc.nat(), ch: fc.nat(63) }),
    fc.record({ op: fc.constant('insert' as const), at: fc.nat(), ch: fc.nat(63) }),
    fc.record({ op: fc.constant('delete' as const), at: fc.nat(), ch: fc.constant(0) }),
    fc.record({ op: fc.constant('truncate' as const), at: fc.nat(), ch: fc.constant(0) }),
  );
  fc.assert(fc.property(token, change, (t, c) => {
    const tok = signer.sign(t);
    const at = c.at % tok.length;
    let bad: string;
    if (c.op === 'replace') {
      const ch = B64URL[c.ch]!;
      fc.pre(ch !== tok[at]);
      bad = tok.slice(0, at) + ch + tok.slice(at + 1);
    } else if (c.op === 'insert') bad = tok.slice(0, at) + B64URL[c.ch]! + tok.slice(at);
    else if (c.op === 'delete') bad = tok.slice(0, at) + tok.slice(at + 1);
    else bad = tok.slice(0, at);
    assert.throws(() => signer.verify(bad), TokenError);
  }), { numRuns: 2000 });
});

test('the key file is made once, mode 0600, and read again; a configured secret wins', () => {
  const dir = mkdtempSync(join(tmpdir(), 'postline-linkkey-'));
  try {
    const a = loadLinkSecret(dir);
    assert.equal(a.length, 32);
    const st = statSync(join(dir, LINK_KEY_FILE));
    assert.equal(st.mode & 0o777, 0o600);
    assert.deepEqual(loadLinkSecret(dir), a, 'the second call reads the same key');
    assert.ok(readFileSync(join(dir, LINK_KEY_FILE)).equals(a), 'the file holds the key');
    assert.deepEqual(loadLinkSecret(dir, 'a configured secret value'), Buffer.from('a configured secret value'));
    const s1 = new LinkSigner(a);
    const s2 = new LinkSigner(loadLinkSecret(dir));
    assert.equal(s2.verify(s1.sign({ kind: 'open', queueId: QID, recipient: '' })).queueId, QID);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
