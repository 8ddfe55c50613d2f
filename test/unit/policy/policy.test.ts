import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { validateConfig } from '../../../src/config/load.js';
import { RelayPolicy } from '../../../src/policy/smtp-policy.js';
import { UserStore, hashPassword, verifyPassword } from '../../../src/policy/users.js';
import { NetworkList } from '../../../src/policy/networks.js';
import type { SessionInfo } from '../../../src/core/session.js';
import type { RecipientDecision } from '../../../src/core/session.js';

function setup(extra: Record<string, unknown> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'postline-policy-'));
  const config = validateConfig({
    hostname: 'mx.example.test',
    dataDir: dir,
    relay: { trustedNetworks: ['10.1.0.0/16', '::1/128'], localDomains: ['example.test', { domain: 'Bücher.example', recipients: ['alice', 'bob@xn--bcher-kva.example'] }] },
    limits: { minFreeBytes: 0 },
    ...extra,
  });
  const users = new UserStore(dir);
  let free = 10 ** 12;
  const policy = new RelayPolicy({ config, users, freeBytes: async () => free });
  return { dir, config, users, policy, setFree: (n: number) => { free = n; }, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

function session(clientAddress: string, authUser?: string): SessionInfo {
  const listener = { name: 'mx', address: '127.0.0.1', port: 25, role: 'mx' as const, tls: 'starttls' as const, allowPlaintextAuth: false };
  return { id: 's1', listener, clientAddress, clientPort: 1, localAddress: '127.0.0.1', localPort: 25, esmtp: true, authUser };
}

const accepted = (d: RecipientDecision) => d.accept;
const replyOf = (d: RecipientDecision) => (d.accept ? undefined : `${d.reply.code} ${d.reply.enhanced}`);

test('local domains from anyone, other domains only from trusted or authenticated clients', () => {
  const t = setup();
  try {
    const stranger = session('192.0.2.9');
    assert.ok(accepted(t.policy.checkRecipient(stranger, { address: 'someone@EXAMPLE.test' })));
    assert.equal(replyOf(t.policy.checkRecipient(stranger, { address: 'x@elsewhere.test' })), '554 5.7.1');
    assert.ok(accepted(t.policy.checkRecipient(session('10.1.2.3'), { address: 'x@elsewhere.test' })));
    assert.ok(accepted(t.policy.checkRecipient(session('::ffff:10.1.2.3'), { address: 'x@elsewhere.test' })));
    assert.ok(accepted(t.policy.checkRecipient(session('::1'), { address: 'x@elsewhere.test' })));
    assert.ok(accepted(t.policy.checkRecipient(session('192.0.2.9', 'alice'), { address: 'x@elsewhere.test' })));
  } finally {
    t.cleanup();
  }
});

test('address tricks never open a relay', () => {
  const t = setup();
  try {
    const stranger = session('192.0.2.9');
    for (const address of ['user%elsewhere.test@example.test', 'elsewhere.test!user@example.test', '"user@elsewhere.test"@example.test', 'user%elsewhere.test', '"a@b"@elsewhere.test']) {
      const d = t.policy.checkRecipient(stranger, { address });
      assert.equal(d.accept, false, address);
    }
  } finally {
    t.cleanup();
  }
});

test('recipient lists give 550 5.1.1 for unknown users; IDN domains match in either form', () => {
  const t = setup();
  try {
    const s = session('192.0.2.9');
    assert.ok(accepted(t.policy.checkRecipient(s, { address: 'alice@bücher.example' })));
    assert.ok(accepted(t.policy.checkRecipient(s, { address: 'Bob@xn--bcher-kva.example' })));
    assert.equal(replyOf(t.policy.checkRecipient(s, { address: 'mallory@bücher.example' })), '550 5.1.1');
  } finally {
    t.cleanup();
  }
});

test('postmaster, with or without a domain, is always accepted and goes to the postmaster address', () => {
  const t = setup({ relay: { trustedNetworks: [], localDomains: ['example.test'], postmaster: 'admin@example.test' } });
  try {
    const s = session('192.0.2.9');
    for (const address of ['Postmaster', 'postmaster@example.test', 'POSTMASTER@Example.Test']) {
      const d = t.policy.checkRecipient(s, { address });
      assert.ok(d.accept, address);
      if (d.accept) {
        assert.equal(d.recipient.address, 'admin@example.test');
        assert.equal(d.recipient.orcpt?.address, address);
      }
    }
    assert.equal(t.policy.checkRecipient(s, { address: 'postmaster@elsewhere.test' }).accept, false);
    assert.equal(replyOf(t.policy.checkRecipient(s, { address: 'nodomain' })), '501 5.1.3');
  } finally {
    t.cleanup();
  }
});

test('authenticated users may only use their own senders', async () => {
  const t = setup();
  try {
    await t.users.set('alice@example.test', 'pw1');
    await t.users.set('bob', 'pw2');
    await t.users.set('app', 'pw3', ['@news.example.test', 'billing@example.test']);
    const ok = async (user: string, from: string) => (await t.policy.checkMailFrom(session('192.0.2.1', user), from)) === undefined;
    assert.ok(await ok('alice@example.test', 'alice@example.test'));
    assert.ok(await ok('alice@example.test', 'ALICE@example.TEST'));
    assert.ok(!(await ok('alice@example.test', 'ceo@example.test')));
    assert.ok(await ok('alice@example.test', ''), 'null sender is allowed');
    assert.ok(await ok('bob', 'bob@example.test'));
    assert.ok(await ok('bob', 'bob@mx.example.test'));
    assert.ok(!(await ok('bob', 'bob@elsewhere.test')));
    assert.ok(await ok('app', 'anything@news.example.test'));
    assert.ok(await ok('app', 'billing@example.test'));
    assert.ok(!(await ok('app', 'app@example.test')));
    const r = await t.policy.checkMailFrom(session('192.0.2.1', 'alice@example.test'), 'ceo@example.test');
    assert.equal(r?.code, 553);
  } finally {
    t.cleanup();
  }
});

test('below the free-space reserve MAIL gets 452 4.3.1', async () => {
  const t = setup({ limits: { minFreeBytes: 1000 } });
  try {
    t.setFree(10);
    const r = await t.policy.checkMailFrom(session('192.0.2.1'), 'a@b.test');
    assert.equal(`${r?.code} ${r?.enhanced}`, '452 4.3.1');
  } finally {
    t.cleanup();
  }
});

test('users: scrypt hashes, authenticate, delete, file reload', async () => {
  const t = setup();
  try {
    const h = await hashPassword('s3cret');
    assert.match(h, /^scrypt\$/);
    assert.ok(await verifyPassword('s3cret', h));
    assert.ok(!(await verifyPassword('wrong', h)));
    assert.ok(!(await verifyPassword('s3cret', 'garbage')));
    await t.users.set('carol', 'pw');
    assert.ok(await t.users.authenticate('carol', 'pw'));
    assert.ok(!(await t.users.authenticate('carol', 'nope')));
    assert.ok(!(await t.users.authenticate('nobody', 'pw')));
    const other = new UserStore(t.dir); // a second reader (the server) sees the CLI's change
    assert.deepEqual(other.list().map((u) => u.name), ['carol']);
    assert.ok(t.users.delete('carol'));
    assert.ok(!t.users.delete('carol'));
    assert.deepEqual(other.list(), []);
    await assert.rejects(t.users.set('bad name', 'pw'), /bad user name/);
    await assert.rejects(t.users.set('ok', ''), /must not be empty/);
  } finally {
    t.cleanup();
  }
});

test('network lists: CIDR, bare addresses, bad entries name the key', () => {
  const n = new NetworkList(['127.0.0.0/8', '2001:db8::/32', '192.0.2.7']);
  assert.ok(n.contains('127.9.9.9'));
  assert.ok(n.contains('2001:db8::1'));
  assert.ok(n.contains('192.0.2.7'));
  assert.ok(!n.contains('192.0.2.8'));
  assert.ok(!n.contains('not-an-ip'));
  assert.throws(() => new NetworkList(['10.0.0.0/33']), /relay\.trustedNetworks\.0/);
  assert.throws(() => new NetworkList(['ok', 'x']), /trustedNetworks\.0/);
});

test('quoted local parts that need no quotes are the same address; UTS 46 look-alike spellings are not local', () => {
  const t = setup();
  try {
    const s = session('192.0.2.9');
    const d1 = t.policy.checkRecipient(s, { address: '"postmaster"@example.test' });
    assert.ok(d1.accept && d1.recipient.address === 'postmaster@mx.example.test');
    assert.ok(accepted(t.policy.checkRecipient(s, { address: '"alice"@bücher.example' })));
    assert.equal(t.policy.checkRecipient(s, { address: '"user%elsewhere.test"@example.test' }).accept, false);
    for (const address of ['victim@ｅｘａｍｐｌｅ.test', 'victim@example。test', 'victim@exam\u00ADple.test']) {
      assert.equal(replyOf(t.policy.checkRecipient(s, { address })), '554 5.7.1', address);
    }
  } finally {
    t.cleanup();
  }
});
