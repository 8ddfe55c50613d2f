/**
 * The event log end to end (issue 7 sections 1 and 2): real `postline serve`, mail over SMTP to a
 * capturing next hop and one refused recipient, then `postline events` (a separate process on a
 * read-only side connection, while the server runs): the message's events in order with its
 * Message-ID, tags and metadata (X-Postline-* from a trusted client, removed from the message), the
 * rejection, the filters (--type with a prefix, --queue-id, --since), --json, and --follow showing an
 * event committed after it started. Bad arguments exit 2 with a reason.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { PostlineProcess, POSTLINE_BIN } from '../helpers/postline-process.js';
import { startCapturePeer, type CapturePeer } from '../helpers/capture-peer.js';
import { RawSmtp } from '../helpers/raw-smtp.js';
import { waitFor } from '../helpers/net.js';
import type { StoredEvent } from '../../src/events/record.js';

const cleanups: Array<() => Promise<void>> = [];
after(async () => { for (const c of cleanups.reverse()) await c().catch(() => {}); });

let peer: CapturePeer;
let pl: PostlineProcess;

async function setup(): Promise<void> {
  if (pl) return;
  peer = await startCapturePeer();
  cleanups.push(() => peer.close());
  pl = new PostlineProcess({
    config: {
      // 127.0.0.1 is trusted, so it may relay and set metadata; 127.0.0.2 is not (relay denied).
      delivery: { routes: [{ domain: 'example.com', host: '127.0.0.1', port: peer.port, tls: 'none' }], scanIntervalMs: 100 },
      relay: { trustedNetworks: ['127.0.0.1/32'] },
    },
  });
  cleanups.push(() => pl.cleanup());
  await pl.start();
}

async function send(subject: string, extra = ''): Promise<string> {
  const { c } = await RawSmtp.open(pl.port());
  try {
    await c.ehlo();
    assert.equal((await c.cmd('MAIL FROM:<alice@origin.test>')).code, 250);
    assert.equal((await c.cmd('RCPT TO:<bob@example.com>')).code, 250);
    assert.equal((await c.cmd('DATA')).code, 354);
    const r = await c.cmd(`Subject: ${subject}\r\nFrom: alice@origin.test\r\nMessage-ID: <${subject}@origin.test>\r\n${extra}\r\nhello\r\n.`);
    assert.equal(r.code, 250, r.text);
    return /queued as (\S+)/.exec(r.text)?.[1] ?? '';
  } finally {
    await c.quit();
  }
}

const events = async (...args: string[]): Promise<StoredEvent[]> => {
  const r = await pl.cli(['events', '--json', ...args]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as StoredEvent);
};

test('postline events: a message\'s history with its metadata, filters, --json', async () => {
  await setup();
  const id = await send('ev-one', 'X-Postline-Tags: ["welcome"]\r\nX-Postline-Metadata: {"user":"42"}\r\n');
  assert.ok(id);
  const m = await waitFor('the message at the next hop', () => peer.messages.find((x) => x.data.toString('latin1').includes('Subject: ev-one')), 20_000, 50);
  assert.doesNotMatch(m.data.toString('latin1'), /X-Postline/i, 'our fields never leave Postline');
  // A refused recipient: relaying from an untrusted client.
  const { c } = await RawSmtp.open(pl.port(), { localAddress: '127.0.0.2' });
  await c.ehlo();
  await c.cmd('MAIL FROM:<mallory@origin.test>');
  const refused = await c.cmd('RCPT TO:<carol@example.com>');
  await c.quit();
  assert.equal(refused.code, 554, refused.text);
  const mine = await waitFor('the delivered event', async () => {
    const evs = await events('--queue-id', id);
    return evs.some((e) => e.type === 'recipient.delivered') ? evs : undefined;
  }, 20_000, 200);
  assert.deepEqual(mine.map((e) => e.type), ['message.received', 'recipient.delivered']);
  for (const e of mine) {
    assert.equal(e.messageId, '<ev-one@origin.test>');
    assert.deepEqual(e.tags, ['welcome']);
    assert.deepEqual(e.metadata, { user: '42' });
  }
  const d = mine[1]!;
  assert.equal(d.recipient, 'bob@example.com');
  assert.equal(d.dsn, '2.0.0');
  assert.equal(d.attempt, 1);
  assert.match(d.remoteHost ?? '', /\[127\.0\.0\.1\]:\d+$/);
  assert.ok(mine[0]!.id < d.id);
  assert.equal(mine[0]!.origin?.listener, 'mx');
  assert.equal(d.origin?.listener, 'mx', 'the listener is in every event about the message');
  const byPrefix = await events('--type', 'recipient.*', '--since', '1');
  assert.ok(byPrefix.length >= 1 && byPrefix.every((e) => e.type.startsWith('recipient.')));
  const rej = await waitFor('the rejection event', async () => (await events('--type', 'message.rejected')).find((e) => e.recipient === 'carol@example.com'), 10_000, 200);
  assert.equal(rej.reason, 'rcpt');
  assert.equal(rej.mailFrom, 'mallory@origin.test');
  assert.equal(rej.origin?.clientAddress, '127.0.0.2');
  assert.match(rej.reply ?? '', /^554 5\.7\.1 /);
  const text = await pl.cli(['events', '--queue-id', id]);
  assert.match(text.stdout, new RegExp(`recipient\\.delivered ${id} to=<bob@example\\.com> relay=`));
  const bad = await pl.cli(['events', '--since', 'yesterday-ish']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--since/);
  assert.equal((await pl.cli(['events', '--queue-id', 'nope'])).code, 2);
});

test('postline events --follow shows events committed after it started', async () => {
  await setup();
  const child = spawn(process.execPath, [POSTLINE_BIN, 'events', '--follow', '--json', '--poll-ms', '50', '-n', '0', '--config', pl.configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  cleanups.push(async () => { child.kill('SIGKILL'); });
  await new Promise((r) => setTimeout(r, 500));
  const id = await send('ev-follow');
  await waitFor('the followed delivered event', () => out.split('\n').filter(Boolean).map((l) => JSON.parse(l) as StoredEvent)
    .find((e) => e.queueId === id && e.type === 'recipient.delivered'), 20_000, 50);
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  child.kill('SIGINT');
  assert.equal(await exited, 0, 'Ctrl-C ends --follow cleanly');
});
