/**
 * Duplicate recipients (issue 15 item 3): the same RCPT TO given twice in one transaction is
 * queued once and reaches the next hop once (like Postfix's cleanup duplicate filter: the whole
 * address compared in lower case, together with NOTIFY and ORCPT); every RCPT still gets 250.
 * Recipients that differ in NOTIFY or ORCPT are kept. Real `postline serve`, real sockets, a
 * capturing next hop.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { PostlineProcess } from '../helpers/postline-process.js';
import { startCapturePeer, type CapturePeer } from '../helpers/capture-peer.js';
import { RawSmtp, type Reply } from '../helpers/raw-smtp.js';
import { waitFor } from '../helpers/net.js';

const cleanups: Array<() => Promise<void>> = [];
after(async () => { for (const c of cleanups.reverse()) await c().catch(() => {}); });

let peer: CapturePeer;
let pl: PostlineProcess;

async function setup(): Promise<void> {
  if (pl) return;
  peer = await startCapturePeer();
  cleanups.push(() => peer.close());
  pl = new PostlineProcess({ config: { delivery: { relayhost: { host: '127.0.0.1', port: peer.port, tls: 'none' }, retry: { initialMs: 60_000 } } } });
  cleanups.push(() => pl.cleanup());
  await pl.start();
}

/** One transaction with RCPT lines given verbatim (parameters included); returns every reply. */
async function transaction(rcptLines: string[], subject: string): Promise<{ rcpts: Reply[]; final: Reply }> {
  const { c } = await RawSmtp.open(pl.port());
  try {
    await c.ehlo();
    assert.equal((await c.cmd('MAIL FROM:<alice@origin.test>')).code, 250);
    const rcpts: Reply[] = [];
    for (const l of rcptLines) rcpts.push(await c.cmd(l));
    assert.equal((await c.cmd('DATA')).code, 354);
    const final = await c.cmd(`Subject: ${subject}\r\nFrom: alice@origin.test\r\n\r\nhello\r\n.`);
    return { rcpts, final };
  } finally {
    await c.quit();
  }
}

async function captured(subject: string): Promise<{ recipients: string[]; data: string }> {
  const m = await waitFor(`the message "${subject}" at the next hop`, () => peer.messages.find((x) => x.data.toString('latin1').includes(`Subject: ${subject}\r\n`)), 20_000, 50);
  return { recipients: m.recipients, data: m.data.toString('latin1') };
}

test('the same recipient given twice (and in other case) is relayed once; each RCPT got 250', async () => {
  await setup();
  const r = await transaction(['RCPT TO:<bob@example.com>', 'RCPT TO:<bob@example.com>', 'RCPT TO:<Bob@Example.COM>'], 'dup-plain');
  assert.deepEqual(r.rcpts.map((x) => x.code), [250, 250, 250]);
  assert.equal(r.final.code, 250, r.final.text);
  const m = await captured('dup-plain');
  assert.deepEqual(m.recipients, ['bob@example.com'], 'one RCPT reaches the next hop, the first spelling');
  assert.match(m.data, /^Received: [^]*?\r\n\tfor <bob@example\.com>;/, 'one recipient left: the Received field names it');
  await waitFor('the queue to empty', async () => (await pl.cli(['queue', 'list', '--json'])).stdout.trim() === '[]', 20_000, 200);
  const queued = pl.logs().find((l) => l.msg === 'message queued' && Array.isArray(l.recipients) && (l.recipients as string[]).includes('bob@example.com'));
  assert.deepEqual(queued?.recipients, ['bob@example.com'], 'queued once');
});

test('a quoted local part is the same mailbox as its unquoted form: relayed once', async () => {
  await setup();
  const r = await transaction(['RCPT TO:<erin@example.com>', 'RCPT TO:<"erin"@example.com>', 'RCPT TO:<"e\\rin"@Example.com>'], 'dup-quoted');
  assert.deepEqual(r.rcpts.map((x) => x.code), [250, 250, 250]);
  assert.equal(r.final.code, 250, r.final.text);
  const m = await captured('dup-quoted');
  assert.deepEqual(m.recipients, ['erin@example.com']);
});

test('recipients that differ in NOTIFY or ORCPT are all kept', async () => {
  await setup();
  const r = await transaction([
    'RCPT TO:<carol@example.com> NOTIFY=SUCCESS',
    'RCPT TO:<carol@example.com> NOTIFY=FAILURE',
    'RCPT TO:<carol@example.com> NOTIFY=FAILURE', // a true duplicate of the one before: dropped
    'RCPT TO:<dave@example.com> ORCPT=rfc822;dave@old.example',
    'RCPT TO:<dave@example.com> ORCPT=rfc822;d.ave@old.example',
    'RCPT TO:<Dave@Example.com> ORCPT=rfc822;Dave@Old.Example', // same as the first once lower-cased: dropped
  ], 'dup-params');
  assert.deepEqual(r.rcpts.map((x) => x.code), [250, 250, 250, 250, 250, 250]);
  assert.equal(r.final.code, 250, r.final.text);
  const m = await captured('dup-params');
  assert.deepEqual(m.recipients, ['carol@example.com', 'carol@example.com', 'dave@example.com', 'dave@example.com']);
  assert.doesNotMatch(m.data.slice(0, m.data.indexOf('\r\n\r\n')), /\tfor </, 'several recipients: no `for` clause');
});
