/**
 * HTTP API, sending side, over real HTTP on 127.0.0.1 (Node fetch): POST /api/v1/messages and
 * /api/v1/messages/raw, keys and scopes, sender domains, rate, sizes, free space, submit's
 * refusals, Idempotency-Key. cleanup's submit is a test double (doubles.ts).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PostlineError, StoreError } from '../../../src/core/errors.js';
import { reply } from '../../../src/core/reply.js';
import { MetadataError } from '../../../src/cleanup/meta.js';
import { SqliteApiKeyStore } from '../../../src/http/sqlite-stores.js';
import { startApi, type ApiHarness } from './harness.js';
import { waitFor } from '../../helpers/net.js';

const b64 = (s: string | Buffer): string => Buffer.from(s).toString('base64');
const simple = { from: 'app@example.com', to: ['rcpt@example.net'], subject: 'Hello', text: 'Hi there' };

/** The header section of a message as text (unfolded). */
const headerOf = (body: Buffer): string => body.subarray(0, body.indexOf('\r\n\r\n')).toString('utf8').replace(/\r\n[ \t]+/g, ' ');

describe('POST /api/v1/messages', () => {
  let h: ApiHarness;
  before(async () => { h = await startApi({ config: { limits: { minFreeBytes: 0, maxMessageSize: 200_000, maxRecipients: 5, maxTags: 3, maxMetadataBytes: 100 } } }); });
  after(async () => { await h.close(); });

  it('queues one entry per recipient (bcc not in the header) and answers 202 after every submit', async () => {
    h.sink.submissions.length = 0;
    const sendAt = new Date(Math.floor(Date.now() / 1000) * 1000 + 24 * 3600_000).toISOString();
    const r = await h.call('/api/v1/messages', {
      method: 'POST',
      json: {
        from: { name: 'The App', address: 'app@example.com' },
        to: ['one@example.net', { name: 'Zwei Zoë', address: 'two@example.net' }],
        cc: ['cc@example.org', 'ONE@example.net'],
        bcc: ['hidden@example.org'],
        replyTo: 'replies@example.com',
        subject: 'Grüße',
        text: 'plain',
        html: '<p>html <img src="cid:logo"></p>',
        attachments: [
          { filename: 'logo.png', contentType: 'image/png', content: b64(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 1, 2])), contentId: 'logo' },
          { filename: 'report.txt', content: b64('report body') },
        ],
        headers: { 'X-Campaign': 'spring', 'List-Unsubscribe': '<mailto:u@example.com>' },
        tags: ['welcome', 'v2'],
        metadata: { userId: '42' },
        sendAt,
      },
    });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    assert.deepEqual(r.body.recipients.map((x: { address: string }) => x.address), ['one@example.net', 'two@example.net', 'cc@example.org', 'hidden@example.org']);
    assert.ok(r.body.recipients.every((x: { status: string; queueId: string }) => x.status === 'queued' && /^[0-9A-Z]{18}$/.test(x.queueId)));
    assert.equal(new Set(r.body.recipients.map((x: { queueId: string }) => x.queueId)).size, 4);
    assert.match(r.body.messageId, /^<[^@>]+@api\.postline\.test>$/);
    const subs = h.sink.submissions;
    assert.equal(subs.length, 4);
    for (const s of subs) {
      assert.equal(s.envelope.recipients.length, 1);
      assert.equal(s.envelope.mailFrom, 'app@example.com');
      assert.deepEqual(s.origin, { kind: 'api', apiKey: 'all', clientAddress: '127.0.0.1' });
      assert.deepEqual(s.meta, { tags: ['welcome', 'v2'], metadata: { userId: '42' }, sendAt: Date.parse(sendAt) });
      assert.equal(s.addMissingFields, true);
      assert.equal(s.body, subs[0]!.body, 'one composed body for all');
    }
    const head = headerOf(subs[0]!.body);
    assert.match(head, /^From: The App <app@example\.com>$/m);
    assert.match(head, /^To: one@example\.net, =\?UTF-8\?[BQ]\?.+\?= <two@example\.net>$/m);
    assert.match(head, /^Cc: cc@example\.org, ONE@example\.net$/m);
    assert.match(head, /^Reply-To: replies@example\.com$/m);
    assert.match(head, /^X-Campaign: spring$/m);
    assert.match(head, /^List-Unsubscribe: <mailto:u@example\.com>$/m);
    assert.match(head, new RegExp(`^Message-ID: ${r.body.messageId}$`, 'm'));
    assert.doesNotMatch(head, /hidden@example\.org|^Bcc:/im);
    const text = subs[0]!.body.toString('utf8');
    assert.doesNotMatch(text, /[^\r]\n/, 'a bare LF in the composed message');
    assert.match(text, /Content-ID: <logo>/);
    assert.match(text, /multipart\/related/);
    assert.match(text, /filename=report\.txt/);
    assert.ok(text.includes(b64('report body')));
  });

  it('takes a Message-ID from headers and answers with it', async () => {
    const r = await h.call('/api/v1/messages', { method: 'POST', json: { ...simple, headers: { 'Message-ID': '<mine.1@example.com>' } } });
    assert.equal(r.status, 202);
    assert.equal(r.body.messageId, '<mine.1@example.com>');
  });

  it('answers 400 naming every bad field', async () => {
    const r = await h.call('/api/v1/messages', {
      method: 'POST',
      json: {
        from: 'not an address', to: ['ok@example.net', 'bad@', 42], subject: 'two\r\nlines',
        headers: { 'X-Inject': 'a\r\nBcc: victim@example.com', 'Bad Name': 'x', 'X-Nul': 'a\u0000b', Subject: 'dup', 'X-Ok\nBcc': 'v' },
        attachments: [{ filename: 'a.bin', content: '***not base64***' }],
        tags: ['a', 'b', 'c', 'd'], metadata: { k: 'x'.repeat(200) }, unknown: true,
      },
    });
    assert.equal(r.status, 400);
    assert.equal(r.body.code, 'ERR_API_VALIDATION');
    const paths = r.body.issues.map((i: { path: string }) => i.path);
    for (const p of ['from', 'to.1', 'to.2', 'subject', 'headers.X-Inject', 'headers.Bad Name', 'headers.X-Nul', 'headers.Subject', 'headers.X-Ok\nBcc', 'attachments.0.content', 'tags', 'metadata']) {
      assert.ok(paths.includes(p), `no issue for ${JSON.stringify(p)} in ${JSON.stringify(paths)}`);
    }
    assert.ok(r.body.issues.some((i: { reason: string }) => /unrecognized/i.test(i.reason)), 'unknown field not named');
    assert.ok(r.body.issues.every((i: { in: string; reason: string }) => i.in === 'body' && i.reason.length > 0));
    assert.equal(h.sink.submissions.filter((s) => s.envelope.mailFrom === 'not an address').length, 0);
  });

  it('answers 400 for no recipient, too many, a far sendAt, a bad sendAt, malformed JSON, a non-object', async () => {
    const cases: Array<[unknown, string]> = [
      [{ from: 'a@example.com', subject: 'x' }, 'to'],
      [{ ...simple, to: ['1@x.example', '2@x.example', '3@x.example'], cc: ['4@x.example'], bcc: ['5@x.example', '6@x.example'] }, 'to'],
      [{ ...simple, sendAt: Date.now() + 30 * 24 * 3600_000 }, 'sendAt'],
      [{ ...simple, sendAt: 'tomorrow' }, 'sendAt'],
      [[1, 2], ''],
    ];
    for (const [json, path] of cases) {
      const r = await h.call('/api/v1/messages', { method: 'POST', json });
      assert.equal(r.status, 400, JSON.stringify(json));
      assert.ok(r.body.issues.some((i: { path: string }) => i.path === path), `${JSON.stringify(r.body.issues)} lacks ${path}`);
    }
    const bad = await h.call('/api/v1/messages', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"from": "a@example.com", ' });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.code, 'ERR_API_VALIDATION');
    const proto = await h.call('/api/v1/messages', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"__proto__": {"x": 1}, "from": "a@example.com"}' });
    assert.equal(proto.status, 400);
    const empty = await h.call('/api/v1/messages', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '' });
    assert.equal(empty.status, 400);
  });

  it('answers 415 for a body that is not JSON', async () => {
    const r = await h.call('/api/v1/messages', { method: 'POST', headers: { 'content-type': 'application/xml' }, body: '<a/>' });
    assert.equal(r.status, 415);
    assert.equal(r.body.code, 'ERR_API_MEDIA_TYPE');
    const t = await h.call('/api/v1/messages', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'hello' });
    assert.equal(t.status, 415);
    assert.equal(t.body.code, 'ERR_API_MEDIA_TYPE');
    const latin = await h.call('/api/v1/messages', { method: 'POST', headers: { 'content-type': 'application/json; charset=iso-8859-1' }, body: JSON.stringify(simple) });
    assert.equal(latin.status, 415);
    assert.match(latin.body.message, /charset "iso-8859-1"/);
    const utf8 = await h.call('/api/v1/messages', { method: 'POST', headers: { 'content-type': 'application/json; charset=UTF-8' }, body: JSON.stringify(simple) });
    assert.equal(utf8.status, 202);
  });

  it('answers 413 over the body limit and over the message size', async () => {
    const limit = Math.ceil(200_000 / 3) * 4 + 1024 * 1024;
    const huge = await h.call('/api/v1/messages', { method: 'POST', json: { ...simple, text: 'x'.repeat(limit + 10) } });
    assert.equal(huge.status, 413);
    assert.equal(huge.body.code, 'ERR_API_TOO_LARGE');
    const big = await h.call('/api/v1/messages', { method: 'POST', json: { ...simple, attachments: [{ filename: 'big.bin', content: b64(Buffer.alloc(180_000, 7)) }] } });
    assert.equal(big.status, 413);
    assert.match(big.body.message, /more than the limit of 200000/);
  });

  it('maps submit refusals: 552 -> 413, 452 / 451 -> 503 with Retry-After, 554 5.4.6 -> 422', async () => {
    const cases: Array<[PostlineError, number]> = [
      [new PostlineError('ERR_SIZE', 'too big', { temporary: false, reply: reply(552, '5.3.4', 'Message size exceeds fixed maximum message size') }), 413],
      [new StoreError('disk full', { full: true }), 503],
      [new StoreError('I/O error'), 503],
      [new PostlineError('ERR_LOOP', 'loop', { temporary: false, reply: reply(554, '5.4.6', 'Too many hops') }), 422],
      [new PostlineError('ERR_MODIFIER', 'bad content', { temporary: false, reply: reply(550, '5.6.0', 'bad content') }), 422],
      [new MetadataError('holds a control character', 'tags[1]'), 400],
    ];
    try {
      for (const [err, status] of cases) {
        h.sink.fail = () => err;
        const r = await h.call('/api/v1/messages', { method: 'POST', json: simple });
        assert.equal(r.status, status, err.message);
        assert.equal(r.body.code, err.code);
        if (status === 503) assert.match(r.headers.get('retry-after') ?? '', /^\d+$/);
      }
      // One recipient refused, the other queued: 202 with each one's status.
      h.sink.fail = (s) => (s.envelope.recipients[0]!.address.startsWith('bad') ? new StoreError('disk full', { full: true }) : undefined);
      const r = await h.call('/api/v1/messages', { method: 'POST', json: { ...simple, to: ['good@example.net', 'bad@example.net'] } });
      assert.equal(r.status, 202);
      assert.deepEqual(r.body.recipients.map((x: { status: string }) => x.status), ['queued', 'failed']);
      assert.equal(r.body.recipients[1].error.status, 503);
      // Refusals of one key are coalesced (one event a second): the last one comes with the count.
      const last = await waitFor('the coalesced refusal event', () => h.rejections.find((x) => x.recipient === 'bad@example.net'), 3000);
      assert.match(last.reply, /^503 ERR_STORE_FULL .*\(\d+ refusals? of this key in 1 s\)$/);
    } finally {
      h.sink.fail = undefined;
    }
  });

  it('answers 503 below the free-space reserve', async () => {
    const low = await startApi({ config: { limits: { minFreeBytes: 1000 } } });
    try {
      low.store.free = 999;
      const r = await low.call('/api/v1/messages', { method: 'POST', json: simple });
      assert.equal(r.status, 503);
      assert.equal(r.body.code, 'ERR_API_UNAVAILABLE');
      assert.ok(Number(r.headers.get('retry-after')) > 0);
      assert.equal(low.sink.submissions.length, 0);
      // The reserve plus one copy per recipient must be free.
      low.store.free = 1000 + 'Hi there'.length * 2;
      const two = await low.call('/api/v1/messages', { method: 'POST', json: { ...simple, to: ['a@example.net', 'b@example.net', 'c@example.net'] } });
      assert.equal(two.status, 503);
      low.store.free = 1000 + 10_000;
      assert.equal((await low.call('/api/v1/messages', { method: 'POST', json: simple })).status, 202);
    } finally {
      await low.close();
    }
  });
});

