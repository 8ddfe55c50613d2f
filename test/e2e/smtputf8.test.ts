/**
 * SMTPUTF8 to next hops with and without it, end to end through `postline serve` (RFC 6531 3.4;
 * issue 15 item 2): SMTPUTF8 is needed only when the sender asked for it AND the sender, a header
 * or a recipient of this next-hop group holds UTF-8 (Postfix's rule); otherwise the mail goes to a
 * hop without SMTPUTF8, without the parameter. Capture peers on loopback stand for the hops.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startRoutedPostline, type PostlineProcess } from '../helpers/postline-process.js';
import { RawSmtp, dotStuff } from '../helpers/raw-smtp.js';
import { waitFor } from '../helpers/net.js';
import { startCapturePeer, type CapturePeer } from '../helpers/capture-peer.js';

let utf8Hop: CapturePeer;
let plainHop: CapturePeer;
let home: CapturePeer;
let pl: PostlineProcess;

before(async () => {
  utf8Hop = await startCapturePeer({ smtputf8: true });
  plainHop = await startCapturePeer({ smtputf8: false });
  home = await startCapturePeer({ smtputf8: true });
  pl = await startRoutedPostline({ 'utf8-hop.test': utf8Hop.port, 'plain-hop.test': plainHop.port, 'origin.test': home.port });
});

after(async () => {
  await pl?.cleanup();
  await utf8Hop?.close();
  await plainHop?.close();
  await home?.close();
});

/** One SMTPUTF8 transaction from sender@origin.test; `header` is the message's header section. */
async function sendUtf8(rcpts: string[], header: string): Promise<void> {
  const { c } = await RawSmtp.open(pl.port());
  try {
    await c.ehlo();
    assert.equal((await c.cmd('MAIL FROM:<sender@origin.test> SMTPUTF8 BODY=8BITMIME')).code, 250);
    for (const r of rcpts) {
      c.write(Buffer.from(`RCPT TO:<${r}>\r\n`, 'utf8')); // as UTF-8 bytes (cmd() would send latin1)
      assert.equal((await c.read()).code, 250, r);
    }
    assert.equal((await c.cmd('DATA')).code, 354);
    c.write(dotStuff(Buffer.from(`${header}\r\nbody\r\n`, 'utf8')));
    const final = await c.read();
    assert.equal(final.code, 250, final.text);
  } finally {
    await c.quit();
  }
}

const got = (peer: CapturePeer, rcpt: string) => () => peer.messages.find((m) => m.recipients.includes(rcpt));

test('issue 15 item 2: ASCII mail flagged SMTPUTF8 is relayed to a hop without SMTPUTF8, without the parameter', async () => {
  await sendUtf8(['a@plain-hop.test'], 'From: sender@origin.test\r\nTo: a@plain-hop.test\r\nSubject: plain ascii\r\n');
  const m = await waitFor('delivery to the hop without SMTPUTF8', got(plainHop, 'a@plain-hop.test'), 20_000);
  assert.ok(!/SMTPUTF8/i.test(m.mailParams), m.mailParams);
  assert.match(m.data.toString('utf8'), /Subject: plain ascii/);
});

test('issue 15 item 2: decided per next-hop group: the UTF-8 recipient goes with SMTPUTF8, the ASCII one without', async () => {
  await sendUtf8(['jörg@utf8-hop.test', 'b@plain-hop.test'], 'From: sender@origin.test\r\nSubject: two hops\r\n');
  const u = await waitFor('delivery of the UTF-8 recipient', got(utf8Hop, 'jörg@utf8-hop.test'), 20_000);
  const p = await waitFor('delivery of the ASCII recipient', got(plainHop, 'b@plain-hop.test'), 20_000);
  assert.match(u.mailParams, /SMTPUTF8/);
  assert.ok(!/SMTPUTF8/i.test(p.mailParams), p.mailParams);
});

test('issue 15 item 2: a UTF-8 header to a hop without SMTPUTF8 bounces 5.6.7', async () => {
  await sendUtf8(['c@plain-hop.test'], 'From: sender@origin.test\r\nSubject: Grüße\r\n');
  const dsn = await waitFor('the 5.6.7 DSN at the sender', () => home.messages.find((m) => m.mailFrom === '' && m.data.toString('utf8').includes('c@plain-hop.test')), 20_000);
  assert.match(dsn.data.toString('utf8'), /Status: 5\.6\.7/);
  assert.equal(got(plainHop, 'c@plain-hop.test')(), undefined);
});
