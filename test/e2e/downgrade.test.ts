/**
 * 8-bit mail to a next hop without 8BITMIME (Postfix's smtp-sink started with -8): the 8-bit MIME
 * parts arrive converted to quoted-printable, 7-bit clean; real corpus messages.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { PostlineProcess } from '../helpers/postline-process.js';
import { SmtpSink } from '../helpers/smtp-sink.js';
import { RawSmtp } from '../helpers/raw-smtp.js';
import { waitFor } from '../helpers/net.js';
import { corpusAvailable, loadCorpus, CORPUS_DIR } from '../helpers/corpus.js';

const available = corpusAvailable();
if (!available) console.log(`corpus not found at ${CORPUS_DIR}: downgrade test skipped`);
const cleanups: Array<() => Promise<void>> = [];
after(async () => { for (const c of cleanups.reverse()) await c().catch(() => {}); });

test('8-bit corpus messages are downgraded to quoted-printable for a receiver without 8BITMIME', { skip: !available && 'corpus absent' }, async () => {
  const sink = await new SmtpSink(['-8']).start();
  cleanups.push(() => sink.cleanup());
  const pl = new PostlineProcess({ config: { delivery: { relayhost: { host: '127.0.0.1', port: sink.port, tls: 'none' }, retry: { initialMs: 60_000 } } } });
  cleanups.push(() => pl.cleanup());
  await pl.start();
  // 8-bit bodies whose header section is 7-bit (8-bit headers cannot be downgraded: 5.6.3).
  const picks = loadCorpus().filter((m) => m.name.startsWith('8bit/') && m.eightBit && !m.data.subarray(0, m.data.indexOf('\r\n\r\n')).some((b) => b >= 0x80)).slice(0, 6);
  assert.ok(picks.length >= 3, 'enough 8-bit corpus messages');
  const { c } = await RawSmtp.open(pl.port());
  await c.ehlo();
  for (const [i, m] of picks.entries()) {
    const r = await c.send('sender@origin.test', [`d${i}@remote.test`], m.data, 'BODY=8BITMIME');
    assert.equal(r.final?.code, 250, m.name);
  }
  await c.quit();
  await waitFor('the queue to empty', async () => (await pl.cli(['queue', 'list', '--json'])).stdout.trim() === '[]', 30_000, 300);
  const got = sink.messages().filter((m) => m.rcptArgs.some((r) => /<d\d@remote\.test>/.test(r)));
  assert.ok(got.length >= 4, `most picks are deliverable after conversion (got ${got.length})`);
  for (const m of got) {
    assert.ok(!m.data.some((b) => b >= 0x80), 'no 8-bit byte reaches a server without 8BITMIME');
    assert.match(m.data.toString('latin1'), /Content-Transfer-Encoding: quoted-printable/i);
    assert.doesNotMatch(m.mailArgs, /BODY=8BITMIME/i);
  }
  // What cannot be converted (8-bit bytes in MIME part headers) bounces with 5.6.3, never goes out 8-bit.
  const outcomes = pl.logs().filter((l) => typeof l.to === 'string' && /^d\d@remote\.test$/.test(l.to as string));
  assert.equal(outcomes.length, picks.length);
  for (const o of outcomes) assert.ok(o.status === 'sent' || (o.status === 'bounced' && o.dsn === '5.6.3'), JSON.stringify(o));
});
