/**
 * Enforcement of the suppression list: the guard (src/suppression/guard.ts) in the relay policy at
 * RCPT (reject with 550 5.7.1 and check "suppression", or accept and drop), never for local
 * domains, off with suppression.enabled false; and cleanup's handling of dropped recipients.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { validateConfig } from '../../../src/config/load.js';
import { RelayPolicy } from '../../../src/policy/smtp-policy.js';
import { UserStore } from '../../../src/policy/users.js';
import { SuppressionGuard } from '../../../src/suppression/guard.js';
import type { PolicyReply, SessionInfo } from '../../../src/core/session.js';
import type { Suppression } from '../../../src/suppression/types.js';
import { harness, session as cleanupSession } from '../cleanup/helpers.js';

const entries: Suppression[] = [
  { scope: '*', address: 'bob@example.net', reason: 'hard-bounce', source: '7', createdAt: 0 },
  { scope: 'shop.test', address: '*@example.org', reason: 'complaint', source: 'operator', createdAt: 0 },
  { scope: '*', address: 'x@local.test', reason: 'manual', source: 'operator', createdAt: 0 },
];
const fakeStore = {
  calls: 0,
  check(scope: string | undefined, address: string): Suppression | undefined {
    this.calls++;
    const d = `*@${address.split('@')[1]}`;
    return entries.find((e) => (e.scope === '*' || e.scope === scope) && (e.address === address || e.address === d));
  },
};

function setup(suppression: Record<string, unknown> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'postline-supp-policy-'));
  const config = validateConfig({ hostname: 'mx.example.test', dataDir: dir, relay: { trustedNetworks: ['10.1.0.0/16'], localDomains: ['local.test'] }, limits: { minFreeBytes: 0 }, suppression });
  const guard = new SuppressionGuard(fakeStore, config);
  const policy = new RelayPolicy({ config, users: new UserStore(dir), freeBytes: async () => 1e12, suppressions: guard });
  return { config, guard, policy, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}
const session = (clientAddress: string, authUser?: string): SessionInfo => ({
  id: 's', listener: { name: 'sub', role: 'submission' }, clientAddress, clientPort: 1, localAddress: '127.0.0.1', localPort: 587, esmtp: true, ...(authUser ? { authUser } : {}),
});

test('RCPT of relayed mail: 550 5.7.1 naming the reason (check "suppression"); by address or whole domain, per sender scope', () => {
  const t = setup();
  try {
    const user = session('192.0.2.1', 'alice@shop.test');
    const d = t.policy.checkRecipient(user, { address: 'Bob@Example.NET' }, 'alice@shop.test');
    assert.equal(d.accept, false);
    const reply = (d as { reply: PolicyReply }).reply;
    assert.deepEqual([reply.code, reply.enhanced, reply.lines[0], reply.check], [550, '5.7.1', '<Bob@Example.NET>: recipient is on the suppression list (hard-bounce)', 'suppression']);
    assert.equal(t.policy.checkRecipient(user, { address: 'carol@example.org' }, 'alice@shop.test').accept, false, 'the sender scope\'s whole-domain entry');
    assert.equal(t.policy.checkRecipient(user, { address: 'carol@example.org' }, 'alice@other.test').accept, true, 'another sender');
    assert.equal(t.policy.checkRecipient(session('10.1.2.3'), { address: 'bob@example.net' }, '').accept, false, 'a trusted client, the null sender: entries for every sender');
  } finally {
    t.cleanup();
  }
});

test('drop mode accepts and drops; local domains and untrusted clients are never checked; enabled false turns it off', () => {
  const t = setup({ mode: 'drop' });
  try {
    const user = session('192.0.2.1', 'alice@shop.test');
    const d = t.policy.checkRecipient(user, { address: 'bob@example.net' }, 'alice@shop.test');
    assert.deepEqual(d, { accept: true, recipient: { address: 'bob@example.net' }, drop: { address: 'bob@example.net', match: 'bob@example.net', scope: '*', reason: 'hard-bounce' } });
    const before = fakeStore.calls;
    assert.deepEqual(t.policy.checkRecipient(user, { address: 'x@local.test' }, 'alice@shop.test'), { accept: true, recipient: { address: 'x@local.test' } }, 'inbound, local domain');
    assert.equal(t.policy.checkRecipient(session('192.0.2.9'), { address: 'bob@example.net' }, 'a@b.test').accept, false, 'relay denied, as ever');
    assert.equal(fakeStore.calls, before, 'neither asked the list');
    t.config.suppression.enabled = false;
    assert.deepEqual(t.policy.checkRecipient(user, { address: 'bob@example.net' }, 'alice@shop.test'), { accept: true, recipient: { address: 'bob@example.net' } });
  } finally {
    t.cleanup();
  }
});

test('cleanup: dropped recipients get recipient.dropped in the message\'s commit; with none left nothing is stored', async () => {
  const h = await harness();
  try {
    const s = cleanupSession({ role: 'submission', authUser: 'alice@shop.test' });
    const dropped = [{ address: 'Bob@example.net', match: 'bob@example.net', scope: '*', reason: 'hard-bounce' }];
    const mixed = await h.cleanup.begin(s, { mailFrom: 'alice@shop.test', recipients: [{ address: 'ok@example.net' }], dropped, bodyType: '7BIT', smtputf8: false });
    mixed.write(Buffer.from('Subject: x\r\nMessage-ID: <m1@shop.test>\r\n\r\nhi\r\n'));
    const id = await mixed.finish();
    const only = await h.cleanup.begin(s, { mailFrom: 'alice@shop.test', recipients: [], dropped, bodyType: '7BIT', smtputf8: false });
    only.write(Buffer.from('Subject: y\r\n\r\nhi\r\n'));
    const id2 = await only.finish();
    await h.store.sync();
    const evs = await h.store.readEvents({ limit: 100 });
    const mine = evs.filter((e) => e.queueId === id);
    assert.deepEqual(mine.map((e) => e.type), ['message.received', 'recipient.dropped'], 'one commit, in order');
    assert.deepEqual(mine[0]!.recipients, ['ok@example.net']);
    assert.equal(mine[1]!.recipient, 'Bob@example.net');
    assert.equal(mine[1]!.messageId, '<m1@shop.test>');
    assert.equal(mine[1]!.reason, 'hard-bounce');
    assert.equal(mine[1]!.check, 'suppression');
    assert.deepEqual(evs.filter((e) => e.queueId === id2).map((e) => e.type), ['recipient.dropped']);
    assert.equal(await h.store.get(id2), undefined, 'nothing stored');
    assert.equal((await h.store.get(id))?.recipients.length, 1);
    const big = await h.cleanup.begin(s, { mailFrom: 'alice@shop.test', recipients: [], dropped, bodyType: '7BIT', smtputf8: false });
    big.write(Buffer.alloc(11 * 1024 * 1024, 0x61));
    await assert.rejects(big.finish(), (e: { reply?: { code: number } }) => e.reply?.code === 552, 'the size limit applies');
  } finally {
    await h.close();
  }
});
