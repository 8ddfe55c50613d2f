/**
 * End to end: the real `postline serve` with `local.routes` sending example.test over LMTP to a
 * private Dovecot (test/helpers/dovecot.ts). Corpus messages submitted over SMTP land in the
 * Maildirs byte for byte (apart from Dovecot's Return-Path / Delivered-To / Received fields and our
 * Received field), several messages share one LMTP session (Dovecot's log counts the
 * connections), and the recipients Dovecot refuses get DSNs: over quota 5.2.2, unknown 5.1.1, and
 * 5.6.7 for a message that needs SMTPUTF8 (Dovecot 2.3's LMTP does not offer it).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { PostlineProcess } from '../helpers/postline-process.js';
import { RawSmtp } from '../helpers/raw-smtp.js';
import { waitFor } from '../helpers/net.js';
import { corpusAvailable, loadCorpus, CORPUS_DIR, expectedCrlf, stripFirstReceived, type CorpusMessage } from '../helpers/corpus.js';
import { dovecotBinary, startDovecot, withoutDovecotFields, type DovecotHandle } from '../helpers/dovecot.js';

const skip = !dovecotBinary() ? 'dovecot is not installed' : !corpusAvailable() ? `corpus not found at ${CORPUS_DIR} (set POSTLINE_CORPUS)` : false;
let dc: DovecotHandle;
let pl: PostlineProcess;

before(async () => {
  if (skip) return;
  dc = await startDovecot({ users: [{ name: 'alice' }, { name: 'bob' }, { name: 'sender' }, { name: 'full', quota: '1K' }] });
  pl = new PostlineProcess({
    config: {
      relay: { localDomains: ['example.test'] },
      local: { routes: [{ match: 'example.test', transport: 'lmtp', target: dc.tcpTarget }], lmtp: { idleTimeoutMs: 60_000 } },
      // One delivery at a time to the LMTP target, so the count of sessions says how many were reused.
      delivery: { connectionsPerDestination: 1, scanIntervalMs: 100, retry: { initialMs: 60_000, maxMs: 60_000 } },
      log: { level: 'info', format: 'json' },
    },
  });
  await pl.start();
});

after(async () => {
  await pl?.cleanup();
  await dc?.stop();
});

/** The copies in `user`'s Maildir, as the sender wrote them: Dovecot's fields and our Received field removed. */
function copies(user: string): Buffer[] {
  return dc.messages(user).map((f) => stripFirstReceived(withoutDovecotFields(readFileSync(f)), '\r\n'));
}

/** `n` corpus messages spread over its folders, of those that need no SMTPUTF8 (which Dovecot 2.3 lacks). */
function pickCorpus(n: number): CorpusMessage[] {
  const all = loadCorpus().filter((m) => !m.smtputf8);
  const step = Math.max(1, Math.floor(all.length / n));
  return all.filter((_, i) => i % step === 0).slice(0, n);
}

test('60 corpus messages over SMTP reach two Maildirs through LMTP byte for byte, over one reused LMTP session', { skip }, async () => {
  const corpus = pickCorpus(60);
  assert.equal(corpus.length, 60);
  assert.ok(corpus.some((m) => m.eightBit), 'some 8-bit messages among them');
  const { c } = await RawSmtp.open(pl.port());
  await c.ehlo();
  for (const m of corpus) {
    const r = await c.send('sender@example.test', ['alice@example.test', 'bob@example.test'], m.data, m.eightBit ? 'BODY=8BITMIME' : '');
    assert.equal(r.final?.code, 250, `${m.name}: ${JSON.stringify(r)}`);
  }
  await c.quit();
  await waitFor('60 messages in each Maildir', () => dc.messages('alice').length >= 60 && dc.messages('bob').length >= 60, 60_000, 100);
  await waitFor('the queue to empty', async () => (await pl.cli(['queue', 'list', '--json'])).stdout.trim() === '[]', 30_000, 200);
  for (const user of ['alice', 'bob']) {
    const got = copies(user);
    assert.equal(got.length, 60, `no duplicates for ${user}`);
    const missing = corpus.filter((m) => !got.some((g) => g.equals(expectedCrlf(m)))).map((m) => m.name);
    assert.deepEqual(missing, [], `every message in ${user}'s Maildir byte for byte`);
  }
  // One delivery at a time, up to delivery.messagesPerConnection (100) messages per session.
  const sessions = dc.connections();
  assert.equal(sessions, 1, `60 deliveries over one LMTP session (Dovecot counted ${sessions})`);
  const attempts = pl.logs().filter((l) => l.msg === 'lmtp delivery attempt');
  assert.equal(attempts.length, 60, 'one LMTP delivery per message');
});

test('refusals become DSNs: over quota 5.2.2, unknown user 5.1.1, SMTPUTF8 needed 5.6.7; the others are delivered', { skip }, async () => {
  const big = pickCorpus(60).find((m) => m.data.length > 2048);
  const utf8 = loadCorpus().find((m) => m.smtputf8);
  assert.ok(big && utf8);
  const before = dc.messages('sender').length;
  const { c } = await RawSmtp.open(pl.port());
  await c.ehlo();
  const r1 = await c.send('sender@example.test', ['full@example.test', 'ghost@example.test', 'alice@example.test'], big.data, big.eightBit ? 'BODY=8BITMIME' : '');
  assert.equal(r1.final?.code, 250, JSON.stringify(r1));
  const r2 = await c.send('sender@example.test', ['bob@example.test'], utf8.data, 'BODY=8BITMIME SMTPUTF8');
  assert.equal(r2.final?.code, 250, JSON.stringify(r2));
  await c.quit();
  const dsns = await waitFor('two DSNs in the sender\'s Maildir', () => {
    const files = dc.messages('sender').slice(before).map((f) => readFileSync(f).toString('utf8'));
    return files.length >= 2 ? files : undefined;
  }, 30_000, 100);
  const all = dsns.join('\n');
  assert.match(all, /Final-Recipient: rfc822; ?full@example\.test[\s\S]*?Status: 5\.2\.2/);
  assert.match(all, /Final-Recipient: rfc822; ?ghost@example\.test[\s\S]*?Status: 5\.1\.1/);
  assert.match(all, /Final-Recipient: rfc822; ?bob@example\.test[\s\S]*?Status: 5\.6\.7/);
  assert.match(all, /Diagnostic-Code: smtp; ?552 5\.2\.2 <full@example\.test> Quota exceeded/);
  assert.ok(copies('alice').some((g) => g.equals(expectedCrlf(big))), 'alice got hers');
  assert.equal(dc.messages('full').length, 0);
});
