import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { buildDsn } from '../../../src/bounce/dsn.js';
import type { DsnInput } from '../../../src/bounce/types.js';
import { configSchema } from '../../../src/config/schema.js';
import { DEFAULT_FEEDBACK_LIMITS, feedbackLimits, parseBounce } from '../../../src/feedback/index.js';

const ORIGINAL = Buffer.from([
  'From: Alice <alice@example.com>', 'To: bob@example.net', 'Subject: =?UTF-8?Q?caf=C3=A9?=',
  'Message-ID: <orig.1@example.com>', 'X-Postline-Queue-Id: 0A1B2C3D4E5F', 'Date: Tue, 14 Nov 2023 22:00:00 +0000',
  '', 'Hello Bob.', '',
].join('\r\n'));

function dsnInput(over: Partial<DsnInput> = {}): DsnInput {
  return {
    reportingMta: 'mx.postline.test', to: 'alice@example.com', queueId: '01HF0000000000ABCD', envid: 'ENV-42',
    arrivedAt: 1_700_000_000_000, now: 1_700_000_600_000, ret: 'FULL', original: ORIGINAL,
    recipients: [
      {
        finalRecipient: 'bob@example.net', originalRecipient: { addrType: 'rfc822', address: 'Bob@Example.NET' }, action: 'failed', status: '5.1.1',
        remoteMta: 'mx.example.net', diagnostic: '550 5.1.1 <bob@example.net>: Recipient address rejected: User unknown', remote: true,
        lastAttemptAt: 1_700_000_500_000,
      },
      { finalRecipient: 'carol@example.org', action: 'delayed', status: '4.4.1', diagnostic: 'connect to mx.example.org[192.0.2.9]:25: Connection timed out', willRetryUntil: 1_700_400_000_000 },
    ],
    ...over,
  };
}

test('an RFC 3464 DSN (our own builder): per-message and per-recipient fields, classes, the original', async () => {
  const r = await parseBounce(buildDsn(dsnInput()));
  assert.equal(r.kind, 'dsn');
  assert.equal(r.reportingMta, 'mx.postline.test');
  assert.equal(r.envelopeId, 'ENV-42');
  assert.ok(r.arrivalDate);
  assert.equal(r.recipients.length, 2);
  const [bob, carol] = r.recipients;
  assert.equal(bob!.address, 'bob@example.net');
  assert.equal(bob!.action, 'failed');
  assert.equal(bob!.status, '5.1.1');
  assert.equal(bob!.remoteMta, 'mx.example.net');
  assert.equal(bob!.diagnosticType, 'smtp');
  assert.match(bob!.diagnostic ?? '', /User unknown/);
  assert.equal(bob!.class, 'InvalidRecipient');
  assert.equal(bob!.severity, 'hard');
  assert.equal(bob!.originalRecipient, undefined, 'same address in another case is not repeated');
  assert.equal(carol!.action, 'delayed');
  assert.equal(carol!.class, 'NoAnswerFromHost');
  assert.equal(carol!.severity, 'soft');
  assert.ok(carol!.willRetryUntil);
  assert.equal(r.original?.messageId, '<orig.1@example.com>');
  assert.equal(r.original?.subject, 'café');
  assert.equal(r.original?.headers['x-postline-queue-id'], '0A1B2C3D4E5F');
});

test('RET=HDRS (text/rfc822-headers) and message/global-delivery-status (RFC 6533)', async () => {
  const hdrs = await parseBounce(buildDsn(dsnInput({ ret: 'HDRS' })));
  assert.equal(hdrs.original?.headers['x-postline-queue-id'], '0A1B2C3D4E5F');
  const global = await parseBounce(buildDsn(dsnInput({
    smtputf8: true,
    recipients: [{ finalRecipient: 'jörg@example.de', action: 'failed', status: '5.2.2', diagnostic: '552 5.2.2 Postfach voll (mailbox full)', remote: true }],
  })));
  assert.equal(global.kind, 'dsn');
  assert.equal(global.recipients[0]!.address, 'jörg@example.de');
  assert.equal(global.recipients[0]!.class, 'MailboxFull');
});