describe('API keys, scopes, sender domains, rate', () => {
  let h: ApiHarness;
  before(async () => { h = await startApi(); });
  after(async () => { await h.close(); });

  it('401 without a key, with a malformed or unknown one, and with Basic auth', async () => {
    for (const headers of [{} as Record<string, string>, { authorization: 'Bearer nope' }, { authorization: 'Bearer pl_aaaaaaaaaa_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' }, { authorization: `Basic ${b64('a:b')}` }]) {
      const r = await h.call('/api/v1/messages', { method: 'POST', key: 'none', headers, json: simple });
      assert.equal(r.status, 401);
      assert.equal(r.body.code, 'ERR_API_UNAUTHORIZED');
      assert.match(r.headers.get('www-authenticate') ?? '', /^Bearer/);
    }
    // 401 comes before the schema: an unknown caller learns nothing about the body.
    assert.equal((await h.call('/api/v1/messages', { method: 'POST', key: 'none', json: { nonsense: 1 } })).status, 401);
  });

  it('403 outside the scope; admin implies read', async () => {
    assert.equal((await h.call('/api/v1/messages', { method: 'POST', key: 'read', json: simple })).status, 403);
    assert.equal((await h.call('/api/v1/messages/raw', { method: 'POST', key: 'admin', json: { mailFrom: 'a@example.com', rcptTo: ['b@example.net'], raw: b64('Subject: x\r\n\r\nbody\r\n') } })).status, 403);
    assert.equal((await h.call('/api/v1/events', { key: 'send' })).status, 403);
    assert.equal((await h.call('/api/v1/queue', { key: 'send' })).status, 403);
    assert.equal((await h.call('/api/v1/queue/0000000000AAAAAAAA/hold', { method: 'POST', key: 'read' })).status, 403);
    assert.equal((await h.call('/api/v1/events', { key: 'read' })).status, 200);
    assert.equal((await h.call('/api/v1/events', { key: 'admin' })).status, 200);
    const r = await h.call('/api/v1/messages', { method: 'POST', key: 'send', json: simple });
    assert.equal(r.status, 202);
    assert.equal(h.sink.submissions.at(-1)!.origin.apiKey, 'send');
  });

  it('a key revoked by another connection (as the CLI does) fails within 2 s', async () => {
    const token = await h.addKey({ name: 'to-revoke', scopes: ['read'] });
    assert.equal((await h.call('/api/v1/events', { key: `raw:${token}` })).status, 200);
    const cli = SqliteApiKeyStore.open(h.config.dataDir, { create: false });
    try {
      assert.equal(await cli.revoke('to-revoke'), true);
    } finally {
      await cli.close();
    }
    const t0 = Date.now();
    let status = 0;
    for (let i = 0; i < 40 && Date.now() - t0 < 2000; i++) {
      status = (await h.call('/api/v1/events', { key: `raw:${token}` })).status;
      if (status === 401) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(status, 401);
  });

  it('403 for a sender domain the key may not use', async () => {
    const token = await h.addKey({ name: 'shop', scopes: ['send'], domains: ['shop.example'] });
    const ok = await h.call('/api/v1/messages', { method: 'POST', key: `raw:${token}`, json: { ...simple, from: 'orders@Shop.Example' } });
    assert.equal(ok.status, 202);
    const no = await h.call('/api/v1/messages', { method: 'POST', key: `raw:${token}`, json: { ...simple, from: 'ceo@bank.example' } });
    assert.equal(no.status, 403);
    assert.match(no.body.message, /may not send as ceo@bank\.example/);
    assert.deepEqual(h.rejections.at(-1), {
      origin: { kind: 'api', apiKey: 'shop', clientAddress: '127.0.0.1' }, mailFrom: 'ceo@bank.example',
      reply: '403 ERR_API_FORBIDDEN this API key may not send as ceo@bank.example (its sender domains: shop.example)',
    });
    const sub = await h.call('/api/v1/messages', { method: 'POST', key: `raw:${token}`, json: { ...simple, from: 'x@evil.shop.example' } });
    assert.equal(sub.status, 403);
    const nullSender = await h.call('/api/v1/messages/raw', { method: 'POST', key: `raw:${token}`, json: { mailFrom: '', rcptTo: ['b@example.net'], raw: b64('Subject: x\r\n\r\nbody\r\n') } });
    assert.equal(nullSender.status, 403);
  });

  it('429 with Retry-After over the key rate (messages per minute, per recipient)', async () => {
    const token = await h.addKey({ name: 'slow', scopes: ['send'], ratePerMinute: 3 });
    const send = (to: string[]) => h.call('/api/v1/messages', { method: 'POST', key: `raw:${token}`, json: { ...simple, to } });
    assert.equal((await send(['a@example.net', 'b@example.net'])).status, 202);
    assert.equal((await send(['c@example.net'])).status, 202);
    const r = await send(['d@example.net']);
    assert.equal(r.status, 429);
    assert.equal(r.body.code, 'ERR_API_RATE_LIMITED');
    const wait = Number(r.headers.get('retry-after'));
    assert.ok(wait >= 1 && wait <= 20, `Retry-After ${wait}`);
    const many = await send(['1@example.net', '2@example.net', '3@example.net', '4@example.net']);
    assert.equal(many.status, 429);
    await waitFor('the 429 event', () => h.rejections.some((x) => x.origin.apiKey === 'slow' && /^429 ERR_API_RATE_LIMITED /.test(x.reply)), 3000);
    // A schema failure is not a refusal worth an event.
    const n = h.rejections.length;
    assert.equal((await h.call('/api/v1/messages', { method: 'POST', json: { from: 'x' } })).status, 400);
    assert.equal(h.rejections.length, n);
  });
});

describe('POST /api/v1/messages/raw', () => {
  let h: ApiHarness;
  before(async () => { h = await startApi(); });
  after(async () => { await h.close(); });

  it('queues the message as given, bare LF made CRLF, one entry per recipient', async () => {
    const raw = 'From: a@example.com\nTo: b@example.net\nSubject: raw\nMessage-ID: <raw.1@example.com>\n\nline 1\n.line 2\r\nlast';
    const r = await h.call('/api/v1/messages/raw', { method: 'POST', json: { mailFrom: 'a@example.com', rcptTo: ['b@example.net', 'c@example.net', 'B@example.net'], raw: b64(raw), tags: ['raw'] } });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    assert.equal(r.body.recipients.length, 2);
    assert.equal(r.body.messageId, '<raw.1@example.com>');
    const s = h.sink.submissions.at(-1)!;
    assert.equal(s.body.toString(), 'From: a@example.com\r\nTo: b@example.net\r\nSubject: raw\r\nMessage-ID: <raw.1@example.com>\r\n\r\nline 1\r\n.line 2\r\nlast\r\n');
    assert.deepEqual(s.meta, { tags: ['raw'] });
    assert.equal(s.envelope.bodyType, '7BIT');
  });

  it('marks 8-bit bodies and UTF-8 headers', async () => {
    const r = await h.call('/api/v1/messages/raw', { method: 'POST', json: { mailFrom: 'a@example.com', rcptTo: ['b@example.net'], raw: b64('Subject: Grüße\r\n\r\nä\r\n') } });
    assert.equal(r.status, 202);
    const s = h.sink.submissions.at(-1)!;
    assert.equal(s.envelope.bodyType, '8BITMIME');
    assert.equal(s.envelope.smtputf8, true);
  });

  it('400 for bad base64, a bare CR, no header, a bad address, no recipients', async () => {
    const cases: Array<[unknown, string]> = [
      [{ mailFrom: 'a@example.com', rcptTo: ['b@example.net'], raw: 'not base64!' }, 'raw'],
      [{ mailFrom: 'a@example.com', rcptTo: ['b@example.net'], raw: b64('Subject: x\r\n\r\nbare\rCR\r\n') }, 'raw'],
      [{ mailFrom: 'a@example.com', rcptTo: ['b@example.net'], raw: b64('just text\r\n') }, 'raw'],
      [{ mailFrom: 'a@@example.com', rcptTo: ['b@example.net'], raw: b64('Subject: x\r\n\r\n') }, 'mailFrom'],
      [{ mailFrom: 'a@example.com', rcptTo: [], raw: b64('Subject: x\r\n\r\n') }, 'rcptTo'],
      [{ mailFrom: 'a@example.com', rcptTo: ['b@example.net'] }, 'raw'],
    ];
    for (const [json, path] of cases) {
      const r = await h.call('/api/v1/messages/raw', { method: 'POST', json });
      assert.equal(r.status, 400, JSON.stringify(json));
      assert.ok(r.body.issues.some((i: { path: string }) => i.path === path), `${JSON.stringify(r.body.issues)} lacks ${path}`);
    }
  });
});

describe('Idempotency-Key', () => {
  let h: ApiHarness;
  before(async () => { h = await startApi(); });
  after(async () => { await h.close(); });

  it('the same key and body give the first answer again and queue nothing new; another body 409', async () => {
    const before = h.sink.submissions.length;
    const first = await h.call('/api/v1/messages', { method: 'POST', headers: { 'idempotency-key': 'order-1' }, json: simple });
    assert.equal(first.status, 202);
    const again = await h.call('/api/v1/messages', { method: 'POST', headers: { 'idempotency-key': 'order-1' }, json: { text: simple.text, subject: simple.subject, to: simple.to, from: simple.from } });
    assert.equal(again.status, 202);
    assert.deepEqual(again.body, first.body);
    assert.equal(again.headers.get('idempotent-replayed'), 'true');
    assert.equal(h.sink.submissions.length, before + 1);
    const other = await h.call('/api/v1/messages', { method: 'POST', headers: { 'idempotency-key': 'order-1' }, json: { ...simple, subject: 'changed' } });
    assert.equal(other.status, 409);
    assert.equal(other.body.code, 'ERR_API_IDEMPOTENCY');
    const raw = await h.call('/api/v1/messages/raw', { method: 'POST', headers: { 'idempotency-key': 'order-1' }, json: { mailFrom: 'a@example.com', rcptTo: ['b@example.net'], raw: b64('Subject: x\r\n\r\n') } });
    assert.equal(raw.status, 409, 'same key on another route');
    // Keys are per API key: another key's "order-1" is its own.
    const mine = await h.call('/api/v1/messages', { method: 'POST', key: 'send', headers: { 'idempotency-key': 'order-1' }, json: simple });
    assert.equal(mine.status, 202);
    assert.notDeepEqual(mine.body, first.body);
    assert.equal(h.sink.submissions.length, before + 2);
  });

  it('a refused request is not kept; a bad key header is 400; concurrent repeats run once', async () => {
    h.sink.fail = () => new StoreError('disk full', { full: true });
    assert.equal((await h.call('/api/v1/messages', { method: 'POST', headers: { 'idempotency-key': 'retry-me' }, json: simple })).status, 503);
    h.sink.fail = undefined;
    assert.equal((await h.call('/api/v1/messages', { method: 'POST', headers: { 'idempotency-key': 'retry-me' }, json: simple })).status, 202);
    const bad = await h.call('/api/v1/messages', { method: 'POST', headers: { 'idempotency-key': 'has space' }, json: simple });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.issues[0].path, 'idempotency-key');

    h.sink.delayMs = 300;
    try {
      const before = h.sink.submissions.length;
      const [a, b] = await Promise.all([1, 2].map(() => h.call('/api/v1/messages', { method: 'POST', headers: { 'idempotency-key': 'twice' }, json: simple })));
      assert.deepEqual([a!.status, b!.status].sort(), [202, 409]);
      assert.equal(h.sink.submissions.length, before + 1);
      const later = await h.call('/api/v1/messages', { method: 'POST', headers: { 'idempotency-key': 'twice' }, json: simple });
      assert.equal(later.status, 202);
      assert.equal(h.sink.submissions.length, before + 1);
    } finally {
      h.sink.delayMs = 0;
    }
  });

  it('answers are kept across a restart of the server (SQLite) and expire after the TTL', async () => {
    const r1 = await h.call('/api/v1/messages', { method: 'POST', headers: { 'idempotency-key': 'persist' }, json: simple });
    assert.equal(r1.status, 202);
    const kept = await h.stores.idempotency.get('all', 'persist', 0);
    assert.ok(kept);
    assert.deepEqual(JSON.parse(kept.body), r1.body);
    assert.equal(await h.stores.idempotency.get('all', 'persist', Date.now() + 1), undefined);
  });
});

