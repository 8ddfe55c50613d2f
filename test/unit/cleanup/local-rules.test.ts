/**
 * Cleanup with local rules (local/rules.ts from a validated configuration): aliases expanded at
 * acceptance with ORCPT kept and duplicates removed; a hold route commits the message held with
 * its message.held event in the same commit; an expansion past the limits refuses the message.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateConfig } from '../../../src/config/load.js';
import { localRecipientRules } from '../../../src/local/rules.js';
import { PostlineError } from '../../../src/core/errors.js';
import { envelope, harness, session } from './helpers.js';

const config = validateConfig({
  listeners: [{ name: 'mx', port: 2525 }],
  local: {
    routes: [{ match: 'held.test', mode: 'hold' }, { match: 'example.test', transport: 'maildir', target: '/m/{local}' }],
    aliases: {
      'sales@example.test': ['a@example.test', 'b@other.test'],
      'all@example.test': ['sales@example.test', 'a@example.test', 'h@held.test'],
      'deep@example.test': ['d1@example.test'], 'd1@example.test': ['d2@example.test'], 'd2@example.test': ['end@example.test'],
    },
    aliasLimits: { depth: 2 },
  },
});

test('aliases are expanded when the message is committed: ORCPT kept, duplicates from one original removed', async () => {
  const h = await harness({}, undefined, undefined, localRecipientRules(config));
  try {
    const msg = await h.cleanup.begin(session(), envelope(['sales@example.test', 'a@example.test']));
    msg.write(Buffer.from('Subject: t\r\n\r\nhi\r\n'));
    const id = await msg.finish();
    const q = (await h.store.get(id))!;
    assert.deepEqual(q.recipients.map((r) => [r.address, r.orcpt?.address]), [
      ['a@example.test', 'sales@example.test'], ['b@other.test', 'sales@example.test'], ['a@example.test', undefined],
    ]);
    assert.equal(q.held, false);
  } finally {
    await h.close();
  }
});

test('a recipient routed to a hold route: committed held, message.held (reason "local route") in the same commit', async () => {
  const h = await harness({}, undefined, undefined, localRecipientRules(config));
  try {
    const msg = await h.cleanup.begin(session(), envelope(['all@example.test']));
    msg.write(Buffer.from('Subject: t\r\n\r\nhi\r\n'));
    const id = await msg.finish();
    const q = (await h.store.get(id))!;
    assert.equal(q.held, true);
    assert.deepEqual(q.recipients.map((r) => r.address), ['a@example.test', 'b@other.test', 'h@held.test']);
    const evs = await h.store.readEvents({ queueId: id, limit: 10 });
    assert.deepEqual(evs.map((e) => [e.type, e.reason]), [['message.received', undefined], ['message.held', 'local route']]);
    assert.equal(evs[1]!.id, evs[0]!.id + 1);
    assert.equal((await h.store.dueBatch(undefined, 10)).length, 0, 'a held message is never due');
  } finally {
    await h.close();
  }
});

test('an expansion nested past local.aliasLimits.depth refuses the message with 554 5.4.6', async () => {
  const h = await harness({}, undefined, undefined, localRecipientRules(config));
  try {
    await assert.rejects(h.cleanup.begin(session(), envelope(['deep@example.test'])), (e: unknown) => e instanceof PostlineError && e.reply.code === 554 && e.reply.enhanced === '5.4.6');
  } finally {
    await h.close();
  }
});
