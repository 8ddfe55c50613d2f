/**
 * Inbound verification in cleanup's modifier chain (src/auth/modifier.ts with src/cleanup/),
 * against a real DNS server on loopback: the signature is checked over the bytes the client sent
 * even when a later modifier (DKIM signing of relayed mail) has the message stored 7-bit and our
 * Received field is on top; only mx mail from untrusted clients is verified; our results go into
 * the message.received event; a forged Authentication-Results is removed only where we verify;
 * a DMARC reject is refused with 550 5.7.1.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../../src/core/log.js';
import { ManualClock } from '../../../src/core/clock.js';
import { Cleanup } from '../../../src/cleanup/cleanup.js';
import type { ModifierFactory } from '../../../src/cleanup/modifiers.js';
import { CachingResolver } from '../../../src/dns/cache.js';
import { createResolver } from '../../../src/dns/resolver.js';
import { generateKey, publicValueOf, recordValue, splitTxt } from '../../../src/dkim/keys.js';
import { dkimSigner } from '../../../src/dkim/signer.js';
import { inboundAuth, type AuthSettings } from '../../../src/auth/modifier.js';
import { SqliteQueueStore } from '../../../src/spool/sqlite/store.js';
import type { PostlineEvent } from '../../../src/events/types.js';
import { startDnsServer, type DnsServerHandle } from '../../helpers/dns-server.js';
import { signRelaxed } from '../../helpers/dkim-sign.js';
import { envelope, session } from '../cleanup/helpers.js';
import { readAll, tempDir } from '../spool/helpers.js';

const theirs = generateKey('rsa-sha256', 2048).key;
const ours = generateKey('rsa-sha256', 2048).key;
const settings: AuthSettings = { authservId: 'mx.postline.test', verifyTrusted: false, minKeyBits: 1024, timeoutMs: 2000, dmarcReject: true };
let dns: DnsServerHandle;

before(async () => {
  dns = await startDnsServer({
    'example.com': { txt: [['v=spf1 ip4:192.0.2.10 -all']] },
    'client.example.org': { txt: [['v=spf1 -all']] },
    '_dmarc.example.com': { txt: [['v=DMARC1; p=reject']] },
    's2._domainkey.example.com': { txt: [splitTxt(recordValue(theirs, 'rsa-sha256'))] },
  });
});
after(async () => { await dns.close(); });

async function withChain(fn: (c: Cleanup, store: SqliteQueueStore, events: PostlineEvent[]) => Promise<void>, extra: ModifierFactory[] = [], reject = true): Promise<void> {
  const { dir, cleanup: rm } = await tempDir('postline-auth-');
  const store = new SqliteQueueStore({ dataDir: dir, minFreeBytes: 0, logger: silentLogger() });
  await store.open();
  const events: PostlineEvent[] = [];
  store.setEventListener((list) => { events.push(...list); });
  const resolver = new CachingResolver(createResolver({ servers: [dns.server], timeoutMs: 1000, tries: 1 }), { maxEntries: 100, maxTtlS: 60, negativeTtlS: 5 });
  try {
    const cleanup = new Cleanup({
      store, logger: silentLogger(), clock: new ManualClock(Date.now()),
      modifiers: () => [inboundAuth({ settings: () => ({ ...settings, dmarcReject: reject }), resolver }), ...extra],
      isTrusted: (s) => s.authUser !== undefined,
      config: { hostname: 'mx.postline.test', limits: { maxMessageSize: 10 * 1024 * 1024, maxReceivedHeaders: 30 } },
    });
    await fn(cleanup, store, events);
  } finally {
    await store.close();
    await rm();
  }
}

async function send(c: Cleanup, data: Buffer, s = session({ role: 'mx' })): Promise<string> {
  const m = await c.begin(s, envelope(['bob@example.net'], { bodyType: '8BITMIME' }));
  for (let i = 0; i < data.length; i += 9) if (!m.write(data.subarray(i, i + 9))) await m.drain();
  return m.finish();
}

async function received(events: PostlineEvent[], id: string): Promise<PostlineEvent> {
  for (let i = 0; i < 200; i++) {
    const e = events.find((x) => x.type === 'message.received' && x.queueId === id);
    if (e) return e;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`no message.received for ${id}`);
}

test('the client\'s bytes are verified even when our own signer has the message stored 7-bit', async () => {
  const signer = dkimSigner({ keys: [{ domain: 'example.com', selector: 'out', algorithm: 'rsa-sha256', key: ours, publicValue: publicValueOf(ours, 'rsa-sha256') }], signRelayed: true });
  await withChain(async (c, store, events) => {
    const raw = Buffer.from('From: a@example.com\r\nTo: bob@example.net\r\nSubject: Gruesse\r\nMIME-Version: 1.0\r\n'
      + 'Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nGr\xc3\xbc\xc3\x9fe aus K\xc3\xb6ln \r\n', 'latin1');
    const id = await send(c, signRelaxed(raw, { key: theirs, domain: 'example.com', selector: 's2', names: ['from', 'to', 'subject', 'content-transfer-encoding'] }));
    assert.equal((await store.get(id))!.bodyType, '7BIT', 'our signer had it converted');
    const stored = (await readAll(store.openBody(id))).toString('latin1');
    assert.match(stored, /^DKIM-Signature: v=1; a=rsa-sha256; c=relaxed\/relaxed; d=example\.com; s=out;[\s\S]*\r\nAuthentication-Results: mx\.postline\.test;\r\n dkim=pass [^\r\n]*header\.s=s2/);
    assert.match(stored, /Gr=C3=BC=C3=9Fe/);
    const e = await received(events, id);
    assert.deepEqual([e.auth?.spf, e.auth?.spfHelo, e.auth?.dkim, e.auth?.dmarc], ['pass', 'fail', 'pass', 'pass']);
    assert.deepEqual(e.auth?.dkimSignatures, [{ domain: 'example.com', selector: 's2', result: 'pass' }]);
  }, [signer]);
});

test('trusted and submission mail is not verified; a forged A-R is removed only where we verify', async () => {
  await withChain(async (c, store, events) => {
    const forged = Buffer.from('Authentication-Results: mx.postline.test; dmarc=pass\r\nFrom: a@example.com\r\n\r\nx\r\n');
    const mx = await send(c, forged);
    const mxBody = (await readAll(store.openBody(mx))).toString('latin1');
    assert.equal((mxBody.match(/Authentication-Results: mx\.postline\.test;/g) ?? []).length, 1);
    assert.match(mxBody, /^Authentication-Results: mx\.postline\.test;\r\n dkim=none/);
    const trusted = await send(c, forged, session({ role: 'mx', authUser: 'alice' }));
    assert.match((await readAll(store.openBody(trusted))).toString('latin1'), /^Received: [\s\S]*\r\nAuthentication-Results: mx\.postline\.test; dmarc=pass\r\n/, 'inside our boundary: kept, no field of ours');
    const sub = await send(c, forged, session({ role: 'submission', authUser: 'alice' }));
    assert.doesNotMatch((await readAll(store.openBody(sub))).toString('latin1'), /^Authentication-Results: mx\.postline\.test;\r\n/);
    assert.ok((await received(events, mx)).auth);
    assert.equal((await received(events, trusted)).auth, undefined);
  });
});

test('a DMARC reject is refused at the end of the data with 550 5.7.1', async () => {
  await withChain(async (c) => {
    await assert.rejects(send(c, Buffer.from('From: a@example.com\r\n\r\nx\r\n'), session({ role: 'mx', clientAddress: '198.51.100.7' })),
      (e: { reply?: { code: number; enhanced?: string; lines: string[] } }) => e.reply?.code === 550 && e.reply.enhanced === '5.7.1' && /example\.com/.test(e.reply.lines[0]!));
  });
});

test('at most MAX_DKIM_SIGNATURES signatures are checked; the rest are named in one result', async () => {
  await withChain(async (c, store, events) => {
    const sigs = Array.from({ length: 12 }, (_, i) => `DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=x${i}.example.com; s=s; h=from; bh=AAAA; b=AAAA\r\n`).join('');
    const id = await send(c, Buffer.from(`${sigs}From: a@example.com\r\n\r\nx\r\n`), session({ role: 'mx', clientAddress: '192.0.2.10' }));
    const e = await received(events, id);
    assert.equal(e.auth?.dkimSignatures?.length, 10);
    assert.match((await readAll(store.openBody(id))).toString('latin1'), /dkim=neutral \(2 more signatures not checked\)/);
  });
});

test('a client address XCLIENT left unknown: SPF none, the rest checked', async () => {
  await withChain(async (c, _store, events) => {
    const id = await send(c, Buffer.from('From: a@example.com\r\n\r\nx\r\n'), session({ role: 'mx', clientAddress: 'unknown' }));
    const e = await received(events, id);
    assert.deepEqual([e.auth?.spf, e.auth?.spfHelo, e.auth?.dmarc], ['none', 'none', 'fail']);
  }, [], false);
});
