/**
 * Local delivery end to end (issue 10 section 1): a real `postline serve` with `local.routes` and
 * `local.aliases`, real SMTP clients (swaks, the raw client), real files and Postfix's smtp-sink.
 *
 * - maildir: corpus messages land in new/ byte for byte (LF), with Return-Path and Delivered-To;
 * - reject mode: 550 5.1.1 at RCPT; hold mode: queued held, delivered after `queue release`;
 * - bounce mode: accepted, then a DSN (5.1.1) reaches the sender;
 * - an alias fans out to a Maildir and to smtp-sink, ORCPT kept;
 * - an alias loop in the configuration stops `postline serve` with an error naming the loop.
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PostlineProcess, runCli } from '../helpers/postline-process.js';
import { RawSmtp } from '../helpers/raw-smtp.js';
import { SmtpSink, SMTP_SINK } from '../helpers/smtp-sink.js';
import { waitFor } from '../helpers/net.js';
import { corpusAvailable, loadCorpus } from '../helpers/corpus.js';

const cleanups: Array<() => Promise<void>> = [];
after(async () => { for (const c of cleanups.reverse()) await c().catch(() => {}); });

let pl: PostlineProcess;
let sink: SmtpSink;
let mail: string;

before(async () => {
  sink = await new SmtpSink().start();
  cleanups.push(() => sink.cleanup());
  pl = new PostlineProcess({});
  mail = join(pl.dir, 'mail');
  pl.configOverride = {
    delivery: {
      routes: [{ domain: 'far.test', host: '127.0.0.1', port: sink.port, tls: 'none' }, { domain: 'origin.test', host: '127.0.0.1', port: sink.port, tls: 'none' }],
      retry: { initialMs: 60_000 }, scanIntervalMs: 100,
    },
    local: {
      routes: [
        { match: 'maildir.test', transport: 'maildir', target: join(mail, '{domain}', '{local}') },
        { match: 'closed.test', mode: 'reject' },
        { match: 'held.test', mode: 'hold', transport: 'maildir', target: join(mail, 'held', '{local}') },
        { match: 'gone.test', mode: 'bounce' },
      ],
      aliases: { 'team@maildir.test': ['bob@maildir.test', 'ext@far.test', 'team@maildir.test'] },
    },
  };
  cleanups.push(() => pl.cleanup());
  await pl.start();
});

/** The files in a Maildir's new/ (names sorted), [] while it does not exist. */
function newFiles(box: string): string[] {
  const d = join(box, 'new');
  return existsSync(d) ? readdirSync(d).sort() : [];
}
const lf = (b: Buffer) => Buffer.from(b.toString('latin1').replace(/\r\n/g, '\n'), 'latin1');

async function send(from: string, rcpts: string[], data: Buffer) {
  const { c } = await RawSmtp.open(pl.port());
  try {
    await c.ehlo();
    return await c.send(from, rcpts, data, /[\x80-\xff]/.test(data.toString('latin1')) ? 'BODY=8BITMIME' : '');
  } finally {
    await c.quit().catch(() => {});
  }
}

test('maildir: corpus messages land in new/, Return-Path and Delivered-To on top, the message byte for byte (LF)', { skip: !corpusAvailable() && 'no corpus' }, async () => {
  const picks = loadCorpus().filter((m) => m.name.startsWith('mime/') && !m.smtputf8).slice(0, 3);
  assert.equal(picks.length, 3);
  for (const [i, m] of picks.entries()) {
    const box = join(mail, 'maildir.test', `user${i}`);
    const r = await send('alice@origin.test', [`User${i}@Maildir.test`], m.data);
    assert.equal(r.final?.code, 250, `${m.name}: ${r.final?.text}`);
    const [name] = await waitFor(`${m.name} in ${box}/new`, () => (newFiles(box).length ? newFiles(box) : undefined), 20_000);
    const file = readFileSync(join(box, 'new', name!));
    assert.match(name!, /^\d+\.M\d+P\d+Q\d+\.[^,]+,S=\d+$/);
    assert.equal(Number(/,S=(\d+)$/.exec(name!)![1]), file.length);
    const text = file.toString('latin1');
    assert.ok(text.startsWith(`Return-Path: <alice@origin.test>\nDelivered-To: User${i}@Maildir.test\nReceived: from client.test`), text.slice(0, 200));
    const sent = lf(m.data.subarray(-2).toString('latin1') === '\r\n' ? m.data : Buffer.concat([m.data, Buffer.from('\r\n')]));
    assert.ok(file.subarray(file.length - sent.length).equals(sent), `${m.name}: the message as sent, byte for byte`);
    assert.deepEqual(readdirSync(join(box, 'tmp')), []);
  }
  await waitFor('the queue to empty', async () => (await pl.cli(['queue', 'list', '--json'])).stdout.trim() === '[]', 20_000, 200);
});

