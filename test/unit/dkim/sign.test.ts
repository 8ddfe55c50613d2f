/**
 * DKIM signing through cleanup (src/dkim/signer.ts as a modifier): RSA-2048 and Ed25519 dual
 * signatures verified by mailauth (TXT from a real loopback DNS server) and by dkimpy; which mail is
 * signed; parent-domain keys; 8-bit mail stored 7-bit; the streaming body hash against a whole-buffer
 * reference (random chunking).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { silentLogger } from '../../../src/core/log.js';
import { ManualClock } from '../../../src/core/clock.js';
import { Cleanup } from '../../../src/cleanup/cleanup.js';
import { SEVEN_BIT_HOLD } from '../../../src/cleanup/incoming.js';
import type { PostlineError } from '../../../src/core/errors.js';
import type { ModifierFactory } from '../../../src/cleanup/modifiers.js';
import { createResolver } from '../../../src/dns/resolver.js';
import { RelaxedBodyHash, relaxedHeader } from '../../../src/dkim/canon.js';
import { generateKey, publicValueOf, recordName, recordValue, type DkimKey } from '../../../src/dkim/keys.js';
import { dkimSigner, fromDomain } from '../../../src/dkim/signer.js';
import { SqliteQueueStore } from '../../../src/spool/sqlite/store.js';
import { startDnsServer, type DnsServerHandle } from '../../helpers/dns-server.js';
import { dkimpyPython, verifyWithDkimpy, verifyWithMailauth, type DkimpySig } from '../../helpers/dkim-verify.js';
import { envelope, session } from '../cleanup/helpers.js';
import { readAll, tempDir } from '../spool/helpers.js';

const rsa = generateKey('rsa-sha256', 2048).key;
const ed = generateKey('ed25519-sha256').key;
const KEYS: DkimKey[] = [
  { domain: 'example.test', selector: 'r1', algorithm: 'rsa-sha256', key: rsa, publicValue: publicValueOf(rsa, 'rsa-sha256') },
  { domain: 'example.test', selector: 'e1', algorithm: 'ed25519-sha256', key: ed, publicValue: publicValueOf(ed, 'ed25519-sha256') },
];
const RECORDS: Record<string, string> = {
  [recordName('r1', 'example.test')]: recordValue(rsa, 'rsa-sha256'),
  [recordName('e1', 'example.test')]: recordValue(ed, 'ed25519-sha256'),
};
let dns: DnsServerHandle;
const python = dkimpyPython();

before(async () => {
  const split = (v: string): string[] => v.match(/.{1,255}/g)!;
  dns = await startDnsServer(Object.fromEntries(Object.entries(RECORDS).map(([n, v]) => [n, { txt: [split(v)] }])));
});
after(async () => { await dns.close(); });

async function withCleanup(fn: (c: Cleanup, store: SqliteQueueStore) => Promise<void>, factories: ModifierFactory[] = [dkimSigner({ keys: KEYS })]): Promise<void> {
  const { dir, cleanup: rm } = await tempDir('postline-dkim-');
  const store = new SqliteQueueStore({ dataDir: dir, minFreeBytes: 0, logger: silentLogger() });
  await store.open();
  try {
    const cleanup = new Cleanup({
      store, logger: silentLogger(), clock: new ManualClock(Date.now()), modifiers: () => factories,
      config: { hostname: 'mx.postline.test', limits: { maxMessageSize: 10 * 1024 * 1024, maxReceivedHeaders: 30 } },
    });
    await fn(cleanup, store);
  } finally {
    await store.close();
    await rm();
  }
}

/** Streams `data` in pieces of `step` bytes through an authenticated submission session. */
async function send(c: Cleanup, data: Buffer, opts: { step?: number; trusted?: boolean; bodyType?: '7BIT' | '8BITMIME' } = {}): Promise<string> {
  const s = opts.trusted === false ? session({ role: 'mx' }) : session({ role: 'submission', authUser: 'alice' });
  const m = await c.begin(s, envelope(['bob@example.net'], { bodyType: opts.bodyType ?? '8BITMIME' }));
  const step = opts.step ?? 7;
  for (let i = 0; i < data.length; i += step) if (!m.write(data.subarray(i, i + step))) await m.drain();
  return m.finish();
}

const resolver = () => createResolver({ servers: [dns.server], timeoutMs: 2000, tries: 1 });

