/**
 * Tracking and list headers through cleanup into the SQLite store (src/tracking/modifiers.ts in the
 * chain with the DKIM signer): who opts in (API key, sender, per message, X-Postline-Tracking; DSNs
 * and relayed mail never), per-recipient tokens for one recipient and message-level ones for
 * several, List-Unsubscribe / List-Unsubscribe-Post / Feedback-ID added and named in the DKIM h=,
 * and the DKIM body hash over the rewritten body as stored. Then Engagement (engagement.ts) on that
 * store: first and repeat opens, machine flags, clicks to the signed URL only, unsubscribe.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { silentLogger } from '../../../src/core/log.js';
import { ManualClock } from '../../../src/core/clock.js';
import { configSchema, type PostlineConfig } from '../../../src/config/schema.js';
import { Cleanup } from '../../../src/cleanup/cleanup.js';
import { generateKey, publicValueOf } from '../../../src/dkim/keys.js';
import { dkimSigner } from '../../../src/dkim/signer.js';
import { RelaxedBodyHash } from '../../../src/dkim/canon.js';
import { readWhole } from '../../../src/scheduler/body.js';
import { SqliteQueueStore } from '../../../src/spool/sqlite/store.js';
import { trackingFromConfig, type TrackingSetup } from '../../../src/tracking/setup.js';
import { mailtoToken } from '../../../src/tracking/engagement.js';
import { TokenError } from '../../../src/tracking/tokens.js';
import type { StoredEvent } from '../../../src/events/record.js';
import { envelope, session } from '../cleanup/helpers.js';
import { tempDir } from '../spool/helpers.js';

const require = createRequire(import.meta.url);
const libqp = require('libqp') as { decode(s: string): Buffer };

const HTML = '<html><body><p>Hi <a href="https://shop.example/offer?id=7&amp;x=1">offer</a> <a href="mailto:help@app.test">help</a></p></body></html>';
const MIME = [
  'From: News <news@app.test>', 'To: rcpt@example.net', 'Subject: hello', 'MIME-Version: 1.0',
  'Content-Type: multipart/alternative; boundary="b"', '', '--b', 'Content-Type: text/plain; charset=utf-8', '',
  'Offer: https://shop.example/offer?id=7', '--b', 'Content-Type: text/html; charset=utf-8', 'Content-Transfer-Encoding: quoted-printable', '',
  HTML.replace(/=/g, '=3D'), '--b--', '',
].join('\r\n');

interface Rig { store: SqliteQueueStore; cleanup: Cleanup; setup: TrackingSetup; config: PostlineConfig; clock: ManualClock; close(): Promise<void> }

async function rig(over: Record<string, unknown>): Promise<Rig> {
  const { dir, cleanup: rm } = await tempDir('postline-track-');
  const clock = new ManualClock(1_700_000_000_000);
  const config = configSchema.parse({ hostname: 'mx.postline.test', dataDir: dir, http: { address: '127.0.0.1', port: 8025 }, ...over });
  const store = new SqliteQueueStore({ dataDir: dir, minFreeBytes: 0, logger: silentLogger(), clock });
  await store.open();
  const setup = trackingFromConfig(config, store, silentLogger(), clock);
  const { key } = generateKey('ed25519-sha256');
  const dkim = dkimSigner({ keys: [{ domain: 'app.test', selector: 's1', algorithm: 'ed25519-sha256', key, publicValue: publicValueOf(key, 'ed25519-sha256') }], now: () => clock.now() });
  const cleanup = new Cleanup({
    store, logger: silentLogger(), clock, config: { hostname: 'mx.postline.test', limits: { maxMessageSize: 10 << 20, maxReceivedHeaders: 30 } },
    modifiers: () => [dkim, ...setup.factories], isTrusted: () => true,
  });
  return { store, cleanup, setup, config, clock, close: async () => { await store.close(); await rm(); } };
}

async function apiSend(r: Rig, rcpts: string[], meta: Record<string, unknown> = {}, apiKey = 'app'): Promise<{ id: string; body: string }> {
  const done = await r.cleanup.submit({ origin: { kind: 'api', apiKey }, envelope: envelope(rcpts, { mailFrom: 'news@app.test', bodyType: '7BIT' }), body: Buffer.from(MIME), meta });
  return { id: done.queueId, body: (await readWhole(r.store, done.queueId)).toString('latin1') };
}

const htmlOf = (body: string): string => libqp.decode(body.split('Content-Transfer-Encoding: quoted-printable\r\n\r\n')[1]!.split('\r\n--b--')[0]!).toString('utf8');

test('API mail of a listed key: links and pixel per recipient, text/plain untouched, signed over the rewritten body', async () => {
  const r = await rig({ tracking: { enabled: true, apiKeys: ['app'], baseUrl: 'https://t.app.test' } });
  try {
    const { id, body } = await apiSend(r, ['rcpt@example.net']);
    const html = htmlOf(body);
    const click = /href="https:\/\/t\.app\.test\/t\/c\/([A-Za-z0-9_-]+)"/.exec(html);
    assert.ok(click, html);
    assert.deepEqual(r.setup.signer().verify(click[1]!), { kind: 'click', queueId: id, recipient: 'rcpt@example.net', url: 'https://shop.example/offer?id=7&x=1' });
    assert.match(html, /href="mailto:help@app.test"/);
    const pixel = /<img src="https:\/\/t\.app\.test\/t\/o\/([A-Za-z0-9_-]+)" width="1" height="1" alt=""><\/body>/.exec(html);
    assert.ok(pixel);
    assert.equal(r.setup.signer().verify(pixel[1]!, 'open').recipient, 'rcpt@example.net');
    assert.match(body, /\r\n\r\nOffer: https:\/\/shop\.example\/offer\?id=7\r\n--b\r\n/, 'text/plain as it was');
    // The DKIM signature (the sign stage, last) hashed the body as stored: rewritten.
    const h = new RelaxedBodyHash();
    h.update(Buffer.from(body.slice(body.indexOf('\r\n\r\n') + 4), 'latin1'));
    assert.match(body, /^DKIM-Signature:/, 'signed (the signature is prepended at the end of data)');
    assert.equal(/bh=([^;]+);/.exec(body.replace(/\r\n[ \t]+/g, ' '))?.[1]?.replace(/\s+/g, ''), h.digest());
  } finally {
    await r.close();
  }
});

test('opt-in: not listed and not asked is untouched; the per-message field and X-Postline-Tracking turn it on', async () => {
  const r = await rig({ tracking: { enabled: true, baseUrl: 'https://t.app.test' } });
  try {
    const plain = await apiSend(r, ['a@example.net']);
    assert.doesNotMatch(plain.body, /t\.app\.test/);
    const asked = await apiSend(r, ['a@example.net'], { tracking: { opens: true, clicks: false } });
    assert.match(htmlOf(asked.body), /\/t\/o\//);
    assert.doesNotMatch(htmlOf(asked.body), /\/t\/c\//);
    const msg = await r.cleanup.begin(session({ role: 'submission', authUser: 'u' }), envelope(['x@example.net', 'y@example.net'], { mailFrom: 'news@app.test' }));
    msg.write(Buffer.from(MIME.replace('Subject: hello', 'Subject: hello\r\nX-Postline-Tracking: clicks')));
    const id = await msg.finish();
    const body = (await readWhole(r.store, id)).toString('latin1');
    assert.doesNotMatch(body, /X-Postline-Tracking/i, 'the field never leaves');
    const tok = /\/t\/c\/([A-Za-z0-9_-]+)/.exec(htmlOf(body))![1]!;
    assert.equal(r.setup.signer().verify(tok).recipient, '', 'several recipients: a message-level token');
    assert.doesNotMatch(htmlOf(body), /\/t\/o\//);
  } finally {
    await r.close();
  }
});

test('List-Unsubscribe, List-Unsubscribe-Post and Feedback-ID are added and in the DKIM h=; several recipients get no List-Unsubscribe', async () => {
  const r = await rig({
    unsubscribe: { enabled: true, tags: ['newsletter'], baseUrl: 'https://u.app.test', mailtoDomain: 'bounces.app.test' },
    feedbackId: { enabled: true, fields: ['tag:campaign', 'metadata:customer', 'value:news'], senderId: 'postline' },
  });
  try {
    const { id, body } = await apiSend(r, ['rcpt@example.net'], { tags: ['newsletter', 'campaign:spring:24'], metadata: { customer: 'c:42' } });
    const head = body.slice(0, body.indexOf('\r\n\r\n'));
    const lu = /\r\nList-Unsubscribe: <https:\/\/u\.app\.test\/u\/([A-Za-z0-9_-]+)>,\r\n <mailto:(unsubscribe\+[A-Za-z0-9_-]+@bounces\.app\.test)>\r\n/.exec('\r\n' + head);
    assert.ok(lu, head);
    assert.deepEqual(r.setup.signer().verify(lu[1]!, 'unsubscribe'), { kind: 'unsubscribe', queueId: id, recipient: 'rcpt@example.net', scope: 'app.test' });
    assert.equal(mailtoToken(lu[2]!), lu[1]);
    assert.match(head, /\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n/);
    assert.match(head, /\r\nFeedback-ID: spring24:c42:news:postline\r\n/);
    const h = /DKIM-Signature:[^]*?h=([^;]+);/.exec(head.replace(/\r\n\s+/g, ''))![1]!.toLowerCase().split(':');
    for (const f of ['list-unsubscribe', 'list-unsubscribe-post', 'feedback-id']) assert.ok(h.includes(f), `${f} signed (h=${h.join(':')})`);
    const notTagged = await apiSend(r, ['rcpt@example.net']);
    assert.doesNotMatch(notTagged.body, /List-Unsubscribe/);
    const two = await apiSend(r, ['a@example.net', 'b@example.net'], { tags: ['newsletter'] });
    assert.doesNotMatch(two.body, /List-Unsubscribe/, 'no recipient to name');
    assert.match(two.body, /Feedback-ID: ::news:postline/);
    // Generated notices never get them.
    const dsn = await r.cleanup.inject(envelope(['rcpt@example.net'], { mailFrom: '' }), Buffer.from('From: MAILER-DAEMON@mx.postline.test\r\n\r\nx\r\n'), { kind: 'dsn' });
    assert.doesNotMatch((await readWhole(r.store, dsn)).toString('latin1'), /Feedback-ID|List-Unsubscribe/);
  } finally {
    await r.close();
  }
});

async function eventsOf(r: Rig, type: string, n: number): Promise<StoredEvent[]> {
  for (let i = 0; i < 100; i++) {
    const got = await r.store.readEvents({ types: [type], limit: 100 });
    if (got.length >= n) return got;
    await new Promise((res) => setTimeout(res, 50));
  }
  throw new Error(`fewer than ${n} ${type} events`);
}

test('Engagement: first and repeat opens, machine flags, the signed URL only, unsubscribe by token', async () => {
  const r = await rig({ tracking: { enabled: true, apiKeys: ['app'], baseUrl: 'https://t.app.test' }, unsubscribe: { enabled: true, apiKeys: ['app'] } });
  try {
    const { id, body } = await apiSend(r, ['rcpt@example.net'], { tags: ['t1'], metadata: { k: 'v' } });
    const html = htmlOf(body);
    const open = /\/t\/o\/([A-Za-z0-9_-]+)/.exec(html)![1]!;
    const click = /\/t\/c\/([A-Za-z0-9_-]+)/.exec(html)![1]!;
    const browser = { userAgent: 'Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0', clientAddress: '192.0.2.7', method: 'GET' };
    await r.store.appendEvents([{ type: 'recipient.delivered', at: r.clock.now(), queueId: id, recipient: 'rcpt@example.net' }]);
    await eventsOf(r, 'recipient.delivered', 1); // readers see it once durable
    r.clock.advance(500);
    await r.setup.engagement.open(open, browser); // 0.5 s after delivery: a scanner's speed
    r.clock.advance(60_000);
    await r.setup.engagement.open(open, browser);
    await r.setup.engagement.open(open, { ...browser, userAgent: 'Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)' });
    const opens = await eventsOf(r, 'recipient.opened', 3);
    assert.deepEqual(opens.map((e) => [e.first, e.machine, e.machineReason]), [[true, true, 'soon-after-delivery'], [false, false, undefined], [false, true, 'google-image-proxy']]);
    assert.deepEqual([opens[0]!.tags, opens[0]!.metadata, opens[0]!.recipient, opens[0]!.mailFrom], [['t1'], { k: 'v' }, 'rcpt@example.net', 'news@app.test']);
    assert.equal(opens[1]!.userAgent, browser.userAgent);
    assert.equal(opens[1]!.clientAddress, '192.0.2.7');
    assert.equal(await r.setup.engagement.click(click, browser), 'https://shop.example/offer?id=7&x=1');
    const clicks = await eventsOf(r, 'recipient.clicked', 1);
    assert.equal(clicks[0]!.url, 'https://shop.example/offer?id=7&x=1');
    assert.equal(clicks[0]!.first, true);
    const tampered = click.slice(0, 20) + (click[20] === 'A' ? 'B' : 'A') + click.slice(21);
    await assert.rejects(r.setup.engagement.click(tampered, browser), TokenError);
    await assert.rejects(r.setup.engagement.click(open, browser), /not a click token/);
    const lu = /List-Unsubscribe: <https:\/\/t\.app\.test\/u\/([A-Za-z0-9_-]+)>/.exec(body)![1]!;
    r.setup.engagement.checkUnsubscribe(lu);
    await new Promise((res) => setTimeout(res, 700));
    assert.equal((await r.store.readEvents({ types: ['recipient.unsubscribed'], limit: 10 })).length, 0, 'checking records nothing');
    await r.setup.engagement.unsubscribeByToken(lu, 'mailto');
    const un = await eventsOf(r, 'recipient.unsubscribed', 1);
    assert.deepEqual([un[0]!.recipient, un[0]!.scope, un[0]!.source, un[0]!.queueId, un[0]!.tags], ['rcpt@example.net', 'app.test', 'mailto', id, ['t1']]);
  } finally {
    await r.close();
  }
});

test('8-bit SMTP mail: rewritten then stored 7-bit for the signer; one the conversion refuses is rewritten and stored as it came', async () => {
  const r = await rig({ tracking: { enabled: true, senders: ['app.test'], baseUrl: 'https://t.app.test' } });
  try {
    const eight = (partHeader: string) => [
      'From: news@app.test', 'To: x@example.net', 'Subject: 8bit', 'MIME-Version: 1.0', 'Content-Type: multipart/mixed; boundary="m"', '',
      '--m', 'Content-Type: text/html; charset=utf-8', 'Content-Transfer-Encoding: 8bit', '',
      '<p>Grüße <a href="https://shop.example/ä">x</a></p>', '--m', `Content-Type: text/plain; charset=utf-8${partHeader}`, 'Content-Transfer-Encoding: 8bit', '', 'Grüße', '--m--', '',
    ].join('\r\n');
    const send = async (data: string) => {
      const msg = await r.cleanup.begin(session({ role: 'submission', authUser: 'u' }), envelope(['x@example.net'], { mailFrom: 'news@app.test', bodyType: '8BITMIME' }));
      msg.write(Buffer.from(data, 'utf8'));
      const id = await msg.finish();
      return { stored: await r.store.get(id), body: (await readWhole(r.store, id)).toString('latin1') };
    };
    const ok = await send(eight(''));
    assert.equal(ok.stored?.bodyType, '7BIT');
    assert.ok(![...Buffer.from(ok.body, 'latin1')].some((b) => b >= 0x80), 'all 7-bit');
    const html = libqp.decode(ok.body.split('Content-Transfer-Encoding: quoted-printable\r\n\r\n')[1]!.split('\r\n--m')[0]!).toString('utf8');
    const tok = /href="https:\/\/t\.app\.test\/t\/c\/([A-Za-z0-9_-]+)"/.exec(html)![1]!;
    assert.equal(r.setup.signer().verify(tok).url, 'https://shop.example/%C3%A4');
    assert.match(html, /Grüße/);
    const h = new RelaxedBodyHash();
    h.update(Buffer.from(ok.body.slice(ok.body.indexOf('\r\n\r\n') + 4), 'latin1'));
    assert.equal(/bh=([^;]+);/.exec(ok.body.replace(/\r\n[ \t]+/g, ' '))?.[1]?.replace(/\s+/g, ''), h.digest());
    // 8-bit in a part header: no 7-bit form; stored 8-bit, still rewritten and signed over what is stored.
    const kept = await send(eight('; name="Grüße.txt"'));
    assert.equal(kept.stored?.bodyType, '8BITMIME');
    assert.match(kept.body, /t\.app\.test\/t\/c\//);
    assert.ok(kept.body.includes(Buffer.from('name="Grüße.txt"', 'utf8').toString('latin1')), 'the 8-bit part header as it came');
    const h2 = new RelaxedBodyHash();
    h2.update(Buffer.from(kept.body.slice(kept.body.indexOf('\r\n\r\n') + 4), 'latin1'));
    assert.equal(/bh=([^;]+);/.exec(kept.body.replace(/\r\n[ \t]+/g, ' '))?.[1]?.replace(/\s+/g, ''), h2.digest());
  } finally {
    await r.close();
  }
});
