/**
 * End to end on real mail: every message of the shared corpus is submitted over SMTP (many per
 * session, BODY=8BITMIME / SMTPUTF8 where needed), relayed by the real `postline serve` process, and
 * must arrive at the receiver identical apart from our Received header.
 *
 * Receivers: Postfix's smtp-sink for everything it can take. smtp-sink (Postfix 3.7) does not offer
 * SMTPUTF8, so messages that need it are routed to a capturing SMTP peer on loopback that does, and a
 * copy of one of them is also sent to smtp-sink to show it bounces with 5.6.7 rather than being mangled.
 * smtp-sink writes LF line endings in its dump; the messages are compared in that form (all input is
 * CRLF-normalised first, so nothing is lost by the comparison).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { PostlineProcess } from '../helpers/postline-process.js';
import { SmtpSink } from '../helpers/smtp-sink.js';
import { RawSmtp } from '../helpers/raw-smtp.js';
import { waitFor } from '../helpers/net.js';
import { corpusAvailable, loadCorpus, CORPUS_DIR, expectedCrlf, stripFirstReceived, type CorpusMessage } from '../helpers/corpus.js';
import { startCapturePeer, type CapturePeer } from '../helpers/capture-peer.js';

const available = corpusAvailable();
if (!available) console.log(`corpus not found at ${CORPUS_DIR} (set POSTLINE_CORPUS): corpus end-to-end test skipped`);

let sink: SmtpSink;
let utf8Peer: CapturePeer;
let pl: PostlineProcess;

before(async () => {
  if (!available) return;
  sink = await new SmtpSink().start();
  utf8Peer = await startCapturePeer({ smtputf8: true });
  pl = new PostlineProcess({
    config: {
      limits: { minFreeBytes: 0, maxMessageSize: 64 * 1024 * 1024 },
      delivery: {
        relayhost: { host: '127.0.0.1', port: sink.port, tls: 'none' },
        routes: [{ domain: 'utf8.test', host: '127.0.0.1', port: utf8Peer.port, tls: 'none' }],
        retry: { initialMs: 1000, maxMs: 2000 },
        scanIntervalMs: 100,
      },
      log: { level: 'warn', format: 'json' },
    },
  });
  await pl.start();
});

after(async () => {
  await pl?.cleanup();
  await sink?.cleanup();
  await utf8Peer?.close();
});

function expectedLf(m: CorpusMessage): Buffer {
  let s = m.data.toString('latin1');
  if (!s.endsWith('\r\n')) s += '\r\n';
  return Buffer.from(s.replace(/\r\n/g, '\n'), 'latin1');
}

test('every corpus message is relayed byte-identical apart from our Received header', { skip: !available && 'corpus absent' }, async () => {
  const corpus = loadCorpus();
  assert.ok(corpus.length >= 900, `corpus has ${corpus.length} messages`);
  const t0 = Date.now();
  let bytes = 0;
  const perSession = 25;
  const sessions = 4;
  const jobs: Array<{ i: number; m: CorpusMessage; to: string }> = corpus.map((m, i) => ({ i, m, to: m.smtputf8 ? `m${i}@utf8.test` : `m${i}@sink.test` }));
  let next = 0;
  const refused: string[] = [];
  const worker = async () => {
    while (next < jobs.length) {
      const batch = jobs.slice(next, next + perSession);
      next += perSession;
      const { c } = await RawSmtp.open(pl.port());
      await c.ehlo();
      for (const j of batch) {
        const params = [j.m.eightBit ? 'BODY=8BITMIME' : '', j.m.smtputf8 ? 'SMTPUTF8' : ''].filter(Boolean).join(' ');
        const r = await c.send('corpus@origin.test', [j.to], j.m.data, params);
        if (r.final?.code !== 250) refused.push(`${j.m.name}: ${JSON.stringify(r)}`);
        bytes += j.m.data.length;
      }
      await c.quit();
    }
  };
  await Promise.all(Array.from({ length: sessions }, worker));
  const acceptedMs = Date.now() - t0;
  assert.deepEqual(refused, [], 'every corpus message is accepted');

  const wantSink = jobs.filter((j) => !j.m.smtputf8).length;
  const wantUtf8 = jobs.length - wantSink;
  await waitFor(`${wantSink} messages at smtp-sink and ${wantUtf8} at the SMTPUTF8 peer`, () => sink.messages().length >= wantSink && utf8Peer.messages.length >= wantUtf8, 240_000, 200);
  // A dump file can look complete while smtp-sink still writes it: the queue is empty only after
  // every 250 came back, which smtp-sink sends after writing the dump.
  await waitFor('the queue to empty', async () => (await pl.cli(['queue', 'list', '--json'])).stdout.trim() === '[]', 120_000, 500);
  const totalMs = Date.now() - t0;

  const byRcpt = new Map<string, Buffer>();
  for (const s of sink.messages()) for (const r of s.rcptArgs) byRcpt.set(/<([^>]*)>/.exec(r)?.[1] ?? r, s.data);
  for (const p of utf8Peer.messages) for (const r of p.recipients) byRcpt.set(r, p.data);
  const mismatched: string[] = [];
  for (const j of jobs) {
    const got = byRcpt.get(j.to);
    if (!got) { mismatched.push(`${j.m.name}: missing`); continue; }
    const ok = j.m.smtputf8
      ? stripFirstReceived(got, '\r\n').equals(expectedCrlf(j.m))
      : stripFirstReceived(got, '\n').equals(expectedLf(j.m));
    if (!ok) {
      mismatched.push(`${j.m.name}: differs`);
      if (process.env.POSTLINE_DEBUG_DIR) {
        const { writeFileSync } = await import('node:fs');
        writeFileSync(`${process.env.POSTLINE_DEBUG_DIR}/got-${j.i}`, got);
        writeFileSync(`${process.env.POSTLINE_DEBUG_DIR}/want-${j.i}`, j.m.smtputf8 ? expectedCrlf(j.m) : expectedLf(j.m));
      }
    }
  }
  assert.deepEqual(mismatched, [], 'every message arrives identical apart from the Received header');
  assert.equal(sink.messages().length, wantSink, 'no duplicates at the sink');
  console.log(`corpus e2e: ${jobs.length} messages, ${bytes} bytes, accepted in ${(acceptedMs / 1000).toFixed(1)} s, all delivered in ${(totalMs / 1000).toFixed(1)} s (${wantSink} via smtp-sink, ${wantUtf8} via the SMTPUTF8 peer)`);
});

test('a message that needs SMTPUTF8 bounces with 5.6.7 at a next hop without SMTPUTF8', { skip: !available && 'corpus absent' }, async () => {
  const m = loadCorpus().find((x) => x.smtputf8);
  assert.ok(m, 'the corpus has SMTPUTF8 messages');
  const { c } = await RawSmtp.open(pl.port());
  await c.ehlo();
  const r = await c.send('utf8-sender@utf8.test', ['nosmtputf8@sink.test'], m.data, `BODY=8BITMIME SMTPUTF8`);
  await c.quit();
  assert.equal(r.final?.code, 250);
  const dsn = await waitFor('the 5.6.7 DSN at the sender', () => utf8Peer.messages.find((p) => p.mailFrom === '' && p.recipients.includes('utf8-sender@utf8.test')), 30_000);
  assert.match(dsn.data.toString('utf8'), /Status: 5\.6\.7/);
});
