import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { buildDsn, dsnKind, hasEightBit } from '../../../src/bounce/dsn.js';
import { typedAddress, utf8AddrXtext } from '../../../src/bounce/dsn-fields.js';
import type { DsnInput, DsnRecipientReport } from '../../../src/bounce/types.js';
import { getHeaderFields, headerSection, parseHeaderFields } from '../../../src/rfc5322/header.js';

const require = createRequire(import.meta.url);
// mailsplit ships no types; it is used here only to check the MIME structure independently.
const { Splitter } = require('mailsplit') as { Splitter: new (o: object) => NodeJS.ReadWriteStream };

interface ParsedNode { contentType: string; headers: string; body: Buffer }

/** Splits a message into MIME nodes with mailsplit (embedded messages kept whole). */
async function mimeNodes(msg: Buffer): Promise<ParsedNode[]> {
  const s = new Splitter({ ignoreEmbedded: true });
  const nodes: { contentType: string; headers: string; body: Buffer[] }[] = [];
  const done = new Promise<void>((resolve, reject) => { s.on('end', resolve); s.on('error', reject); });
  s.on('data', (d: { type: string; contentType?: string; value?: Buffer; getHeaders?: () => Buffer }) => {
    if (d.type === 'node') nodes.push({ contentType: d.contentType ?? '', headers: d.getHeaders!().toString('utf8'), body: [] });
    else if (d.type === 'body') nodes[nodes.length - 1].body.push(d.value!);
  });
  s.end(msg);
  await done;
  return nodes.map((n) => ({ contentType: n.contentType, headers: n.headers, body: Buffer.concat(n.body) }));
}

/** Parses a delivery-status body into blocks of [name, value] (names lower-cased, values unfolded). */
function statusBlocks(body: Buffer): Map<string, string>[] {
  return body.toString('utf8').replace(/\r\n$/, '').split('\r\n\r\n').map((block) => {
    const m = new Map<string, string>();
    for (const f of parseHeaderFields(block + '\r\n')) m.set(f.name.toLowerCase(), f.value.trim());
    return m;
  });
}

const ORIGINAL = Buffer.from('From: Alice <alice@example.com>\r\nTo: bob@example.net\r\nSubject: hello\r\nMessage-ID: <orig@example.com>\r\n\r\nHello Bob.\r\n');

function input(over: Partial<DsnInput> = {}, rcpts?: DsnRecipientReport[]): DsnInput {
  return {
    reportingMta: 'mx.postline.test', to: 'alice@example.com', queueId: '01HF0000000000ABCD',
    arrivedAt: 1_700_000_000_000, now: 1_700_000_600_000, ret: 'FULL', original: ORIGINAL,
    recipients: rcpts ?? [{
      finalRecipient: 'bob@example.net', action: 'failed', status: '5.1.1', remoteMta: 'mx.example.net',
      diagnostic: '550 5.1.1 <bob@example.net>: Recipient address rejected: User unknown', remote: true,
      lastAttemptAt: 1_700_000_500_000,
    }],
    ...over,
  };
}

function checkLines(msg: Buffer, sevenBitUntil: number): void {
  const s = msg.toString('latin1');
  assert.ok(!/[^\r]\n/.test(s) && !/\r[^\n]/.test(s), 'CRLF line endings only');
  for (const line of s.split('\r\n')) assert.ok(line.length <= 998, 'line over 998');
  assert.ok(!hasEightBit(msg.subarray(0, sevenBitUntil)), '7-bit before the original');
}

