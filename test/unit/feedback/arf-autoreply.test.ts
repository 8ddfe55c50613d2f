import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { autoReplyReason, isAutoReply, parseArf } from '../../../src/feedback/index.js';

const crlf = (s: string): Buffer => Buffer.from(s.replace(/\n/g, '\r\n'));

const ARF = crlf(`From: Yahoo! Mail AntiSpam Feedback <feedback@arf.mail.yahoo.com>
To: fbl@example.com
Subject: FW: hello
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="b1"

--b1
Content-Type: text/plain

This is an email abuse report.
--b1
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: Yahoo!-Mail-Feedback/2.0
Version: 1
Original-Mail-From: <bounces+x@example.com>
Original-Rcpt-To: <bob@yahoo.example>
Arrival-Date: Thu, 8 Mar 2005 14:00:00 EDT
Source-IP: 192.0.2.1
Reported-Domain: example.com
Reported-Uri: http://example.com/x
Authentication-Results: mta.yahoo.example; dkim=pass header.d=example.com
Incidents: 3

--b1
Content-Type: message/rfc822

From: Alice <alice@example.com>
To: bob@yahoo.example
Subject: hello
Message-ID: <m.1@example.com>
X-Postline-Queue-Id: 0A1B2C3D4E5F

hello
--b1--
`);

test('RFC 5965 ARF: fields, the complained recipient, the provider, the original', async () => {
  const r = await parseArf(ARF);
  assert.equal(r.kind, 'arf');
  assert.equal(r.feedbackType, 'abuse');
  assert.equal(r.userAgent, 'Yahoo!-Mail-Feedback/2.0');
  assert.equal(r.version, '1');
  assert.equal(r.originalMailFrom, 'bounces+x@example.com');
  assert.deepEqual(r.originalRcptTo, ['bob@yahoo.example']);
  assert.equal(r.recipient, 'bob@yahoo.example');
  assert.equal(r.sourceIp, '192.0.2.1');
  assert.deepEqual(r.reportedDomains, ['example.com']);
  assert.deepEqual(r.reportedUris, ['http://example.com/x']);
  assert.match(r.authenticationResults ?? '', /dkim=pass/);
  assert.equal(r.incidents, 3);
  assert.equal(r.provider, 'yahoo');
  assert.equal(r.original?.messageId, '<m.1@example.com>');
  assert.equal(r.original?.headers['x-postline-queue-id'], '0A1B2C3D4E5F');
});

test('without Original-Rcpt-To the enclosed To is the recipient; a generic agent: Reporting-MTA, then the From domain', async () => {
  const s = ARF.toString('latin1').replace('Original-Rcpt-To: <bob@yahoo.example>\r\n', '').replace('User-Agent: Yahoo!-Mail-Feedback/2.0', 'User-Agent: SomeGenerator/1.0');
  const r = await parseArf(Buffer.from(s, 'latin1'));
  assert.equal(r.recipient, 'bob@yahoo.example');
  assert.equal(r.provider, 'arf.mail.yahoo.com');
  const withMta = await parseArf(Buffer.from(s.replace('Version: 1\r\nOriginal', 'Version: 1\r\nReporting-MTA: dns; fbl.mail.example.net\r\nOriginal'), 'latin1'));
  assert.equal(withMta.reportingMta, 'fbl.mail.example.net');
  assert.equal(withMta.provider, 'fbl.mail.example.net');
});

test('an old-style complaint (the original enclosed, no feedback-report part) and non-reports', async () => {
  const hotmail = await parseArf(crlf(`From: staff@hotmail.com
To: abuse@example.com
Subject: complaint about message from 192.0.2.222
Content-Type: multipart/mixed; boundary="z"

--z
Content-Type: message/rfc822

From: alice@example.com
To: bob@hotmail.example
Message-ID: <h.1@example.com>

x
--z--
`));
  assert.equal(hotmail.kind, 'complaint');
  assert.equal(hotmail.recipient, 'bob@hotmail.example');
  assert.equal(hotmail.sourceIp, '192.0.2.222');
  assert.equal(hotmail.provider, 'hotmail.com');
  assert.equal((await parseArf(crlf('From: bob@example.net\nSubject: hi\n\nhi\n'))).kind, 'unknown');
  assert.equal((await parseArf(Buffer.alloc(0))).kind, 'unknown');
  await fc.assert(fc.asyncProperty(fc.uint8Array({ maxLength: 2000 }), async (b) => {
    assert.ok(['arf', 'complaint', 'unknown'].includes((await parseArf(Buffer.from(b))).kind));
  }), { numRuns: 200 });
});

test('auto-reply signs (RFC 3834 and the common fields), case-insensitive, any header shape', () => {
  assert.equal(isAutoReply({ 'Auto-Submitted': 'auto-replied' }), true);
  assert.equal(isAutoReply({ 'auto-submitted': 'auto-generated' }), false, 'auto-generated is not a reply');
  assert.equal(isAutoReply({ 'auto-submitted': 'no' }), false);
  assert.equal(isAutoReply({ 'X-Autoreply': 'yes' }), true);
  assert.equal(isAutoReply({ 'X-Autorespond': 'On vacation' }), true);
  assert.equal(isAutoReply(new Map([['Precedence', 'auto_reply']])), true);
  assert.equal(isAutoReply(new Map([['precedence', ['bulk']]])), false);
  assert.equal(isAutoReply([{ name: 'Subject', value: 'Automatic reply: hi' }]), true);
  assert.equal(isAutoReply([{ name: 'Subject', value: 'Re: Out of Office until Monday' }]), true);
  assert.equal(isAutoReply({ subject: '=?UTF-8?Q?R=C3=A9ponse_automatique?= : bonjour' }), true);
  assert.equal(isAutoReply({ subject: 'Abwesenheitsnotiz: Termin' }), true);
  assert.equal(isAutoReply({ subject: 'Your invoice' }), false);
  assert.equal(autoReplyReason({ 'Auto-Submitted': 'auto-replied', subject: 'hi' }, { weak: false }), undefined);
  assert.equal(autoReplyReason({ 'Auto-Submitted': 'auto-replied', subject: 'hi' }), 'auto-submitted');
});
