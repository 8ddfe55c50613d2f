import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { BOUNCE_CLASSES, CLASS_SEVERITY, classifyReply, isBounceClass, parseEnhanced, type BounceClass } from '../../../src/feedback/index.js';
import { findEnhanced, findReplyCode } from '../../../src/feedback/classify.js';

// Replies as providers and MTAs write them (code, enhanced or undefined, text) and the class a
// person reading them gives. Written by hand.
const CASES: readonly [number, string | undefined, string, BounceClass][] = [
  [550, '5.1.1', "The email account that you tried to reach does not exist. Please try double-checking the recipient's email address", 'InvalidRecipient'],
  [550, '5.1.1', '<bob@example.net>: Recipient address rejected: User unknown in virtual mailbox table', 'InvalidRecipient'],
  [550, '5.1.10', 'RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup', 'InvalidRecipient'],
  [550, undefined, 'No such user here', 'InvalidRecipient'],
  [554, '5.4.4', 'Host or domain name not found. Name service error for name=example.invalid type=A: Host not found', 'BadDomain'],
  [550, '5.1.2', 'Host unknown', 'BadDomain'],
  [556, '5.1.10', 'Recipient address has null MX', 'BadDomain'],
  [550, '5.2.1', 'The email account that you tried to reach is disabled.', 'InactiveMailbox'],
  [550, '5.1.6', 'recipient no longer on server', 'InactiveMailbox'],
  [552, '5.2.2', 'The email account that you tried to reach is over quota.', 'MailboxFull'],
  [452, '4.2.2', 'Mailbox full', 'MailboxFull'],
  [552, '5.3.4', 'Message size exceeds fixed maximum message size', 'MessageTooLarge'],
  [550, '5.7.1', 'Message content rejected, UBE', 'ContentRejected'],
  [554, '5.7.1', 'Email cannot be delivered. Reason: Email flagged as Spam.', 'ContentRejected'],
  [550, '5.7.1', 'Message rejected: virus found (Eicar-Test-Signature)', 'VirusRelated'],
  [554, '5.7.1', 'Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org', 'BlockedByReputation'],
  [550, '5.7.606', 'Access denied, banned sending IP [192.0.2.1]', 'BlockedByReputation'],
  [550, '5.7.26', 'Unauthenticated email from example.com is not accepted due to domain\'s DMARC policy', 'AuthFailure'],
  [550, '5.7.23', 'The message was rejected because of Sender Policy Framework violation', 'AuthFailure'],
  [530, '5.7.0', 'Authentication required', 'AuthFailure'],
  [530, '5.7.0', 'Must issue a STARTTLS command first', 'TlsFailure'],
  [554, '5.7.1', '<bob@example.net>: Relay access denied', 'RelayingDenied'],
  [550, '5.7.54', 'Unable to relay recipient in non-accepted domain', 'RelayingDenied'],
  [553, '5.1.8', 'Sender address rejected: Domain not found', 'InvalidSender'],
  [554, '5.7.9', 'Message not accepted for policy reasons.', 'PolicyRelated'],
  [421, '4.7.0', '[TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume or user complaints', 'Throttled'],
  [421, '4.7.28', 'Our system has detected an unusual rate of unsolicited mail', 'Throttled'],
  [450, '4.7.1', 'Recipient address rejected: Greylisted, see http://postgrey.example/', 'TransientFailure'],
  [451, '4.4.3', 'Temporary DNS failure', 'DnsFailure'],
  [554, '5.4.6', 'Hop count exceeded - possible mail loop', 'RoutingErrors'],
  [451, '4.4.1', 'connect to mx.example.net[192.0.2.1]:25: Connection timed out', 'NoAnswerFromHost'],
  [451, '4.4.2', 'lost connection with mx.example.net while sending message body', 'BadConnection'],
  [503, '5.5.1', 'Error: need RCPT command', 'ProtocolErrors'],
  [554, '5.6.7', 'SMTPUTF8 is required, but was not offered by host', 'ProtocolErrors'],
  [451, '4.3.0', 'Internal server error', 'SystemError'],
  [553, '5.3.5', 'system config error', 'SystemError'],
  [554, '5.4.7', 'delivery time expired', 'MessageExpired'],
  [451, undefined, 'Please try again later', 'TransientFailure'],
  [550, undefined, 'Rejected', 'Uncategorized'],
];

test('replies of common MTAs get the class a reader gives them', () => {
  for (const [code, enhanced, text, want] of CASES) {
    assert.equal(classifyReply(code, enhanced, text).class, want, `${code} ${enhanced ?? ''} ${text}`);
  }
});