test('failure DSN: headers, three parts, per-message and per-recipient fields', async () => {
  const msg = buildDsn(input({ envid: 'ENV-42', receivedFromMta: 'dns; client.example.org ([192.0.2.1])' }));
  const top = parseHeaderFields(headerSection(msg));
  const get = (n: string) => getHeaderFields(top, n)[0]?.value.trim();
  assert.equal(get('from'), 'Mail Delivery System <MAILER-DAEMON@mx.postline.test>');
  assert.equal(get('to'), '<alice@example.com>');
  assert.equal(get('subject'), 'Undelivered Mail Returned to Sender');
  assert.equal(get('date'), 'Tue, 14 Nov 2023 22:23:20 +0000');
  assert.match(get('message-id') ?? '', /^<01HF0000000000ABCD\.[0-9a-f]+@mx\.postline\.test>$/);
  assert.equal(get('auto-submitted'), 'auto-replied');
  assert.equal(get('mime-version'), '1.0');
  assert.match(get('content-type') ?? '', /^multipart\/report; report-type=delivery-status;\s+boundary="[^"]+"$/);

  const nodes = await mimeNodes(msg);
  assert.deepEqual(nodes.map((n) => n.contentType), ['multipart/report', 'text/plain', 'message/delivery-status', 'message/rfc822']);
  assert.match(nodes[1].body.toString(), /bob@example\.net.*failed/);
  assert.match(nodes[1].body.toString(), /User unknown/);
  assert.ok(nodes[3].body.equals(ORIGINAL), 'original attached unchanged');

  const [perMsg, perRcpt, ...rest] = statusBlocks(nodes[2].body);
  assert.equal(rest.length, 0);
  assert.equal(perMsg.get('reporting-mta'), 'dns; mx.postline.test');
  assert.equal(perMsg.get('x-postline-queue-id'), '01HF0000000000ABCD');
  assert.equal(perMsg.get('original-envelope-id'), 'ENV-42');
  assert.equal(perMsg.get('received-from-mta'), 'dns; client.example.org ([192.0.2.1])');
  assert.equal(perMsg.get('arrival-date'), 'Tue, 14 Nov 2023 22:13:20 +0000');
  assert.equal(perRcpt.get('original-recipient'), undefined, 'no ORCPT given');
  assert.equal(perRcpt.get('final-recipient'), 'rfc822; bob@example.net');
  assert.equal(perRcpt.get('action'), 'failed');
  assert.equal(perRcpt.get('status'), '5.1.1');
  assert.equal(perRcpt.get('remote-mta'), 'dns; mx.example.net');
  assert.equal(perRcpt.get('diagnostic-code'), 'smtp; 550 5.1.1 <bob@example.net>: Recipient address rejected: User unknown');
  assert.equal(perRcpt.get('last-attempt-date'), 'Tue, 14 Nov 2023 22:21:40 +0000');
  assert.equal(perRcpt.get('will-retry-until'), undefined);
  checkLines(msg, msg.length);
});

test('ORCPT only when given; local diagnostics use x-postline; envid and received-from omitted when absent', async () => {
  const msg = buildDsn(input({}, [
    { finalRecipient: 'a@example.net', originalRecipient: { addrType: 'rfc822', address: 'A@Example.NET' }, action: 'failed', status: '5.4.4', diagnostic: 'Host or domain name not found', remote: false },
    { finalRecipient: 'b@example.net', action: 'failed', status: '5.1.1' },
  ]));
  const nodes = await mimeNodes(msg);
  const [perMsg, a, b] = statusBlocks(nodes[2].body);
  assert.equal(perMsg.get('original-envelope-id'), undefined);
  assert.equal(perMsg.get('received-from-mta'), undefined);
  assert.equal(a.get('original-recipient'), 'rfc822; A@Example.NET');
  assert.equal(a.get('diagnostic-code'), 'x-postline; Host or domain name not found');
  assert.equal(a.get('remote-mta'), undefined);
  assert.equal(b.get('original-recipient'), undefined);
  assert.equal(b.get('diagnostic-code'), undefined);
});

test('RET HDRS attaches text/rfc822-headers with the header only; FULL attaches message/rfc822', async () => {
  const hdrs = await mimeNodes(buildDsn(input({ ret: 'HDRS' })));
  assert.equal(hdrs[3].contentType, 'text/rfc822-headers');
  assert.equal(hdrs[3].body.toString(), headerSection(ORIGINAL).toString());
  assert.ok(!hdrs[3].body.includes('Hello Bob'));
  const full = await mimeNodes(buildDsn(input({ ret: 'FULL' })));
  assert.equal(full[3].contentType, 'message/rfc822');
  assert.ok(full[3].body.includes('Hello Bob'));
});

