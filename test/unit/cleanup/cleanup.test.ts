import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { PostlineError } from '../../../src/core/errors.js';
import type { IncomingMessage } from '../../../src/core/session.js';
import { buildReceived, receivedProtocol, addressLiteral } from '../../../src/cleanup/received.js';
import { HEADER_LIMIT } from '../../../src/cleanup/incoming.js';
import { unfold } from '../../../src/rfc5322/header.js';
import { captureLogger, readAll } from '../spool/helpers.js';
import { CORPUS, corpusMessages, envelope, harness, session, type Harness } from './helpers.js';

/** Feeds `data` in chunks of the given sizes (cycled), honouring backpressure. */
async function feed(msg: IncomingMessage, data: Buffer, sizes: number[] = [4096]): Promise<void> {
  let off = 0;
  for (let i = 0; off < data.length; i++) {
    const n = sizes[i % sizes.length];
    if (!msg.write(data.subarray(off, off + n))) await msg.drain();
    off += n;
  }
}

async function stored(h: Harness, id: string): Promise<Buffer> {
  return readAll(h.store.openBody(id));
}

/** Splits a stored message into our Received field (unfolded) and the rest. */
function splitReceived(b: Buffer): { received: string; rest: Buffer } {
  const s = b.toString('latin1');
  const m = /^Received:(?:[^\r]*\r\n[ \t])*[^\r]*\r\n/.exec(s);
  assert.ok(m, 'starts with a Received field');
  return { received: unfold(m[0].slice(0, -2)), rest: b.subarray(Buffer.byteLength(m[0], 'latin1')) };
}

async function assertStoreEmpty(h: Harness): Promise<void> {
  assert.deepEqual(await h.store.loadAll(), []);
  assert.deepEqual(await readdir(join(h.dir, 'spool', 'tmp')), []);
}

test('Received field: one recipient gets a for-clause, folded lines under 78', async () => {
  const h = await harness();
  try {
    const msg = await h.cleanup.begin(session(), envelope(['only@example.net']));
    await feed(msg, Buffer.from('Subject: t\r\n\r\nhi\r\n'));
    const id = await msg.finish();
    assert.equal(id, msg.queueId);
    const raw = (await stored(h, id)).toString('latin1');
    const field = raw.slice(0, raw.indexOf('Subject:'));
    for (const line of field.split('\r\n')) assert.ok(line.length <= 78, line);
    const { received } = splitReceived(Buffer.from(raw, 'latin1'));
    assert.equal(received,
      `Received: from client.example.org ([192.0.2.10])\tby mx.postline.test (Postline) with ESMTP id ${id}\tfor <only@example.net>; Tue, 14 Nov 2023 22:13:20 +0000`);
  } finally {
    await h.close();
  }
});

test('Received field: several recipients, no for-clause; TLS/AUTH/UTF8 protocol types', async () => {
  const h = await harness();
  try {
    const s = session({ tls: { protocol: 'TLSv1.3', cipher: 'TLS_AES_128_GCM_SHA256' }, authUser: 'alice', role: 'submission' });
    const msg = await h.cleanup.begin(s, envelope(['a@example.net', 'b@example.net']));
    await feed(msg, Buffer.from('Date: x\r\nMessage-ID: <m@x>\r\n\r\nhi\r\n'));
    const id = await msg.finish();
    const { received } = splitReceived(await stored(h, id));
    assert.match(received, new RegExp(`with ESMTPSA id ${id}\ttls TLS_AES_128_GCM_SHA256; Tue, 14 Nov 2023 22:13:20 \\+0000$`));
    assert.ok(!received.includes(' for '));
  } finally {
    await h.close();
  }
});

