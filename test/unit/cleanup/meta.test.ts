/**
 * Message metadata in cleanup (issue 7 section 2): X-Postline-Tags / X-Postline-Metadata are read
 * only from authenticated or trusted clients, removed from every message, bounded; `submit` (the
 * API's door) applies the same rules and writes message.received with the metadata.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PostlineError } from '../../../src/core/errors.js';
import { MetadataError, validateMeta } from '../../../src/cleanup/meta.js';
import { withoutFields } from '../../../src/rfc5322/header.js';
import { envelope, harness, session } from './helpers.js';
import { readAll } from '../spool/helpers.js';

const LIMITS = { maxTags: 3, maxTagLength: 10, maxMetadataBytes: 64 };

async function send(h: Awaited<ReturnType<typeof harness>>, data: string, authUser?: string) {
  const msg = await h.cleanup.begin(session({ role: 'submission', ...(authUser ? { authUser } : {}) }), envelope());
  msg.write(Buffer.from(data, 'utf8'));
  const id = await msg.finish();
  return { id, body: (await readAll(h.store.openBody(id))).toString('utf8'), stored: await h.store.get(id) };
}

test('X-Postline-* fields from an authenticated client become metadata and are removed', async () => {
  const h = await harness();
  try {
    const r = await send(h, 'From: a@example.com\r\nX-Postline-Tags: ["welcome","q4"]\r\nSubject: s\r\nX-Postline-Metadata: {"user":"42",\r\n "plan":"pro"}\r\n\r\nbody\r\n', 'alice');
    assert.deepEqual(r.stored?.tags, ['welcome', 'q4']);
    assert.deepEqual(r.stored?.metadata, { user: '42', plan: 'pro' });
    assert.doesNotMatch(r.body, /X-Postline/i);
    assert.match(r.body, /\r\nFrom: a@example.com\r\nSubject: s\r\n/);
    const ev = h.events.find((e) => e.type === 'message.received' && e.queueId === r.id);
    assert.deepEqual(ev?.tags, ['welcome', 'q4']);
    assert.deepEqual(ev?.metadata, { user: '42', plan: 'pro' });
    const list = await send(h, 'X-Postline-Tags: a, b ,c\r\n\r\nx\r\n', 'alice');
    assert.deepEqual(list.stored?.tags, ['a', 'b', 'c'], 'a comma-separated list works too');
  } finally {
    await h.close();
  }
});

test('from an untrusted client the fields are removed but not read', async () => {
  const h = await harness();
  try {
    const r = await send(h, 'X-Postline-Tags: ["spoofed"]\r\nx-postline-metadata: {"a":"b"}\r\nSubject: s\r\n\r\nbody\r\n');
    assert.equal(r.stored?.tags, undefined);
    assert.equal(r.stored?.metadata, undefined);
    assert.doesNotMatch(r.body, /X-Postline/i);
  } finally {
    await h.close();
  }
});

test('malformed X-Postline names (NUL, non-ASCII, no colon) are removed too', async () => {
  const h = await harness();
  try {
    const r = await send(h, 'X-Postline-Tags\0: ["a"]\r\nX-Postline-T\u00e1gs: x\r\nX-Postline-Bare\r\nSubject: s\r\n\r\nbody\r\n');
    assert.doesNotMatch(r.body, /X-Postline/i);
    assert.match(r.body, /\r\nSubject: s\r\n\r\nbody/);
  } finally {
    await h.close();
  }
});

test('bad or oversized metadata from a trusted client is refused with 554 5.6.0 naming the part', async () => {
  const h = await harness(LIMITS);
  try {
    for (const [hdr, path] of [
      ['X-Postline-Metadata: {not json}', /X-Postline-Metadata/],
      ['X-Postline-Metadata: ["a"]', /X-Postline-Metadata/],
      ['X-Postline-Metadata: {"n":1}', /metadata\.n/],
      ['X-Postline-Tags: ["a","b","c","d"]', /tags/],
      ['X-Postline-Tags: ["far-too-long-tag"]', /tags\[0\]/],
      [`X-Postline-Metadata: {"k":"${'v'.repeat(80)}"}`, /metadata/],
    ] as const) {
      await assert.rejects(send(h, `${hdr}\r\n\r\nbody\r\n`, 'alice'), (err: unknown) => {
        assert.ok(err instanceof PostlineError, String(err));
        assert.equal(err.reply.code, 554);
        assert.equal(err.reply.enhanced, '5.6.0');
        assert.match(err.message, path);
        return true;
      });
    }
  } finally {
    await h.close();
  }
});

test('validateMeta: bounds and shapes', () => {
  assert.deepEqual(validateMeta({ tags: ['a', 'a', 'b'] }, LIMITS), { tags: ['a', 'b'] });
  assert.deepEqual(validateMeta({ tags: [], metadata: {} }, LIMITS), {});
  assert.throws(() => validateMeta({ tags: ['a\nb'] }, LIMITS), MetadataError);
  assert.throws(() => validateMeta({ metadata: { '': 'x' } }, LIMITS), MetadataError);
  assert.throws(() => validateMeta({ sendAt: -1 }, LIMITS), MetadataError);
  assert.deepEqual(validateMeta({ sendAt: 5 }, LIMITS), { sendAt: 5 });
});

test('withoutFields drops a field with its continuation lines and keeps every other byte', () => {
  const h = Buffer.from('A: 1\r\nX-Postline-Tags: a,\r\n b\r\nB: 2\r\n\tcont\r\n', 'latin1');
  assert.equal(withoutFields(h, (n) => n.startsWith('x-postline-')).toString('latin1'), 'A: 1\r\nB: 2\r\n\tcont\r\n');
  const same = Buffer.from('A: 1\r\n');
  assert.equal(withoutFields(same, () => false), same);
});

test('submit: one whole message through the same rules, with Received, Date, Message-ID and metadata', async () => {
  const h = await harness();
  try {
    const raw = Buffer.from('From: app@example.com\r\nTo: rcpt@example.net\r\nSubject: hi\r\nX-Postline-Tags: ["ignored"]\r\n\r\nhello\r\n');
    const res = await h.cleanup.submit({
      origin: { kind: 'api', apiKey: 'test-key', clientAddress: '127.0.0.1' }, envelope: envelope(), body: raw,
      meta: { tags: ['api'], metadata: { order: '7' }, sendAt: h.clock.now() + 60_000 },
    });
    const body = (await readAll(h.store.openBody(res.queueId))).toString('latin1');
    assert.match(body, /^Received: from api \(key test-key\)\r\n\tby mx\.postline\.test \(Postline\) with HTTP id /);
    assert.match(body, /\r\nDate: /);
    assert.ok(res.messageId && body.includes(`Message-ID: ${res.messageId}`));
    assert.doesNotMatch(body, /X-Postline/i);
    const q = await h.store.get(res.queueId);
    assert.deepEqual(q?.tags, ['api'], 'the API fields win over headers');
    assert.equal(q?.nextAttemptAt, h.clock.now() + 60_000);
    assert.deepEqual(q?.origin, { kind: 'api', apiKey: 'test-key', clientAddress: '127.0.0.1' });
    const ev = h.events.find((e) => e.type === 'message.received' && e.queueId === res.queueId);
    assert.equal(ev?.origin?.apiKey, 'test-key');
    assert.deepEqual(ev?.metadata, { order: '7' });
    await assert.rejects(h.cleanup.submit({ origin: { kind: 'api' }, envelope: envelope(), body: raw, meta: { tags: [''] } }), MetadataError);
    // A raw submission without fields of its own: its X-Postline-* fields are read (an API key is authenticated).
    const raw2 = await h.cleanup.submit({ origin: { kind: 'api', apiKey: 'k' }, envelope: envelope(), body: raw, meta: { metadata: { a: 'b' } } });
    const q2 = await h.store.get(raw2.queueId);
    assert.deepEqual(q2?.tags, ['ignored'], 'tags from the header when the submission gives none');
    assert.deepEqual(q2?.metadata, { a: 'b' });
    await assert.rejects(h.cleanup.submit({ origin: { kind: 'api' }, envelope: envelope(), body: Buffer.alloc(11 * 1024 * 1024, 0x61) }),
      (e: unknown) => e instanceof PostlineError && e.reply.code === 552);
  } finally {
    await h.close();
  }
});