test('delay and success reports: subjects, Will-Retry-Until only for delayed', async () => {
  const delayed = buildDsn(input({}, [{ finalRecipient: 'b@example.net', action: 'delayed', status: '4.4.1', diagnostic: 'connection timed out', lastAttemptAt: 1_700_000_500_000, willRetryUntil: 1_700_432_000_000 }]));
  assert.equal(getHeaderFields(parseHeaderFields(headerSection(delayed)), 'subject')[0].value.trim(), 'Delayed Mail (still being retried)');
  const dBlocks = statusBlocks((await mimeNodes(delayed))[2].body);
  assert.equal(dBlocks[1].get('action'), 'delayed');
  assert.equal(dBlocks[1].get('will-retry-until'), 'Sun, 19 Nov 2023 22:13:20 +0000');

  const ok = buildDsn(input({}, [{ finalRecipient: 'b@example.net', action: 'delivered', status: '2.0.0', remoteMta: 'mx.example.net', willRetryUntil: 5 }]));
  assert.equal(getHeaderFields(parseHeaderFields(headerSection(ok)), 'subject')[0].value.trim(), 'Successful Mail Delivery Report');
  assert.equal(statusBlocks((await mimeNodes(ok))[2].body)[1].get('will-retry-until'), undefined);
  assert.equal(dsnKind([{ action: 'relayed' }]), 'success');
  assert.equal(dsnKind([{ action: 'delayed' }, { action: 'failed' }]), 'failure');
});

test('smtputf8 original: message/global-delivery-status, message/global and utf-8 address types', async () => {
  const original = Buffer.from('From: José <josé@exämple.com>\r\nSubject: ¡hola!\r\n\r\nCuerpo\r\n', 'utf8');
  const msg = buildDsn(input({ smtputf8: true, to: 'josé@exämple.com', original }, [
    { finalRecipient: 'bøb@exämple.net', originalRecipient: { addrType: 'utf-8', address: 'Bøb@exämple.net' }, action: 'failed', status: '5.1.1', diagnostic: '550 5.1.1 unknown user bøb', remote: true },
  ]));
  const top = parseHeaderFields(headerSection(msg).toString('utf8'));
  assert.match(getHeaderFields(top, 'content-type')[0].value, /report-type=global-delivery-status/);
  const nodes = await mimeNodes(msg);
  assert.deepEqual(nodes.map((n) => n.contentType), ['multipart/report', 'text/plain', 'message/global-delivery-status', 'message/global']);
  const [, r] = statusBlocks(nodes[2].body);
  assert.equal(r.get('final-recipient'), 'utf-8; bøb@exämple.net');
  assert.equal(r.get('original-recipient'), 'utf-8; Bøb@exämple.net');
  assert.equal(r.get('diagnostic-code'), 'smtp; 550 5.1.1 unknown user bøb');
  assert.ok(nodes[3].body.equals(original));
  assert.match(nodes[3].headers, /Content-Transfer-Encoding: 8bit/);

  const hdrs = await mimeNodes(buildDsn(input({ smtputf8: true, original, ret: 'HDRS' })));
  assert.equal(hdrs[3].contentType, 'message/global-headers');
});

test('7-bit outside the original, lines <= 998, long diagnostics folded and clipped', async () => {
  const long = `550 ${'x'.repeat(3000)} and ${'word '.repeat(400)}`;
  const original = Buffer.from(`Subject: caf\xe9\r\n\r\n${'y'.repeat(1500)}\r\n`, 'latin1');
  const msg = buildDsn(input({ original, to: 'alice@example.com\r\nBcc: evil@example.com' }, [
    { finalRecipient: 'b@example.net', action: 'failed', status: 'bogus', diagnostic: `${long}\r\nInjected: header\u00e9`, remote: true },
  ]));
  const nodes = await mimeNodes(msg);
  const bodyStart = msg.indexOf(original);
  assert.ok(bodyStart > 0);
  checkLines(msg.subarray(0, bodyStart), bodyStart);
  assert.match(nodes[0].headers, /Content-Transfer-Encoding: 8bit/, 'multipart declares the 8-bit original');
  const top = parseHeaderFields(headerSection(msg));
  assert.equal(getHeaderFields(top, 'bcc').length, 0, 'no header injection through To');
  const [, r] = statusBlocks(nodes[2].body);
  assert.equal(r.get('status'), '5.0.0', 'invalid status replaced by the default for the action');
  assert.ok((r.get('diagnostic-code') ?? '').length < 1000);
  assert.equal(r.get('injected'), undefined);
});

test('address helpers: utf-8-addr-xtext and typed addresses', () => {
  assert.equal(utf8AddrXtext('bø+b=@x'), 'b\\x{F8}\\x{2B}b\\x{3D}@x');
  assert.equal(typedAddress('rfc822', 'a@b', false), 'rfc822; a@b');
  assert.equal(typedAddress('rfc822', 'ø@b', false), 'utf-8; \\x{F8}@b');
  assert.equal(typedAddress('rfc822', 'ø@b', true), 'utf-8; ø@b');
  assert.throws(() => buildDsn(input({}, [])));
});