test('Received field under TLS: "(using VERSION with cipher NAME (bits))" before by, and the RFC 8314 tls clause', async () => {
  const tls = { protocol: 'TLSv1.2', cipher: 'ECDHE-RSA-AES256-GCM-SHA384', standardName: 'TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384' };
  const h = await harness();
  try {
    const msg = await h.cleanup.begin(session({ tls }), envelope(['only@example.net']));
    await feed(msg, Buffer.from('Subject: t\r\n\r\nhi\r\n'));
    const id = await msg.finish();
    const raw = (await stored(h, id)).toString('latin1');
    for (const line of raw.slice(0, raw.indexOf('Subject:')).split('\r\n')) assert.ok(line.length <= 78, line);
    assert.equal(splitReceived(Buffer.from(raw, 'latin1')).received,
      'Received: from client.example.org ([192.0.2.10])\t(using TLSv1.2 with cipher ECDHE-RSA-AES256-GCM-SHA384 (256/256 bits))'
      + `\tby mx.postline.test (Postline) with ESMTPS id ${id}\tfor <only@example.net>\ttls TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384; Tue, 14 Nov 2023 22:13:20 +0000`);
  } finally {
    await h.close();
  }
  const off = await harness({}, undefined, { tlsDetails: false });
  try {
    const msg = await off.cleanup.begin(session({ tls }), envelope(['only@example.net']));
    await feed(msg, Buffer.from('Subject: t\r\n\r\nhi\r\n'));
    const id = await msg.finish();
    assert.equal(splitReceived(await stored(off, id)).received,
      `Received: from client.example.org ([192.0.2.10])\tby mx.postline.test (Postline) with ESMTPS id ${id}\tfor <only@example.net>; Tue, 14 Nov 2023 22:13:20 +0000`);
  } finally {
    await off.close();
  }
  const p = (esmtp: boolean, tls: boolean, authenticated: boolean, smtputf8: boolean) => receivedProtocol({ esmtp, tls, authenticated, smtputf8 });
  assert.equal(p(false, false, false, false), 'SMTP');
  assert.equal(p(true, false, false, false), 'ESMTP');
  assert.equal(p(true, true, false, false), 'ESMTPS');
  assert.equal(p(true, false, true, false), 'ESMTPA');
  assert.equal(p(true, true, false, true), 'UTF8SMTPS');
  assert.equal(p(true, true, true, true), 'UTF8SMTPSA');
  assert.equal(addressLiteral('2001:db8::1'), '[IPv6:2001:db8::1]');
  assert.equal(addressLiteral('::ffff:192.0.2.1'), '[192.0.2.1]');
  assert.equal(buildReceived({ hostname: 'h.test', queueId: 'Q', date: 0 }), 'Received: by h.test (Postline) id Q; Thu, 1 Jan 1970 00:00:00 +0000\r\n');
  assert.match(buildReceived({ hostname: 'h', queueId: 'Q', date: 0, clientAddress: '192.0.2.1', heloName: 'bad (helo);x' }), /^Received: from bad\?\?helo\?\?x \(\[192\.0\.2\.1\]\)/);
});

test('mx: corpus messages are stored byte for byte after the Received field', async (t) => {
  const msgs = [...corpusMessages('plain'), ...corpusMessages('8bit'), ...corpusMessages('longlines'), ...corpusMessages('eol', 3)];
  if (!msgs.length) {
    t.diagnostic(`corpus not found at ${CORPUS}; checked only synthetic messages`);
  }
  msgs.push({ name: 'no-separator', data: Buffer.from('Subject: no body\r\nX-A: b\r\nlast line without CRLF') });
  msgs.push({ name: 'empty-header', data: Buffer.from('\r\njust a body\r\n') });
  msgs.push({ name: 'no-date-mx', data: Buffer.from('Subject: s\r\n\r\nbody\r\n') });
  const h = await harness();
  try {
    for (const [i, m] of msgs.entries()) {
      const s = i % 2 ? session({ authUser: 'bob' }) : session(); // auth on mx changes nothing
      const msg = await h.cleanup.begin(s, envelope());
      await feed(msg, m.data, [1, 7, 3000, 2, 65536]);
      const id = await msg.finish();
      const { rest } = splitReceived(await stored(h, id));
      assert.ok(rest.equals(m.data), `${m.name} changed`);
    }
  } finally {
    await h.close();
  }
});

