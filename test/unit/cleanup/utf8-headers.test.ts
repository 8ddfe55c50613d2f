/**
 * Cleanup records, for SMTPUTF8 mail, whether the header section holds UTF-8 (RFC 6531, RFC 6532),
 * so delivery can send ASCII-only SMTPUTF8 mail to a hop without SMTPUTF8 (issue 15 item 2).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { envelope, harness, session } from './helpers.js';

async function commit(smtputf8: boolean, data: string, rcpts = ['a@example.net', 'b@example.net']): Promise<boolean | undefined> {
  const h = await harness();
  try {
    const msg = await h.cleanup.begin(session(), envelope(rcpts, { smtputf8 }));
    msg.write(Buffer.from(data, 'utf8'));
    const id = await msg.finish();
    return (await h.store.get(id))?.utf8Headers;
  } finally {
    await h.close();
  }
}

test('SMTPUTF8 mail with an ASCII header section: utf8Headers false, even with an 8-bit body', async () => {
  assert.equal(await commit(true, 'Subject: plain\r\nFrom: a@example.com\r\n\r\nGrüße im Text\r\n'), false);
});

test('SMTPUTF8 mail with a UTF-8 header field: utf8Headers true', async () => {
  assert.equal(await commit(true, 'Subject: Grüße\r\n\r\nbody\r\n'), true);
});

test('SMTPUTF8 mail to one UTF-8 recipient: our Received "for" clause counts as a header', async () => {
  assert.equal(await commit(true, 'Subject: plain\r\n\r\nbody\r\n', ['jörg@example.net']), true);
});

test('a header section without an empty line (header only) is checked too', async () => {
  assert.equal(await commit(true, 'Subject: Grüße\r\n'), true);
  assert.equal(await commit(true, 'Subject: plain\r\n'), false);
});

test('mail without SMTPUTF8 is not scanned: utf8Headers unknown', async () => {
  assert.equal(await commit(false, 'Subject: plain\r\n\r\nbody\r\n'), undefined);
});