describe('Idempotency-Key pending records', () => {
  let h: ApiHarness;
  before(async () => { h = await startApi(); });
  after(async () => { await h.close(); });

  it('writes a pending record before submitting, with the queue IDs as they commit, and the answer at the end', async () => {
    h.sink.delayMs = 300;
    try {
      const running = h.call('/api/v1/messages', { method: 'POST', headers: { 'idempotency-key': 'slow-1' }, json: { ...simple, to: ['a@example.net', 'b@example.net'] } });
      const pending = await waitFor('the pending record', () => h.stores.idempotency.get('all', 'slow-1', 0), 3000);
      assert.equal(pending.status, 0);
      const p = JSON.parse(pending.body);
      assert.equal(p.pending.pid, process.pid);
      assert.deepEqual(p.queued, []);
      const dup = await h.call('/api/v1/messages', { method: 'POST', headers: { 'idempotency-key': 'slow-1' }, json: { ...simple, to: ['a@example.net', 'b@example.net'] } });
      assert.equal(dup.status, 409);
      assert.match(dup.body.message, /in progress/);
      const r = await running;
      assert.equal(r.status, 202);
      const final = await h.stores.idempotency.get('all', 'slow-1', 0);
      assert.equal(final!.status, 202);
      assert.deepEqual(JSON.parse(final!.body), r.body);
    } finally { h.sink.delayMs = 0; }
  });

  it('answers a retry that finds the pending record of a gone process with 409 and the queue IDs recorded, and queues nothing', async () => {
    // A pending record as a process killed after its first commit leaves it (same request hash: same path and body).
    h.sink.delayMs = 200;
    const body = { ...simple, to: ['x@example.net', 'y@example.net'] };
    const first = h.call('/api/v1/messages', { method: 'POST', headers: { 'idempotency-key': 'probe' }, json: body });
    const probe = await waitFor('the pending record', () => h.stores.idempotency.get('all', 'probe', 0), 3000);
    await first;
    h.sink.delayMs = 0;
    const { spawnSync } = await import('node:child_process');
    const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString();
    await h.stores.idempotency.put('all', 'crashed', {
      requestHash: probe.requestHash, status: 0, createdAt: Date.now(),
      body: JSON.stringify({ pending: { pid: Number(gone), instance: 'gone' }, queued: [{ address: 'x@example.net', queueId: 'AAAAAAAAAAAAAAAAAA' }] }),
    });
    const n = h.sink.submissions.length;
    const retry = await h.call('/api/v1/messages', { method: 'POST', headers: { 'idempotency-key': 'crashed' }, json: body });
    assert.equal(retry.status, 409);
    assert.equal(retry.body.code, 'ERR_API_IDEMPOTENCY');
    assert.match(retry.body.message, /outcome is unknown/);
    assert.match(retry.body.message, /GET \/api\/v1\/events\?type=message\.received&since=\d+/);
    assert.deepEqual(retry.body.queued, [{ address: 'x@example.net', queueId: 'AAAAAAAAAAAAAAAAAA' }]);
    assert.equal(h.sink.submissions.length, n, 'queued again');
    // A live other process within the grace: in progress.
    await h.stores.idempotency.put('all', 'elsewhere', {
      requestHash: probe.requestHash, status: 0, createdAt: Date.now(),
      body: JSON.stringify({ pending: { pid: process.ppid, instance: 'other' }, queued: [] }),
    });
    const busy = await h.call('/api/v1/messages', { method: 'POST', headers: { 'idempotency-key': 'elsewhere' }, json: body });
    assert.equal(busy.status, 409);
    assert.match(busy.body.message, /in progress/);
    // A refusal that queued nothing removes the pending record: the retry runs afresh.
    assert.equal((await h.call('/api/v1/messages', { method: 'POST', key: 'read', headers: { 'idempotency-key': 'r' }, json: body })).status, 403);
    h.sink.fail = () => new StoreError('disk full', { full: true });
    assert.equal((await h.call('/api/v1/messages', { method: 'POST', headers: { 'idempotency-key': 'refused' }, json: body })).status, 503);
    h.sink.fail = undefined;
    assert.equal(await h.stores.idempotency.get('all', 'refused', 0), undefined);
  });
});