test('a success report has no bounce class', async () => {
  const r = await parseBounce(buildDsn(dsnInput({ recipients: [{ finalRecipient: 'bob@example.net', action: 'relayed', status: '2.0.0' }] })));
  assert.equal(r.recipients[0]!.action, 'relayed');
  assert.equal(r.recipients[0]!.class, undefined);
  assert.equal(r.recipients[0]!.severity, undefined);
});

const lf = (s: string): Buffer => Buffer.from(s.replace(/\n/g, '\r\n'));

test('non-standard bounces: qmail, Exim, old Sendmail; recipient and reason from the text', async () => {
  const qmail = await parseBounce(lf(`From: MAILER-DAEMON@mx.example.org
To: alice@example.com
Subject: failure notice

Hi. This is the qmail-send program at mx.example.org.
I'm afraid I wasn't able to deliver your message to the following addresses.
This is a permanent error; I've given up. Sorry it didn't work out.

<bob@example.net>:
192.0.2.1 does not like recipient.
Remote host said: 550 5.1.1 <bob@example.net>... User Unknown
Giving up on 192.0.2.1.

--- Below this line is a copy of the message.

Return-Path: <alice@example.com>
Message-ID: <q.1@example.com>
From: alice@example.com
To: bob@example.net
Subject: hi

hi
`));
  assert.equal(qmail.kind, 'bounce');
  assert.deepEqual(qmail.recipients.map((x) => [x.address, x.status, x.class, x.severity, x.action]), [['bob@example.net', '5.1.1', 'InvalidRecipient', 'hard', 'failed']]);
  assert.equal(qmail.original?.messageId, '<q.1@example.com>');

  const exim = await parseBounce(lf(`From: Mail Delivery System <Mailer-Daemon@mx.example.org>
To: alice@example.com
Subject: Mail delivery failed: returning message to sender
Auto-Submitted: auto-replied

This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  bob@example.net
    host mx.example.net [192.0.2.1]
    SMTP error from remote mail server after RCPT TO:<bob@example.net>:
    552 5.2.2 Mailbox is full
  carol@example.org
    Unrouteable address

------ This is a copy of the message, including all the headers. ------

Message-ID: <e.1@example.com>
From: alice@example.com
`));
  assert.equal(exim.kind, 'bounce', 'Auto-Submitted alone does not make a bounce an auto-reply');
  assert.deepEqual(exim.recipients.map((x) => [x.address, x.class]), [['bob@example.net', 'MailboxFull'], ['carol@example.org', 'BadDomain']]);

  const delayed = await parseBounce(lf(`From: Mail Delivery Subsystem <MAILER-DAEMON@mx.example.org>
To: alice@example.com
Subject: Warning: could not send message for past 4 hours

    **********************************************
    **      THIS IS A WARNING MESSAGE ONLY      **
    **  YOU DO NOT NEED TO RESEND YOUR MESSAGE  **
    **********************************************

The original message was received at Mon, 1 Dec 2025 10:00:00 GMT

   ----- Transcript of session follows -----
<bob@example.net>... Deferred: Connection refused by mx.example.net.
Warning: message still undelivered after 4 hours
Will keep trying until message is 5 days old
`));
  assert.equal(delayed.recipients[0]?.action, 'delayed');
  assert.equal(delayed.recipients[0]?.class, 'NoAnswerFromHost');
  assert.equal(delayed.recipients[0]?.severity, 'soft');
});

test('auto-replies are never bounces; ordinary mail is unknown', async () => {
  const vacation = await parseBounce(lf(`From: Bob <bob@example.net>
To: alice@example.com
Subject: Out of Office: hi
Auto-Submitted: auto-replied

I am away until Monday and could not be delivered to my desk.
`));
  assert.equal(vacation.kind, 'autoreply');
  assert.deepEqual(vacation.recipients, []);
  assert.equal(vacation.autoReply, 'subject');
  const plain = await parseBounce(lf('From: bob@example.net\nTo: alice@example.com\nSubject: lunch?\n\nSee you at noon.\n'));
  assert.equal(plain.kind, 'unknown');
  assert.equal(plain.reason, 'not a delivery report');
});

