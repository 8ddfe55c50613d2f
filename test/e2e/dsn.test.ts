/**
 * Success DSNs end to end (RFC 3461 5.2.2), through the real `postline serve` process and real
 * sockets: mail with NOTIFY=SUCCESS relayed to a next hop that offers DSN gets no success notice
 * from Postline (the next hop reports); relayed to a hop without DSN it gets exactly one,
 * `Action: relayed`. The sender's domain is routed to a third peer that keeps every DSN.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startRoutedPostline, type PostlineProcess } from '../helpers/postline-process.js';
import { RawSmtp, dotStuff } from '../helpers/raw-smtp.js';
import { waitFor } from '../helpers/net.js';
import { startSmtpPeer, type SmtpPeer } from '../helpers/smtp-peer.js';

let withDsn: SmtpPeer;
let withoutDsn: SmtpPeer;
let home: SmtpPeer;
let pl: PostlineProcess;

before(async () => {
  withDsn = await startSmtpPeer({ extensions: ['PIPELINING', '8BITMIME', 'ENHANCEDSTATUSCODES', 'DSN'] });
  withoutDsn = await startSmtpPeer({ extensions: ['PIPELINING', '8BITMIME', 'ENHANCEDSTATUSCODES'] });
  home = await startSmtpPeer({});
  pl = await startRoutedPostline({ 'dsn-hop.test': withDsn.port, 'plain-hop.test': withoutDsn.port, 'origin.test': home.port });
});

after(async () => {
  await pl?.cleanup();
  await withDsn?.close();
  await withoutDsn?.close();
  await home?.close();
});

/** One message from sender@origin.test to `to` with NOTIFY=SUCCESS; resolves with its queue ID. */
async function sendNotifySuccess(to: string, subject: string): Promise<string> {
  const { c } = await RawSmtp.open(pl.port());
  try {
    await c.ehlo();
    assert.equal((await c.cmd('MAIL FROM:<sender@origin.test>')).code, 250);
    assert.equal((await c.cmd(`RCPT TO:<${to}> NOTIFY=SUCCESS,FAILURE`)).code, 250);
    assert.equal((await c.cmd('DATA')).code, 354);
    c.write(dotStuff(Buffer.from(`From: sender@origin.test\r\nTo: ${to}\r\nSubject: ${subject}\r\n\r\nbody\r\n`)));
    const final = await c.read();
    assert.equal(final.code, 250, final.text);
    return /queued as (\S+)/.exec(final.text)![1]!;
  } finally {
    await c.quit();
  }
}

const dsnsAbout = (rcpt: string) => home.messages().filter((m) => m.mailFrom === '' && m.data.toString('latin1').includes(rcpt));

async function queueEmpty(): Promise<boolean> {
  const r = await pl.cli(['queue', 'list']);
  return /Mail queue is empty/.test(r.stdout);
}

test('issue 15 item 1: NOTIFY=SUCCESS to a hop with DSN: NOTIFY is passed on and the sender gets no DSN from us', async () => {
  await sendNotifySuccess('x@dsn-hop.test', 'to-dsn-hop');
  await waitFor('delivery to the DSN-capable hop', () => withDsn.messages().some((m) => m.rcpts.includes('x@dsn-hop.test')), 20_000);
  const rcpt = withDsn.sessions.flatMap((s) => s.commands).find((c) => c.startsWith('RCPT TO:<x@dsn-hop.test>'));
  assert.match(rcpt ?? '', /NOTIFY=SUCCESS,FAILURE/, 'NOTIFY goes to the next hop');
  // Nothing is left to do once the queue is empty: a DSN, if one was made, would be delivered by then.
  await waitFor('an empty queue', queueEmpty, 20_000);
  assert.equal(dsnsAbout('x@dsn-hop.test').length, 0, 'no success DSN from Postline');
});

test('issue 15 item 1: NOTIFY=SUCCESS to a hop without DSN: exactly one DSN, Action: relayed', async () => {
  await sendNotifySuccess('y@plain-hop.test', 'to-plain-hop');
  await waitFor('delivery to the hop without DSN', () => withoutDsn.messages().some((m) => m.rcpts.includes('y@plain-hop.test')), 20_000);
  await waitFor('the relayed DSN at the sender', () => dsnsAbout('y@plain-hop.test').length > 0, 20_000);
  await waitFor('an empty queue', queueEmpty, 20_000);
  const dsns = dsnsAbout('y@plain-hop.test');
  assert.equal(dsns.length, 1, 'exactly one DSN');
  const text = dsns[0]!.data.toString('latin1');
  assert.match(text, /Action: relayed/);
  assert.ok(!/Action: delivered/.test(text));
  assert.ok(!withoutDsn.sessions.flatMap((s) => s.commands).some((c) => c.includes('NOTIFY=')), 'no DSN parameters to a hop without DSN');
});