test('submission with AUTH: missing Date and Message-ID added before the empty line', async () => {
  const h = await harness();
  try {
    const s = session({ role: 'submission', authUser: 'alice' });
    const msg = await h.cleanup.begin(s, envelope());
    await feed(msg, Buffer.from('From: a@example.com\r\nSubject: s\r\n\r\nbody\r\n\r\nmore\r\n'), [5]);
    const id = await msg.finish();
    const { rest } = splitReceived(await stored(h, id));
    const m = /^From: a@example\.com\r\nSubject: s\r\nDate: Tue, 14 Nov 2023 22:13:20 \+0000\r\nMessage-ID: (<[^>]+>)\r\n\r\nbody\r\n\r\nmore\r\n$/.exec(rest.toString('latin1'));
    assert.ok(m, rest.toString('latin1'));
    assert.ok(m[1].startsWith(`<${id}.`) && m[1].endsWith('@mx.postline.test>'));
    const ev = h.events.find((e) => e.type === 'message.received');
    assert.ok(ev && ev.type === 'message.received');
    assert.equal(ev.messageId, m[1]);

    const present = Buffer.from('Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nmessage-id: <keep@x>\r\n\r\nb\r\n');
    const msg2 = await h.cleanup.begin(s, envelope());
    await feed(msg2, present);
    assert.ok(splitReceived(await stored(h, await msg2.finish())).rest.equals(present));

    const notAuth = await h.cleanup.begin(session({ role: 'submission' }), envelope());
    const plain = Buffer.from('Subject: s\r\n\r\nb\r\n');
    await feed(notAuth, plain);
    assert.ok(splitReceived(await stored(h, await notAuth.finish())).rest.equals(plain));

    const noSep = await h.cleanup.begin(s, envelope());
    const noSepData = Buffer.from('Subject: only header\r\n');
    await feed(noSep, noSepData);
    assert.ok(splitReceived(await stored(h, await noSep.finish())).rest.equals(noSepData));
  } finally {
    await h.close();
  }
});

test('Received loop limit: more than maxReceivedHeaders fails with 554 5.4.6, nothing kept', async () => {
  const h = await harness({ maxReceivedHeaders: 3 });
  try {
    const hdr = (n: number) => Buffer.from('Received: from x by y; date\r\n'.repeat(n) + 'Subject: s\r\n\r\nbody\r\n');
    const ok = await h.cleanup.begin(session(), envelope());
    await feed(ok, hdr(3));
    await ok.finish();
    const bad = await h.cleanup.begin(session(), envelope());
    await feed(bad, hdr(4), [10]);
    await assert.rejects(bad.finish(), (err: unknown) => {
      assert.ok(err instanceof PostlineError);
      assert.equal(err.reply.code, 554);
      assert.equal(err.reply.enhanced, '5.4.6');
      return true;
    });
    assert.equal((await h.store.loadAll()).length, 1);
    assert.deepEqual(await readdir(join(h.dir, 'spool', 'tmp')), []);
  } finally {
    await h.close();
  }
});

test('size limit: 552 5.3.4 when the data or the declared SIZE is too large', async () => {
  const h = await harness({ maxMessageSize: 1000 });
  try {
    const msg = await h.cleanup.begin(session(), envelope());
    await feed(msg, Buffer.from('Subject: s\r\n\r\n' + 'x'.repeat(2000)), [100]);
    await assert.rejects(msg.finish(), (err: unknown) => err instanceof PostlineError && err.reply.code === 552 && err.reply.enhanced === '5.3.4');
    await assert.rejects(h.cleanup.begin(session(), envelope(['a@x'], { declaredSize: 5000 })),
      (err: unknown) => err instanceof PostlineError && err.reply.code === 552);
    const exact = await h.cleanup.begin(session(), envelope());
    await feed(exact, Buffer.alloc(1000, 0x61));
    await exact.finish();
    assert.equal((await h.store.loadAll()).length, 1);
  } finally {
    await h.close();
  }
  const h2 = await harness({ maxMessageSize: 1000 });
  try {
    const msg = await h2.cleanup.begin(session(), envelope());
    await feed(msg, Buffer.alloc(1500, 0x62));
    await assert.rejects(msg.finish());
    await assertStoreEmpty(h2);
  } finally {
    await h2.close();
  }
});

test('a header section over the limit is refused with 552 5.3.4 (no field beyond the buffer escapes the checks), memory bounded', async () => {
  const h = await harness({ maxMessageSize: 8 * 1024 * 1024 });
  try {
    const big = Buffer.from(`X-Big: ${'y'.repeat(HEADER_LIMIT + 10_000)}\r\nX-Postline-Tags: ["late"]\r\n\r\nbody\r\n`);
    const msg = await h.cleanup.begin(session({ role: 'submission', authUser: 'a' }), envelope());
    await feed(msg, big, [65536]);
    await assert.rejects(msg.finish(), (err: unknown) => err instanceof PostlineError && err.reply.code === 552 && err.reply.enhanced === '5.3.4');
    await assertStoreEmpty(h);
    // Exactly at the limit (the empty line within it) is still fine.
    const ok = Buffer.from(`X-Big: ${'y'.repeat(HEADER_LIMIT - 100)}\r\n\r\nbody\r\n`);
    const msg2 = await h.cleanup.begin(session(), envelope());
    await feed(msg2, ok, [65536]);
    const id = await msg2.finish();
    assert.ok(splitReceived(await stored(h, id)).rest.equals(ok));
  } finally {
    await h.close();
  }
});