test('malformed and hostile input: never rejects, kind unknown with a reason, bounded', async () => {
  assert.deepEqual(await parseBounce(Buffer.alloc(0)), { kind: 'unknown', recipients: [], reason: 'empty message' });
  assert.equal((await parseBounce(Buffer.from([0xff, 0xfe, 0x00, 0x01]))).kind, 'unknown');
  assert.equal((await parseBounce('no header at all, just text')).kind, 'unknown');
  // Deep nesting and many parts: the split stops at maxParts.
  let nested = 'Content-Type: text/plain\r\n\r\nend\r\n';
  for (let i = 0; i < 300; i++) nested = `Content-Type: multipart/mixed; boundary="b${i}"\r\n\r\n--b${i}\r\n${nested}--b${i}--\r\n`;
  const deep = await parseBounce(`From: x@example.com\r\n${nested}`, { maxParts: 20 });
  assert.equal(deep.kind, 'unknown');
  // A huge message is cut at maxMessageBytes; the report before the cut is still read.
  const big = Buffer.concat([buildDsn(dsnInput({ original: Buffer.concat([ORIGINAL, Buffer.alloc(3 * 1024 * 1024, 0x61)]) }))]);
  const cut = await parseBounce(big, { maxMessageBytes: 256 * 1024, maxPartBytes: 64 * 1024 });
  assert.equal(cut.truncated, true);
  assert.equal(cut.recipients[0]?.class, 'InvalidRecipient');
  // Pathological HTML and a long line of addresses (linear-time scans: these finish at once).
  const html = await parseBounce(`From: MAILER-DAEMON@x.example\r\nSubject: Undeliverable\r\nContent-Type: text/html\r\n\r\n${'<script'.repeat(20_000)}<p>could not be delivered to</p>`);
  assert.equal(html.kind, 'unknown');
  const many = await parseBounce(`From: MAILER-DAEMON@x.example\r\nSubject: Undeliverable\r\n\r\nThe following addresses failed:\r\n${'<a@b.example> http://x/?e=c@d.example '.repeat(5000)}\r\n`);
  assert.equal(many.kind, 'bounce');
  assert.equal(many.recipients[0]?.address, 'a@b.example');
  // A header section longer than maxHeaderBytes.
  const longHead = await parseBounce(`From: a@example.com\r\nX-Long: ${'a'.repeat(200_000)}\r\n\r\nbody`, { maxHeaderBytes: 4096 });
  assert.equal(longHead.kind, 'unknown');
});

test('random bytes and random mail-like text never make parseBounce reject', async () => {
  await fc.assert(fc.asyncProperty(fc.uint8Array({ maxLength: 2000 }), async (bytes) => {
    const r = await parseBounce(Buffer.from(bytes));
    assert.ok(['dsn', 'bounce', 'autoreply', 'unknown'].includes(r.kind));
  }), { numRuns: 200 });
  const line = fc.constantFrom('Content-Type: multipart/report; report-type=delivery-status; boundary=x', '--x', '--x--', 'Final-Recipient: rfc822; a@b.example',
    'Status: 5.1.1', 'Action: failed', 'Diagnostic-Code: smtp; 550 x', '', 'Content-Type: message/delivery-status', 'From: MAILER-DAEMON@x.example', '<a@b.example>:', 'Content-Transfer-Encoding: base64', '====');
  await fc.assert(fc.asyncProperty(fc.array(line, { maxLength: 60 }), async (lines) => {
    const r = await parseBounce(lines.join('\r\n'));
    assert.ok(Array.isArray(r.recipients));
  }), { numRuns: 300 });
});

test('limits: the feedback config section defaults to the parsers\' defaults; given values are clamped', () => {
  assert.deepEqual(configSchema.parse({}).feedback, DEFAULT_FEEDBACK_LIMITS);
  assert.throws(() => configSchema.parse({ feedback: { maxParts: 0 } }));
  assert.throws(() => configSchema.parse({ feedback: { nope: 1 } }));
  const l = feedbackLimits({ maxParts: 1e9, maxPartBytes: -5, maxMessageBytes: Number.NaN });
  assert.equal(l.maxParts, 1000);
  assert.equal(l.maxPartBytes, 1024);
  assert.equal(l.maxMessageBytes, DEFAULT_FEEDBACK_LIMITS.maxMessageBytes);
});