test('dual signing: an RSA-2048 and an Ed25519 signature, both verified by mailauth (loopback DNS) and dkimpy', async () => {
  await withCleanup(async (c, store) => {
    const msg = Buffer.from('From: Alice <alice@example.test>\r\nTo: bob@example.net\r\nSubject: hello   there \r\n\tfolded\r\n\r\nline one  \r\n\r\nline\t\ttwo\r\n\r\n\r\n');
    const id = await send(c, msg);
    const stored = await readAll(store.openBody(id));
    const q = (await store.get(id))!;
    assert.equal(q.size, stored.length, 'size counts the prepended fields');
    assert.match(stored.toString('latin1'), /^DKIM-Signature: v=1; a=rsa-sha256; c=relaxed\/relaxed; d=example.test; s=r1;[\s\S]*\r\nDKIM-Signature: v=1; a=ed25519-sha256;/);
    assert.doesNotMatch(stored.toString('latin1'), /; l=/);
    assert.match(stored.toString('latin1'), /h=From:To:Subject:Date:Message-ID:From;/, 'submission added Date and Message-ID before signing');
    const res = await verifyWithMailauth(stored, resolver());
    assert.deepEqual(res.map((r) => [r.selector, r.algorithm, r.result]), [['r1', 'rsa-sha256', 'pass'], ['e1', 'ed25519-sha256', 'pass']]);
    if (python) {
      const py = await verifyWithDkimpy(python, [stored], RECORDS);
      assert.deepEqual((py[0] as DkimpySig[]).map((r) => [r.s, r.ok]), [['r1', true], ['e1', true]]);
    }
    // Tampering breaks both.
    const bad = Buffer.from(stored.toString('latin1').replace('line one', 'line 0ne'), 'latin1');
    // (mailauth calls a body hash mismatch "neutral", RFC 6376 6.3 leaves the wording open.)
    assert.ok((await verifyWithMailauth(bad, resolver())).every((r) => r.result !== 'pass'));
    if (python) assert.deepEqual(((await verifyWithDkimpy(python, [bad], RECORDS))[0] as DkimpySig[]).map((r) => r.ok), [false, false]);
  });
});

test('which mail: not from an untrusted mx client; From of a subdomain uses the parent key; no key, no signature', async () => {
  await withCleanup(async (c, store) => {
    const relayed = await send(c, Buffer.from('From: a@example.test\r\n\r\nx\r\n'), { trusted: false });
    assert.doesNotMatch((await readAll(store.openBody(relayed))).toString('latin1'), /DKIM-Signature/);
    const sub = await send(c, Buffer.from('From: "Dept, Sales" <a@Sales.Example.TEST>\r\n\r\nx\r\n'));
    const subBody = await readAll(store.openBody(sub));
    assert.match(subBody.toString('latin1'), /d=example\.test; s=r1/);
    assert.deepEqual((await verifyWithMailauth(subBody, resolver())).map((r) => r.result), ['pass', 'pass']);
    const other = await send(c, Buffer.from('From: a@elsewhere.test\r\n\r\nx\r\n'));
    assert.doesNotMatch((await readAll(store.openBody(other))).toString('latin1'), /DKIM-Signature/);
  });
  // signRelayed: untrusted mail is signed too.
  await withCleanup(async (c, store) => {
    const id = await send(c, Buffer.from('From: a@example.test\r\n\r\nx\r\n'), { trusted: false });
    assert.match((await readAll(store.openBody(id))).toString('latin1'), /^DKIM-Signature/);
  }, [dkimSigner({ keys: KEYS, signRelayed: true })]);
});

test('8-bit mail is stored 7-bit (quoted-printable) and committed as 7BIT, so no downgrade can break the signature', async () => {
  await withCleanup(async (c, store) => {
    const msg = Buffer.from('From: a@example.test\r\nSubject: 8bit\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nGrüße aus Köln\r\n', 'utf8');
    const id = await send(c, msg, { step: 5 });
    const q = (await store.get(id))!;
    assert.equal(q.bodyType, '7BIT');
    const stored = await readAll(store.openBody(id));
    assert.ok(!/[\x80-\xff]/.test(stored.toString('latin1')), 'no 8-bit byte left');
    assert.match(stored.toString('latin1'), /Content-Transfer-Encoding: quoted-printable/);
    assert.match(stored.toString('latin1'), /Gr=C3=BC=C3=9Fe/);
    assert.deepEqual((await verifyWithMailauth(stored, resolver())).map((r) => r.result), ['pass', 'pass']);
    // A 7-bit message declared 8BITMIME is left as it was (still committed as 7BIT: it is 7-bit).
    const plain = Buffer.from('From: a@example.test\r\nSubject: ascii\r\n\r\nplain\r\n');
    const id2 = await send(c, plain);
    const stored2 = (await readAll(store.openBody(id2))).toString('latin1');
    assert.ok(stored2.endsWith('\r\n\r\nplain\r\n') && stored2.includes('\r\nSubject: ascii\r\n'), stored2);
  });
});