test('large message with backpressure; event, log line and stored envelope', async () => {
  const { logger, lines } = captureLogger();
  const h = await harness({}, logger);
  try {
    const data = Buffer.concat([Buffer.from('Message-ID: <big@example.com>\r\n\r\n'), Buffer.alloc(5 * 1024 * 1024, 0x7a)]);
    const env = envelope(['a@example.net', 'b@example.net'], { ret: 'HDRS', envid: 'E1' });
    const msg = await h.cleanup.begin(session(), { ...env, recipients: [{ address: 'a@example.net', notify: ['FAILURE'] }, { address: 'b@example.net' }] });
    let sawBackpressure = false;
    for (let off = 0; off < data.length; off += 1024 * 1024) {
      if (!msg.write(data.subarray(off, off + 1024 * 1024))) { sawBackpressure = true; await msg.drain(); }
    }
    assert.ok(sawBackpressure);
    const id = await msg.finish();
    const [q] = await h.store.loadAll();
    assert.equal(q.id, id);
    assert.equal(q.ret, 'HDRS');
    assert.equal(q.envid, 'E1');
    assert.deepEqual(q.recipients[0].notify, ['FAILURE']);
    assert.deepEqual(q.origin, { kind: 'smtp', clientAddress: '192.0.2.10', listener: 'mx', clientName: 'client.example.org' });
    const ev = h.events[0];
    assert.ok(ev.type === 'message.received');
    assert.equal(ev.messageId, '<big@example.com>');
    assert.equal(ev.size, q.size);
    assert.deepEqual(ev.recipients, ['a@example.net', 'b@example.net']);
    assert.equal(ev.origin?.clientAddress, '192.0.2.10');
    assert.ok(lines.length >= 0);
  } finally {
    await h.close();
  }
});

test('abort discards the body; inject queues a DSN with a Received "by" field', async () => {
  const h = await harness();
  try {
    const msg = await h.cleanup.begin(session(), envelope());
    msg.write(Buffer.from('Subject: s\r\n\r\npartial'));
    await msg.abort();
    await msg.abort();
    await assertStoreEmpty(h);

    const dsn = Buffer.from('From: MAILER-DAEMON@mx.postline.test\r\nMessage-ID: <dsn@x>\r\n\r\nreport\r\n');
    const id = await h.cleanup.inject(envelope(['sender@example.com'], { mailFrom: '' }), dsn, { kind: 'dsn' });
    const body = await stored(h, id);
    const { received, rest } = splitReceived(body);
    assert.equal(received, `Received: by mx.postline.test (Postline) id ${id}; Tue, 14 Nov 2023 22:13:20 +0000`);
    assert.ok(rest.equals(dsn));
    const q = await h.store.get(id);
    assert.equal(q?.mailFrom, '');
    assert.deepEqual(q?.origin, { kind: 'dsn' });
    const ev = h.events.find((e) => e.type === 'message.received' && e.queueId === id);
    assert.ok(ev && ev.type === 'message.received' && ev.messageId === '<dsn@x>');
  } finally {
    await h.close();
  }
});

test('begin refuses with 452 4.3.1 when the store is below its free-space reserve', async () => {
  const { tempDir } = await import('../spool/helpers.js');
  const { SqliteQueueStore } = await import('../../../src/spool/sqlite/store.js');
  const { Cleanup } = await import('../../../src/cleanup/cleanup.js');
  const { EventBus } = await import('../../../src/events/bus.js');
  const { silentLogger } = await import('../../../src/core/log.js');
  const { dir, cleanup: rm } = await tempDir('postline-cleanup-');
  const store = new SqliteQueueStore({ dataDir: dir, minFreeBytes: Number.MAX_SAFE_INTEGER, logger: silentLogger() });
  try {
    await store.open();
    const c = new Cleanup({ store, logger: silentLogger(), config: { hostname: 'h.test', limits: { maxMessageSize: 1000, maxReceivedHeaders: 10 } } });
    await assert.rejects(c.begin(session(), envelope()), (err: unknown) =>
      err instanceof PostlineError && err.reply.code === 452 && err.reply.enhanced === '4.3.1');
  } finally {
    await store.close();
    await rm();
  }
});