test('severity: the class severity for a permanent reply, soft for any temporary one', () => {
  assert.deepEqual(classifyReply(550, '5.1.1', 'User unknown'), { class: 'InvalidRecipient', severity: 'hard' });
  assert.deepEqual(classifyReply(450, '4.1.1', 'User unknown'), { class: 'InvalidRecipient', severity: 'soft' });
  assert.deepEqual(classifyReply(552, '5.2.2', 'Mailbox full'), { class: 'MailboxFull', severity: 'soft' });
  assert.deepEqual(classifyReply(554, '5.7.1', 'blocked using bl.spamcop.net'), { class: 'BlockedByReputation', severity: 'soft' });
  assert.deepEqual(classifyReply(550, undefined, 'no reason at all'), { class: 'Uncategorized', severity: 'hard' });
  // No reply code: the enhanced code's class says whether it is temporary.
  assert.equal(classifyReply(0, '4.0.0', '').severity, 'soft');
  assert.equal(classifyReply(0, '5.1.1', '').severity, 'hard');
  for (const c of BOUNCE_CLASSES) assert.ok(CLASS_SEVERITY[c] === 'hard' || CLASS_SEVERITY[c] === 'soft');
});

test('the enhanced code comes first; texts naming a cause no code carries win over it', () => {
  // A generic X.7.1 says "policy"; the text knows better.
  assert.equal(classifyReply(550, '5.7.1', 'Recipient address rejected: User unknown').class, 'InvalidRecipient');
  // A firm X.2.2 is kept even when the text is vague.
  assert.equal(classifyReply(552, '5.2.2', 'Too much mail data').class, 'MailboxFull');
  // Providers send 5.1.1 with rate limits and quota ("over quota temporarily (#5.1.1)").
  assert.equal(classifyReply(550, '5.1.1', '203.0.113.2 has sent to too many recipients this hour').class, 'Throttled');
  assert.equal(classifyReply(552, undefined, 'sorry, mailbox x@example.org is over quota temporarily (#5.1.1)').class, 'MailboxFull');
  // The enhanced code in the text is used when none is given.
  assert.equal(classifyReply(550, undefined, '550 5.2.2 <x@example.org>... Mailbox Full').class, 'MailboxFull');
  assert.equal(classifyReply(0, undefined, 'smtp; 550 5.1.1 <x@example.org>... User Unknown').severity, 'hard');
});

test('the answer objects are shared (no allocation per call)', () => {
  assert.equal(classifyReply(550, '5.1.1', 'a'), classifyReply(550, '5.1.1', 'b'));
  assert.ok(Object.isFrozen(classifyReply(451, '4.4.1', 'timed out')));
});

test('enhanced and reply codes are found in text', () => {
  assert.deepEqual(parseEnhanced('5.1.1'), { cls: 5, subject: 1, detail: 1 });
  assert.deepEqual(parseEnhanced(' 4.7.650 (x)'), { cls: 4, subject: 7, detail: 650 });
  assert.equal(parseEnhanced('5.1'), undefined);
  assert.equal(parseEnhanced('x'), undefined);
  assert.deepEqual(findEnhanced('550-5.1.1 The email account'), { cls: 5, subject: 1, detail: 1 });
  assert.deepEqual(findEnhanced('over quota (#5.2.2)'), { cls: 5, subject: 2, detail: 2 });
  assert.equal(findEnhanced('Received from 192.0.2.153 (15.20.239.5)'), undefined);
  assert.equal(findReplyCode('host mx.example.net[192.0.2.1] said: 550 5.1.1 unknown'), 550);
  assert.equal(findReplyCode('no code'), 0);
});

test('never throws and always answers a known class, whatever the input', () => {
  fc.assert(fc.property(fc.integer({ min: -1000, max: 100_000 }), fc.option(fc.string({ maxLength: 12 }), { nil: undefined }), fc.string({ maxLength: 300 }), (code, enh, text) => {
    const v = classifyReply(code, enh, text);
    assert.ok(isBounceClass(v.class));
    assert.ok(v.severity === 'hard' || v.severity === 'soft');
  }), { numRuns: 2000 });
  // A long adversarial text is cut, not scanned whole.
  const v = classifyReply(550, undefined, `${'a '.repeat(500_000)}user unknown`);
  assert.equal(v.class, 'Uncategorized');
  assert.equal(classifyReply(550, undefined, `${'x'.repeat(100)} user unknown`).class, 'InvalidRecipient');
});