describe('per-request limits, rate spending, refusal events, address forms', () => {
  let h: ApiHarness;
  before(async () => {
    h = await startApi({ config: { limits: { minFreeBytes: 0, maxRecipients: 100 }, http: { maxRecipientsPerRequest: 4, maxBytesPerRequest: 10_000 } } });
  });
  after(async () => { await h.close(); });
  const rcpts = (n: number) => Array.from({ length: n }, (_, i) => `r${i}@example.net`);

  it('400 over http.maxRecipientsPerRequest, 413 over http.maxBytesPerRequest (bytes x recipients), before composing', async () => {
    h.sink.submissions.length = 0;
    const many = await h.call('/api/v1/messages', { method: 'POST', json: { ...simple, to: rcpts(5) } });
    assert.equal(many.status, 400);
    assert.match(many.body.message, /5 recipients, more than 4 .*http\.maxRecipientsPerRequest/);
    const raw = await h.call('/api/v1/messages/raw', { method: 'POST', json: { mailFrom: 'a@example.com', rcptTo: rcpts(5), raw: b64('Subject: x\r\n\r\nx\r\n') } });
    assert.equal(raw.status, 400);
    const heavy = await h.call('/api/v1/messages', { method: 'POST', json: { ...simple, to: rcpts(4), text: 'x'.repeat(3000) } });
    assert.equal(heavy.status, 413);
    assert.match(heavy.body.message, /http\.maxBytesPerRequest/);
    assert.equal((await h.call('/api/v1/messages', { method: 'POST', json: { ...simple, to: rcpts(1), text: 'x'.repeat(3000) } })).status, 202);
    assert.equal(h.sink.submissions.length, 1);
  });

  it('503 when the free space cannot hold one copy per recipient', async () => {
    h.store.free = 2500;
    try {
      const r = await h.call('/api/v1/messages', { method: 'POST', json: { ...simple, to: rcpts(3), text: 'x'.repeat(1000) } });
      assert.equal(r.status, 503);
      assert.equal(r.body.code, 'ERR_API_UNAVAILABLE');
    } finally { h.store.free = 10 * 1024 ** 3; }
  });

  it('spends rate tokens only on requests that pass validation and composing, and refunds recipients not queued', async () => {
    const token = await h.addKey({ name: 'spend', scopes: ['send'], ratePerMinute: 2 });
    const send = (json: unknown) => h.call('/api/v1/messages', { method: 'POST', key: `raw:${token}`, json });
    for (let i = 0; i < 5; i++) {
      assert.equal((await send({ ...simple, from: 'x' })).status, 400);
      assert.equal((await send({ ...simple, to: rcpts(1), text: 'x'.repeat(20_000) })).status, 413);
    }
    h.sink.fail = () => new StoreError('disk full', { full: true });
    assert.equal((await send({ ...simple, to: rcpts(2) })).status, 503);
    h.sink.fail = undefined;
    assert.equal((await send({ ...simple, to: rcpts(2) })).status, 202, 'refused requests spent tokens');
    assert.equal((await send(simple)).status, 429);
  });

  it('coalesces message.rejected to at most one event per key per second, with the count', async () => {
    const token = await h.addKey({ name: 'flood', scopes: ['send'], ratePerMinute: 1 });
    const send = () => h.call('/api/v1/messages', { method: 'POST', key: `raw:${token}`, json: simple });
    assert.equal((await send()).status, 202);
    const t0 = Date.now();
    let refused = 0;
    for (let i = 0; i < 40 && Date.now() - t0 < 800; i++) if ((await send()).status === 429) refused++;
    assert.ok(refused >= 5, `only ${refused} requests in 800 ms`);
    const mine = () => h.rejections.filter((x) => x.origin.apiKey === 'flood');
    assert.equal(mine().length, 1, 'one event at once');
    const second = await waitFor('the coalesced event', () => (mine().length === 2 ? mine()[1] : undefined), 3000);
    assert.match(second.reply, new RegExp(`\\(${refused - 1} refusals of this key in 1 s\\)$`));
  });

  it('accepts "Name <addr>" strings and refuses control characters, bidi overrides and source routes', async () => {
    h.sink.submissions.length = 0;
    const r = await h.call('/api/v1/messages', { method: 'POST', json: { from: '"Doe, Jane" <jane@example.com>', to: ['Bob <bob@example.net>', 'carol@example.net'], replyTo: 'Help <help@example.com>', text: 'x' } });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    assert.deepEqual(r.body.recipients.map((x: { address: string }) => x.address), ['bob@example.net', 'carol@example.net']);
    const sub = h.sink.submissions.at(-1)!;
    assert.equal(sub.envelope.mailFrom, 'jane@example.com');
    const head = headerOf(sub.body);
    assert.match(head, /^From: "Doe, Jane" <jane@example\.com>$/m);
    assert.match(head, /^To: Bob <bob@example\.net>, carol@example\.net$/m);
    assert.match(head, /^Reply-To: Help <help@example\.com>$/m);

    const bad = async (addr: string, re: RegExp) => {
      const b = await h.call('/api/v1/messages', { method: 'POST', json: { ...simple, to: [addr] } });
      assert.equal(b.status, 400, addr);
      assert.equal(b.body.issues[0].path, 'to.0');
      assert.match(b.body.message, re, addr);
    };
    await bad('not an address', /"local@domain", "Name <local@domain>" or \{"name"/);
    await bad('a@b.example, c@d.example', /Name <local@domain>/);
    await bad('evil\u202e@example.net', /bidi/);
    await bad('Eve <ev\u2066il@example.net>', /bidi/);
    await bad('a\u0085b@example.net', /control/);
    await bad('@relay.example,@b.example:user@example.net', /source routes/);
    await bad('Eve <@relay.example:user@example.net>', /source routes/);
    const obj = await h.call('/api/v1/messages', { method: 'POST', json: { ...simple, to: [{ name: 'x', address: 'u\u2028@example.net' }] } });
    assert.equal(obj.status, 400);
    const rawBad = await h.call('/api/v1/messages/raw', { method: 'POST', json: { mailFrom: '@a.example:u@example.com', rcptTo: ['b@example.net'], raw: b64('Subject: x\r\n\r\nx\r\n') } });
    assert.equal(rawBad.status, 400);
    assert.match(rawBad.body.message, /source routes/);
  });

  it('400 for a message without text, html or an attachment', async () => {
    const r = await h.call('/api/v1/messages', { method: 'POST', json: { from: 'a@example.com', to: ['b@example.net'], subject: 'empty' } });
    assert.equal(r.status, 400);
    assert.match(r.body.message, /give text, html or an attachment/);
    assert.equal((await h.call('/api/v1/messages', { method: 'POST', json: { from: 'a@example.com', to: ['b@example.net'], html: '<p>x</p>' } })).status, 202);
  });
});