test('8-bit mail that cannot be converted (8-bit in a part header) is signed and stored as it came, 8BITMIME', async () => {
  await withCleanup(async (c, store) => {
    const msg = Buffer.from([
      'From: a@example.test', 'Subject: attachment', 'MIME-Version: 1.0', 'Content-Type: multipart/mixed; boundary="b1"', '',
      '--b1', 'Content-Type: text/plain; charset=utf-8', 'Content-Transfer-Encoding: 8bit', '', 'Grüße', '',
      '--b1', 'Content-Type: text/plain; name="Grüße.txt"', 'Content-Disposition: attachment; filename="Grüße.txt"', '', 'x', '',
      '--b1--', '',
    ].join('\r\n'), 'utf8');
    const id = await send(c, msg, { step: 11 });
    assert.equal((await store.get(id))!.bodyType, '8BITMIME');
    const stored = await readAll(store.openBody(id));
    assert.ok(stored.subarray(stored.length - msg.length + msg.indexOf('\r\n\r\n')).equals(msg.subarray(msg.indexOf('\r\n\r\n'))), 'the body is stored as it came');
    assert.deepEqual((await verifyWithMailauth(stored, resolver())).map((r) => r.result), ['pass', 'pass']);
    if (python) assert.deepEqual(((await verifyWithDkimpy(python, [stored], RECORDS))[0] as DkimpySig[]).map((r) => r.ok), [true, true]);
  });
});

test('an unconvertible signed message larger than SEVEN_BIT_HOLD is refused with 554 5.6.3; nothing is stored', async () => {
  await withCleanup(async (c, store) => {
    const head = [
      'From: a@example.test', 'MIME-Version: 1.0', 'Content-Type: multipart/mixed; boundary="b1"', '',
      '--b1', 'Content-Type: text/plain; name="Grüße.txt"', 'Content-Transfer-Encoding: 8bit', '', '',
    ].join('\r\n');
    const line = Buffer.from('ü'.repeat(38) + '\r\n', 'utf8');
    const m = await c.begin(session({ role: 'submission', authUser: 'alice' }), envelope(['bob@example.net'], { bodyType: '8BITMIME' }));
    m.write(Buffer.from(head, 'utf8'));
    for (let n = 0; n <= SEVEN_BIT_HOLD / line.length + 10; n++) if (!m.write(line)) await m.drain();
    m.write(Buffer.from('--b1--\r\n'));
    await assert.rejects(m.finish(), (err: PostlineError) => err.reply?.code === 554 && err.reply.enhanced === '5.6.3');
    assert.equal((await store.list()).length, 0);
  });
});

test('unsigned 8-bit mail keeps its bytes and BODY=8BITMIME', async () => {
  await withCleanup(async (c, store) => {
    const msg = Buffer.from('From: a@elsewhere.test\r\nContent-Transfer-Encoding: 8bit\r\n\r\nGrüße\r\n', 'utf8');
    const id = await send(c, msg);
    assert.equal((await store.get(id))!.bodyType, '8BITMIME');
    assert.ok((await readAll(store.openBody(id))).subarray(-9).equals(Buffer.from('Grüße\r\n', 'utf8')));
  });
});

test('fromDomain reads the first address, skipping comments, quotes and display names', () => {
  assert.equal(fromDomain(' Alice <alice@Example.COM>'), 'example.com');
  assert.equal(fromDomain(' "x@y, z" <a@b.example>'), 'b.example');
  assert.equal(fromDomain(' a@b.example (comment @c.example)'), 'b.example');
  assert.equal(fromDomain(' undisclosed'), undefined);
});

/** Relaxed body canonicalization done on the whole buffer, the plain way (RFC 6376 3.4.4). */
function referenceBody(body: string): string {
  let lines = body.split('\r\n');
  const endsWithCrlf = body.endsWith('\r\n');
  if (endsWithCrlf) lines.pop();
  lines = lines.map((l) => l.replace(/[ \t]+/g, ' ').replace(/ $/, ''));
  while (lines.length && lines[lines.length - 1] === '') lines.pop();
  return lines.length ? lines.join('\r\n') + '\r\n' : '';
}

test('the streaming relaxed body hash equals the whole-buffer reference for any chunking', () => {
  const alphabet = fc.constantFrom('a', 'b', ' ', '\t', '\r\n', '\r\n', '\r', 'ü', '.');
  fc.assert(fc.property(fc.array(alphabet, { maxLength: 80 }), fc.array(fc.integer({ min: 1, max: 9 }), { minLength: 1, maxLength: 10 }), (parts, cuts) => {
    const body = Buffer.from(parts.join(''), 'latin1');
    const h = new RelaxedBodyHash();
    let i = 0;
    for (let k = 0; i < body.length; k++) {
      const n = cuts[k % cuts.length]!;
      h.update(body.subarray(i, i + n));
      i += n;
    }
    const want = createHash('sha256').update(Buffer.from(referenceBody(body.toString('latin1')), 'latin1')).digest('base64');
    assert.equal(h.digest(), want);
  }), { numRuns: 500 });
  assert.equal(relaxedHeader('SubJect :  a \r\n\t b  '), 'subject:a b\r\n');
});
