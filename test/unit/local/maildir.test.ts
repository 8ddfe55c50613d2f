/**
 * The maildir agent on a real file system (a temp directory): unique names, the mailbox template,
 * Return-Path / Delivered-To / X-Original-To on top and the body byte for byte (LF and CRLF),
 * the Delivered-To loop, the quota, file system trouble, one file per recipient.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { MaildirAgent } from '../../../src/local/maildir-agent.js';
import { mailboxPath, mailboxUsage, sizeFromName, uniqueName } from '../../../src/local/maildir.js';
import type { DeliveryRecipient, DeliveryRequest } from '../../../src/delivery/types.js';
import type { NextHop } from '../../../src/routing/types.js';

const dirs: string[] = [];
after(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });
function temp(): string {
  const d = mkdtempSync(join(tmpdir(), 'postline-maildir-'));
  dirs.push(d);
  return d;
}

const MSG = Buffer.from('Received: by mx.postline.test\r\nSubject: hello\r\nFrom: a@origin.test\r\n\r\nline one\r\nline two\r\n\r\n.dot line\r\n');

function request(path: string, recipients: DeliveryRecipient[], body: Buffer = MSG, over: Partial<DeliveryRequest> = {}): DeliveryRequest {
  const nextHop: NextHop = { kind: 'maildir', path };
  return {
    queueId: 'Q1', mailFrom: 'alice@origin.test', bodyType: '7BIT', smtputf8: false, size: body.length, recipients, nextHop,
    // Several small chunks, a CR at the end of one of them: the LF conversion must join them.
    openBody: () => Readable.from([body.subarray(0, 7), body.subarray(7, 31), body.subarray(31, 60), body.subarray(60)]),
    ...over,
  };
}
const agent = (quotaBytes = 0, crlf = false) => new MaildirAgent({ config: () => ({ quotaBytes, crlf }) });
const lf = (b: Buffer) => Buffer.from(b.toString('latin1').replace(/\r\n/g, '\n'), 'latin1');

test('unique names: SECONDS.M<usec>P<pid>Q<n>.HOST, never twice in one process', () => {
  const names = new Set<string>();
  for (let i = 0; i < 1000; i++) names.add(uniqueName(1_700_000_000_123.456));
  assert.equal(names.size, 1000);
  const n = uniqueName(1_700_000_000_123.456);
  assert.match(n, new RegExp(`^1700000000\\.M123456P${process.pid}Q\\d+\\.[^/:,]+$`));
  assert.equal(sizeFromName(`${n},S=1234`), 1234);
  assert.equal(sizeFromName(n), undefined);
});

test('the mailbox template: {local}, {domain}, {user}; names that are no directory refused', () => {
  assert.equal(mailboxPath('/m/{domain}/{local}', 'Bob.Smith@Example.TEST'), '/m/example.test/bob.smith');
  assert.equal(mailboxPath('/m/{user}/Maildir', '"bob"@b\u00fccher.example'), '/m/bob@xn--bcher-kva.example/Maildir');
  for (const a of ['"a/b"@x.test', '".."@x.test', '"."@x.test', '"a\\\\b"@x.test']) assert.throws(() => mailboxPath('/m/{local}', a), /cannot name a mailbox/, a);
});

test('delivers one file per recipient into new/: Return-Path, Delivered-To, the body (LF by default, CRLF when asked)', async () => {
  const root = temp();
  const rs = await agent().deliver(request(join(root, '{domain}', '{local}'), [
    { idx: 0, address: 'bob@example.test' },
    { idx: 2, address: 'carol@example.test', orcpt: { addrType: 'rfc822', address: 'sales@example.test' } },
  ]));
  assert.deepEqual(rs.map((r) => [r.idx, r.outcome, r.diagnostic]), [[0, 'delivered', '250 2.0.0 delivered to maildir'], [2, 'delivered', '250 2.0.0 delivered to maildir']]);
  for (const [who, extra] of [['bob', ''], ['carol', 'X-Original-To: sales@example.test\n']] as const) {
    const box = join(root, 'example.test', who);
    assert.deepEqual(readdirSync(join(box, 'tmp')), []);
    assert.deepEqual(readdirSync(join(box, 'cur')), []);
    const files = readdirSync(join(box, 'new'));
    assert.equal(files.length, 1);
    const data = readFileSync(join(box, 'new', files[0]!));
    const want = Buffer.concat([Buffer.from(`Return-Path: <alice@origin.test>\nDelivered-To: ${who}@example.test\n${extra}`), lf(MSG)]);
    assert.deepEqual(data, want);
    assert.equal(sizeFromName(files[0]!), data.length, 'S= is the file size');
  }
  const crlfRoot = temp();
  const [r] = await agent(0, true).deliver(request(crlfRoot, [{ idx: 0, address: 'bob@example.test' }]));
  assert.equal(r!.outcome, 'delivered');
  const f = readdirSync(join(crlfRoot, 'new'));
  assert.deepEqual(readFileSync(join(crlfRoot, 'new', f[0]!)), Buffer.concat([Buffer.from('Return-Path: <alice@origin.test>\r\nDelivered-To: bob@example.test\r\n'), MSG]));
});

test('a message already carrying Delivered-To: the recipient bounces 5.4.6 (mail loop); others are delivered', async () => {
  const root = temp();
  const looped = Buffer.concat([Buffer.from('Delivered-To: <Bob@example.test>\r\n'), MSG]);
  const rs = await agent().deliver(request(join(root, '{local}'), [{ idx: 0, address: 'bob@example.test' }, { idx: 1, address: 'dave@example.test' }], looped));
  assert.equal(rs[0]!.outcome, 'bounced');
  assert.equal(rs[0]!.dsnStatus, '5.4.6');
  assert.match(rs[0]!.diagnostic, /^554 5\.4\.6 .*loop/);
  assert.equal(rs[1]!.outcome, 'delivered');
  assert.equal(existsSync(join(root, 'bob')), false);
});

test('quota: a message that would pass local.maildir.quotaBytes bounces 552 5.2.2; under it, delivered', async () => {
  const root = temp();
  const s = MSG.length + 'Return-Path: <alice@origin.test>\r\nDelivered-To: bob@example.test\r\n'.length; // counted at its stored size
  const a = agent(Math.floor(2.5 * s));
  const one = () => a.deliver(request(root, [{ idx: 0, address: 'bob@example.test' }]));
  assert.equal((await one())[0]!.outcome, 'delivered');
  assert.equal((await one())[0]!.outcome, 'delivered');
  const used = await mailboxUsage(root);
  assert.ok(used > 2 * s - 30 && used < 2 * s, String(used));
  const third = (await one())[0]!;
  assert.equal(third.outcome, 'bounced');
  assert.match(third.diagnostic, /^552 5\.2\.2 .*mailbox full/);
  assert.equal(readdirSync(join(root, 'new')).length, 2);
  // A message moved to cur/ (read by the user) still counts; one without S= counts by its size.
  writeFileSync(join(root, 'cur', 'old:2,S'), Buffer.alloc(10));
  assert.equal(await mailboxUsage(root), used + 10);
});

test('file system trouble defers with the reason (4.3.0); a bad mailbox name bounces 5.1.3; shutdown defers', async () => {
  const root = temp();
  writeFileSync(join(root, 'file'), 'not a directory');
  const [r] = await agent().deliver(request(join(root, 'file', '{local}'), [{ idx: 0, address: 'bob@example.test' }]));
  assert.equal(r!.outcome, 'deferred');
  assert.match(r!.diagnostic, /^451 4\.3\.0 cannot deliver to maildir .*file\/bob: (ENOTDIR|EEXIST)/);
  const [b] = await agent().deliver(request(join(root, '{local}'), [{ idx: 0, address: '"../x"@example.test' }]));
  assert.equal(b!.outcome, 'bounced');
  assert.equal(b!.dsnStatus, '5.1.3');
  const ac = new AbortController();
  ac.abort();
  const [s] = await agent().deliver(request(join(root, '{local}'), [{ idx: 0, address: 'bob@example.test' }], MSG, { signal: ac.signal }));
  assert.equal(s!.outcome, 'deferred');
  const broken = request(join(root, '{local}'), [{ idx: 0, address: 'bob@example.test' }], MSG, {
    openBody: () => new Readable({ read() { this.destroy(new Error('body file gone')); } }),
  });
  const [e] = await agent().deliver(broken);
  assert.equal(e!.outcome, 'deferred');
  assert.match(e!.diagnostic, /body file gone/);
});

test('a body read error in the middle leaves nothing in new/ nor tmp/', async () => {
  const root = temp();
  let n = 0;
  const req = request(root, [{ idx: 0, address: 'bob@example.test' }], MSG, {
    // The first open (the Delivered-To check) reads the header; the second fails after one chunk.
    openBody: () => (n++ === 0 ? Readable.from([MSG]) : new Readable({
      read() {
        if (this.readableLength === 0 && !(this as { sent?: boolean }).sent) { (this as { sent?: boolean }).sent = true; this.push(MSG.subarray(0, 40)); return; }
        this.destroy(new Error('disk read error'));
      },
    })),
  });
  const [r] = await agent().deliver(req);
  assert.equal(r!.outcome, 'deferred');
  assert.deepEqual(readdirSync(join(root, 'new')), []);
  assert.deepEqual(readdirSync(join(root, 'tmp')), []);
});
