/**
 * Our copy of mailauth (src/auth/mailauth.ts): relaxed header canonicalization with WSP = SP / HTAB
 * only (RFC 6376 3.4.2), so a signature over header fields holding the byte 0xA0 verifies; the
 * mailauth copy loaded the ordinary way (the test helper's) still fails it. Also: the verifier's
 * hooks do their work before they return, as the modifier relies on.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { verifyWithMailauth } from '../../helpers/dkim-verify.js';
import { mailauth, parseHeaderSection, relaxedHeaderLine, selfCheck } from '../../../src/auth/mailauth.js';
import { signRelaxed } from '../../helpers/dkim-sign.js';
import { generateKey, recordValue } from '../../../src/dkim/keys.js';
import type { Resolver } from '../../../src/dns/types.js';

const key = generateKey('rsa-sha256', 2048);
const RECORD = recordValue(key.key, 'rsa-sha256');

const signRelaxedHere = (msg: Buffer, names: string[]): Buffer => signRelaxed(msg, { key: key.key, domain: 'nbsp.test', selector: 's1', names });

let published = RECORD;
const resolver: Resolver = {
  resolveMx: async () => [], resolve4: async () => [], resolve6: async () => [],
  resolveTxt: async (name) => { if (name === 's1._domainkey.nbsp.test') return [[published]]; throw Object.assign(new Error('nx'), { code: 'ENOTFOUND' }); },
};

async function verifyOurs(msg: Buffer): Promise<string[]> {
  const ma = mailauth();
  const v = new ma.DkimVerifier({ resolver: async (n: string) => resolver.resolveTxt!(n) });
  const end = msg.indexOf('\r\n\r\n');
  // No awaits between the hooks: the modifier calls them like this, from cleanup's synchronous writes.
  void v.messageHeaders(ma.parseHeaders(msg.subarray(0, end + 4)));
  const body = msg.subarray(end + 4);
  for (let i = 0; i < body.length; i += 7) void v.nextChunk(body.subarray(i, i + 7));
  await v.finalChunk();
  return v.results.map((r) => String(r.status?.result));
}

test('relaxed header canonicalization: only SP and HTAB are whitespace', () => {
  assert.equal(relaxedHeaderLine(Buffer.from('SUBJECT  :\t caf\xe9\xa0 x \xa0\r\n  y \t', 'latin1'), '\r\n').toString('latin1'), 'subject:caf\xe9\xa0 x \xa0 y\r\n');
  assert.equal(relaxedHeaderLine('To: a\x0b b\x0c').toString('latin1'), 'to:a\x0b b\x0c');
  assert.ok(selfCheck());
});

test('header section parsing folds at SP / HTAB lines only', () => {
  const h = parseHeaderSection(Buffer.from('Subject: a\r\n\tb\r\nX-A: 1\r\n\xa0not folded: 2\r\n', 'latin1'));
  assert.deepEqual(h.parsed.map((f) => f.key), ['subject', 'x-a', '\xa0not folded']);
  assert.equal(h.parsed[0]!.line.toString('latin1'), 'Subject: a\r\n\tb');
});

test('a signature over header fields holding 0xA0 verifies with our copy; mailauth as shipped fails it', async () => {
  const msg = Buffer.from(
    'From: "\xd0\xa0\xd0\xbe\xd0\xbc\xd0\xb0" <a@nbsp.test>\r\nSubject: Caf\xe9\xa0au lait \xa0\r\nTo: b@rcpt.test\r\n\r\nHello\r\n', 'latin1');
  const signed = signRelaxedHere(msg, ['from', 'subject', 'to']);
  assert.deepEqual(await verifyOurs(signed), ['pass']);
  const shipped = await verifyWithMailauth(signed, resolver);
  assert.notEqual(shipped[0]?.result, 'pass', 'mailauth fixed the 0xA0 quirk: src/auth/mailauth.ts need not patch it any more');
  // Without the byte both agree.
  const plain = signRelaxedHere(Buffer.from('From: a@nbsp.test\r\nSubject: plain\r\n\r\nHello\r\n', 'latin1'), ['from', 'subject']);
  assert.deepEqual(await verifyOurs(plain), ['pass']);
  assert.equal((await verifyWithMailauth(plain, resolver))[0]?.result, 'pass');
});

test('parsed keys are reused only while the published record is the same', async () => {
  const signed = signRelaxedHere(Buffer.from('From: a@nbsp.test\r\nSubject: keys\r\n\r\nHello\r\n', 'latin1'), ['from', 'subject']);
  assert.deepEqual(await verifyOurs(signed), ['pass']);
  assert.deepEqual(await verifyOurs(signed), ['pass']);
  published = recordValue(generateKey('rsa-sha256', 2048).key, 'rsa-sha256'); // the key was rotated
  try {
    assert.deepEqual(await verifyOurs(signed), ['fail']);
  } finally {
    published = RECORD;
  }
  assert.deepEqual(await verifyOurs(signed), ['pass']);
});
