/**
 * local.aliases: the configuration check (cycles named, duplicates, both forms), the expansion
 * (ORCPT, self-keeping alias, nesting, limits) and what policy answers at RCPT (aliases, reject
 * routes, domains named only by aliases or routes).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { validateConfig } from '../../../src/config/load.js';
import { ConfigError } from '../../../src/core/errors.js';
import { aliasKey, aliasMap, AliasLoopError, expandAliases, findAliasCycle } from '../../../src/routing/aliases.js';
import { RelayPolicy } from '../../../src/policy/smtp-policy.js';
import { UserStore } from '../../../src/policy/users.js';
import type { RecipientDecision, SessionInfo } from '../../../src/core/session.js';

const base = { listeners: [{ name: 'mx', port: 2525 }] };
const limits = { depth: 10, recipients: 1000 };

test('keys: local part unquoted and lower-cased, domain as a lower-case A-label', () => {
  assert.equal(aliasKey('"Sales"@Example.TEST'), 'sales@example.test');
  assert.equal(aliasKey('info@B\u00fccher.example.'), 'info@xn--bcher-kva.example');
});

test('a cycle is refused at load, naming it; an alias listing itself is no cycle', () => {
  const cfg = (aliases: unknown) => validateConfig({ ...base, local: { aliases } });
  assert.throws(() => cfg({ 'a@x.test': ['b@x.test'], 'b@x.test': ['c@y.test', 'A@X.test'] }), (err: unknown) => {
    assert.ok(err instanceof ConfigError);
    assert.match(err.message, /local\.aliases: alias loop: a@x\.test -> b@x\.test -> a@x\.test/);
    return true;
  });
  assert.throws(() => cfg([{ address: 'l@x.test', to: ['m@x.test'] }, { address: 'm@x.test', to: ['n@x.test'] }, { address: 'n@x.test', to: ['m@x.test'] }]), /alias loop: m@x\.test -> n@x\.test -> m@x\.test/);
  assert.throws(() => cfg([{ address: 'a@x.test', to: ['b@x.test'] }, { address: 'A@x.test', to: ['c@x.test'] }]), /the alias A@x\.test is given twice/);
  assert.throws(() => cfg({ 'a@x.test': [] }), /local\.aliases/);
  assert.throws(() => cfg({ 'a@x.test': ['no-domain'] }), /expected an address/);
  const ok = cfg({ 'user@x.test': ['user@x.test', 'other@y.test'], 'list@x.test': ['user@x.test', 'z@z.test'] });
  assert.deepEqual(Object.keys(ok.local.aliases as Record<string, string[]>), ['user@x.test', 'list@x.test']);
  assert.equal(findAliasCycle(aliasMap(ok.local.aliases).map), undefined);
  // A long chain is no stack problem.
  const chain: Record<string, string[]> = {};
  for (let i = 0; i < 20_000; i++) chain[`a${i}@x.test`] = [`a${i + 1}@x.test`];
  assert.equal(findAliasCycle(aliasMap(chain).map), undefined);
  chain['a20000@x.test'] = ['a0@x.test'];
  assert.equal(findAliasCycle(aliasMap(chain).map)?.length, 20_002);
});

test('expansion: targets in place, ORCPT the address the client gave (or its own), NOTIFY kept, self keeps the mailbox', () => {
  const { map } = aliasMap({
    'sales@example.test': ['a@example.test', 'b@other.test'],
    'list@example.test': ['sales@example.test', 'c@example.test', 'a@example.test'],
    'user@example.test': ['user@example.test', 'fwd@other.test'],
    'j\u00f6rg@example.test': ['j@other.test'],
  });
  const out = expandAliases([
    { address: 'x@elsewhere.test' },
    { address: 'Sales@Example.test', notify: ['FAILURE'] },
    { address: 'list@example.test', orcpt: { addrType: 'rfc822', address: 'old-list@example.test' } },
    { address: 'user@example.test' },
    { address: 'j\u00f6rg@example.test' },
  ], map, limits);
  assert.deepEqual(out, [
    { address: 'x@elsewhere.test' },
    { address: 'a@example.test', notify: ['FAILURE'], orcpt: { addrType: 'rfc822', address: 'Sales@Example.test' } },
    { address: 'b@other.test', notify: ['FAILURE'], orcpt: { addrType: 'rfc822', address: 'Sales@Example.test' } },
    { address: 'a@example.test', orcpt: { addrType: 'rfc822', address: 'old-list@example.test' } },
    { address: 'b@other.test', orcpt: { addrType: 'rfc822', address: 'old-list@example.test' } },
    { address: 'c@example.test', orcpt: { addrType: 'rfc822', address: 'old-list@example.test' } },
    { address: 'a@example.test', orcpt: { addrType: 'rfc822', address: 'old-list@example.test' } },
    { address: 'user@example.test' },
    { address: 'fwd@other.test', orcpt: { addrType: 'rfc822', address: 'user@example.test' } },
    { address: 'j@other.test', orcpt: { addrType: 'utf-8', address: 'j\u00f6rg@example.test' } },
  ]);
  const none = [{ address: 'q@example.test' }];
  assert.equal(expandAliases(none, map, limits), none, 'nothing to expand: the same array');
});

test('limits: nesting deeper than depth, more than `recipients` addresses, and a cycle refuse 554 5.4.6', () => {
  const chain: Record<string, string[]> = {};
  for (let i = 0; i < 5; i++) chain[`a${i}@x.test`] = [`a${i + 1}@x.test`];
  const { map } = aliasMap(chain);
  assert.deepEqual(expandAliases([{ address: 'a0@x.test' }], map, { depth: 5, recipients: 10 }).map((r) => r.address), ['a5@x.test']);
  assert.throws(() => expandAliases([{ address: 'a0@x.test' }], map, { depth: 4, recipients: 10 }), (e: unknown) => e instanceof AliasLoopError && e.reply.code === 554 && e.reply.enhanced === '5.4.6');
  const wide = aliasMap({ 'w@x.test': Array.from({ length: 11 }, (_, i) => `t${i}@x.test`) }).map;
  assert.throws(() => expandAliases([{ address: 'w@x.test' }], wide, { depth: 5, recipients: 10 }), /more than 10 addresses/);
  const loop = new Map([['a@x.test', ['b@x.test']], ['b@x.test', ['a@x.test']]]);
  assert.throws(() => expandAliases([{ address: 'a@x.test' }], loop, limits), /alias loop a@x\.test -> b@x\.test -> a@x\.test/);
});

function session(clientAddress = '192.0.2.9'): SessionInfo {
  const listener = { name: 'mx', address: '127.0.0.1', port: 25, role: 'mx' as const, tls: 'none' as const, allowPlaintextAuth: false };
  return { id: 's1', listener, clientAddress, clientPort: 1, localAddress: '127.0.0.1', localPort: 25, esmtp: true };
}
const answer = (d: RecipientDecision) => (d.accept ? 'accept' : `${d.reply.code} ${d.reply.enhanced} ${d.reply.lines.join(' ')}`);

test('policy: aliases accepted, reject routes 550 at RCPT, route domains local, alias-only domains accept only their aliases; reload', () => {
  const dir = mkdtempSync(join(tmpdir(), 'postline-policy-local-'));
  try {
    const config = validateConfig({
      ...base, dataDir: dir, limits: { minFreeBytes: 0 },
      relay: { localDomains: [{ domain: 'listed.test', recipients: ['alice'] }] },
      local: {
        routes: [
          { match: 'maildir.test', transport: 'maildir', target: '/var/mail/{local}' },
          { match: 'nobody@maildir.test', mode: 'reject' },
          { match: 'closed.test', mode: 'reject' },
          { match: 'held.test', mode: 'hold' },
        ],
        aliases: { 'sales@aliases.test': ['a@maildir.test', 'b@far.test'], 'team@listed.test': ['alice@listed.test'] },
      },
    });
    const p = new RelayPolicy({ config, users: new UserStore(dir), freeBytes: async () => 1e12 });
    const s = session();
    assert.equal(answer(p.checkRecipient(s, { address: 'bob@maildir.test' })), 'accept');
    assert.equal(answer(p.checkRecipient(s, { address: 'anyone@held.test' })), 'accept');
    assert.equal(answer(p.checkRecipient(s, { address: 'Nobody@Maildir.test' })), '550 5.1.1 <Nobody@Maildir.test>: recipient rejected by local route');
    assert.equal(answer(p.checkRecipient(s, { address: 'x@closed.test' })), '550 5.1.1 <x@closed.test>: recipient rejected by local route');
    assert.equal(answer(p.checkRecipient(s, { address: 'Sales@aliases.test' })), 'accept');
    assert.match(answer(p.checkRecipient(s, { address: 'other@aliases.test' })), /^550 5\.1\.1 /);
    assert.equal(answer(p.checkRecipient(s, { address: 'team@listed.test' })), 'accept', 'an alias passes a recipient list');
    assert.match(answer(p.checkRecipient(s, { address: 'carol@listed.test' })), /^550 5\.1\.1 /);
    assert.match(answer(p.checkRecipient(s, { address: 'x@far.test' })), /^554 5\.7\.1 /, 'a target domain is not local');
    assert.ok(p.isLocalDomain('MAILDIR.test') && p.isLocalDomain('aliases.test') && !p.isLocalDomain('far.test'));
    // A reload takes a new local section.
    config.local = { ...config.local, routes: [] };
    p.reload();
    assert.match(answer(p.checkRecipient(s, { address: 'x@closed.test' })), /^554 5\.7\.1 /);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