test('reject mode: 550 5.1.1 at RCPT, the other recipients accepted', async () => {
  const r = await send('alice@origin.test', ['x@closed.test', 'carol@maildir.test'], Buffer.from('Subject: reject\r\n\r\nhi\r\n'));
  assert.equal(r.rcpts[0]!.code, 550);
  assert.match(r.rcpts[0]!.text, /^550 5\.1\.1 <x@closed\.test>: recipient rejected by local route/);
  assert.equal(r.rcpts[1]!.code, 250);
  assert.equal(r.final?.code, 250);
  await waitFor('carol\'s file', () => newFiles(join(mail, 'maildir.test', 'carol')).length === 1, 20_000);
});

test('hold mode: queued held with message.held, delivered once `postline queue release` lets it go', async () => {
  const r = await send('alice@origin.test', ['dan@held.test'], Buffer.from('Subject: held\r\n\r\nwait for me\r\n'));
  assert.equal(r.final?.code, 250);
  const id = /queued as (\S+)/.exec(r.final!.text)![1]!;
  const list = JSON.parse((await pl.cli(['queue', 'list', '--json'])).stdout) as { id: string; held: boolean }[];
  assert.deepEqual(list.filter((m) => m.id === id).map((m) => m.held), [true]);
  const evs = (await pl.cli(['events', '--json', '--queue-id', id])).stdout.trim().split('\n').map((l) => JSON.parse(l) as { type: string; reason?: string });
  assert.deepEqual(evs.map((e) => e.type), ['message.received', 'message.held']);
  assert.equal(evs[1]!.reason, 'local route');
  await new Promise((res) => setTimeout(res, 500));
  const box = join(mail, 'held', 'dan');
  assert.deepEqual(newFiles(box), [], 'nothing delivered while held');
  const rel = await pl.cli(['queue', 'release', id]);
  assert.equal(rel.code, 0, rel.stderr);
  await waitFor('the released message in its Maildir', () => newFiles(box).length === 1, 20_000);
  assert.match(readFileSync(join(box, 'new', newFiles(box)[0]!), 'latin1'), /\nwait for me\n$/);
});

test('bounce mode: accepted, then a DSN (5.1.1, mailbox unavailable) reaches the sender', { skip: !SMTP_SINK && 'no smtp-sink' }, async () => {
  const r = await send('erin@origin.test', ['x@gone.test'], Buffer.from('Subject: to be bounced\r\n\r\nhi\r\n'));
  assert.equal(r.rcpts[0]!.code, 250);
  assert.equal(r.final?.code, 250);
  const dsn = await waitFor('the DSN at the sender', () => sink.messages().find((m) => /^To: <?erin@origin\.test>?/m.test(m.data.toString('latin1'))), 20_000);
  const text = dsn.data.toString('latin1');
  assert.match(text, /Content-Type: multipart\/report; report-type=delivery-status/i);
  assert.match(text, /Final-Recipient: rfc822; ?x@gone\.test/i);
  assert.match(text, /Status: 5\.1\.1/);
  assert.match(text, /mailbox unavailable \(local route\)/);
});

test('an alias fans out to a Maildir and to smtp-sink (swaks); the alias keeps its own mailbox; ORCPT kept', { skip: !SMTP_SINK && 'no smtp-sink' }, async () => {
  const r = spawnSync('swaks', ['--hide-all', '--timeout', '20', '--server', `127.0.0.1:${pl.port()}`, '--from', 'frank@origin.test', '--to', 'team@maildir.test',
    '--header', 'Subject: team news'], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr + r.stdout);
  const bob = join(mail, 'maildir.test', 'bob');
  const team = join(mail, 'maildir.test', 'team');
  await waitFor('bob\'s and team\'s files', () => newFiles(bob).length === 1 && newFiles(team).length === 1, 20_000);
  const b = readFileSync(join(bob, 'new', newFiles(bob)[0]!), 'latin1');
  assert.match(b, /^Return-Path: <frank@origin\.test>\nDelivered-To: bob@maildir\.test\nX-Original-To: team@maildir\.test\n/);
  assert.match(readFileSync(join(team, 'new', newFiles(team)[0]!), 'latin1'), /^Return-Path: <frank@origin\.test>\nDelivered-To: team@maildir\.test\nReceived: /);
  const ext = await waitFor('the copy at smtp-sink', () => sink.messages().find((m) => m.data.toString('latin1').includes('Subject: team news')), 20_000);
  assert.match(ext.rcptArgs.join(' '), /ORCPT=rfc822;team@maildir\.test/i);
});

test('an alias loop in the configuration stops the start with an error naming it', async () => {
  const file = join(pl.dir, 'loop.yaml');
  writeFileSync(file, [
    'listeners: [{ name: mx, address: 127.0.0.1, port: 1 }]',
    `dataDir: ${join(pl.dir, 'loop-var')}`,
    'local:',
    '  aliases:',
    '    "a@maildir.test": ["b@maildir.test"]',
    '    "b@maildir.test": ["c@far.test", "a@maildir.test"]',
  ].join('\n'));
  const r = await runCli(['serve', '--config', file]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr + r.stdout, /local\.aliases: alias loop: a@maildir\.test -> b@maildir\.test -> a@maildir\.test/);
  const check = await runCli(['config', '--config', file]);
  assert.equal(check.code, 2, 'a configuration error');
  assert.match(check.stderr, /alias loop: a@maildir\.test -> b@maildir\.test -> a@maildir\.test/);
});
