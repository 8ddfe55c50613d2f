/** trouble.ts: the one place that classifies outcomes (RFC 5321 4.2.1, RFC 3463). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { handoffTo, toResult, verdictOfError, verdictOfReply, statusOfReply } from '../../../src/delivery/trouble.js';
import { SmtpClientError } from '../../../src/delivery/client-error.js';
import { MxLookupError } from '../../../src/dns/mx.js';
import { MimeDowngradeError } from '../../../src/delivery/mime-downgrade.js';

test('replies: 2xx delivered, 4xx deferred, 5xx bounced; status class follows the code', () => {
  assert.equal(verdictOfReply({ code: 250, lines: ['ok'] }).outcome, 'delivered');
  assert.equal(verdictOfReply({ code: 451, enhanced: '4.7.1', lines: ['greylisted'] }).dsnStatus, '4.7.1');
  assert.equal(verdictOfReply({ code: 550, lines: ['no'] }).dsnStatus, '5.0.0');
  assert.equal(verdictOfReply({ code: 550, lines: ['no'] }).outcome, 'bounced');
  assert.equal(statusOfReply({ code: 450, enhanced: '5.1.1', lines: [] }), '4.1.1');
  assert.equal(verdictOfReply({ code: 354, lines: [] }).outcome, 'deferred');
});

test('errors: connection trouble defers with 4.4.x / 4.7.x, unknown is temporary', () => {
  const v = (kind: ConstructorParameters<typeof SmtpClientError>[0], stage: ConstructorParameters<typeof SmtpClientError>[1] = 'rcpt') =>
    verdictOfError(new SmtpClientError(kind, stage, 'x'));
  assert.equal(v('connect', 'connect').dsnStatus, '4.4.1');
  assert.equal(v('timeout', 'connect').dsnStatus, '4.4.1');
  assert.equal(v('timeout').dsnStatus, '4.4.2');
  assert.equal(v('lost').dsnStatus, '4.4.2');
  assert.equal(v('tls', 'starttls').dsnStatus, '4.7.5');
  assert.equal(v('malformed').dsnStatus, '4.5.0');
  assert.equal(v('loop').dsnStatus, '4.4.6');
  for (const k of ['connect', 'timeout', 'lost', 'tls', 'malformed', 'loop', 'pool', 'local', 'auth'] as const) assert.equal(v(k).outcome, 'deferred');
  assert.equal(verdictOfError(new Error('boom')).outcome, 'deferred');
  assert.equal(verdictOfError('weird').dsnStatus, '4.3.0');
  const r5 = new SmtpClientError('reply', 'greeting', 'x', { remoteReply: { code: 554, enhanced: '5.7.1', lines: ['go away'] } });
  assert.deepEqual([verdictOfError(r5).outcome, verdictOfError(r5).dsnStatus], ['bounced', '5.7.1']);
});

test('DNS and conversion errors', () => {
  assert.deepEqual(pick(verdictOfError(new MxLookupError('ERR_DNS_NULL_MX', 'null', false, '5.1.10'))), ['bounced', '5.1.10']);
  assert.deepEqual(pick(verdictOfError(new MxLookupError('ERR_DNS_TEMPORARY', 'servfail', true, '4.4.3'))), ['deferred', '4.4.3']);
  assert.deepEqual(pick(verdictOfError(new MimeDowngradeError('8-bit header'))), ['bounced', '5.6.3']);
});

function pick(v: { outcome: string; dsnStatus: string }): [string, string] {
  return [v.outcome, v.dsnStatus];
}

test('handoff of an accepted recipient (RFC 3461 5.2.2): DSN hop reports itself; hop without DSN: relayed for NOTIFY=SUCCESS', () => {
  assert.deepEqual(handoffTo(true, ['SUCCESS']), { dsnPassedOn: true });
  assert.deepEqual(handoffTo(false, ['SUCCESS', 'FAILURE']), { relayed: true });
  assert.deepEqual(handoffTo(false, ['FAILURE']), {});
  assert.deepEqual(handoffTo(false, undefined), {});
  const delivered = verdictOfReply({ code: 250, enhanced: '2.0.0', lines: ['ok'] });
  assert.equal(toResult(0, delivered, 'mx', { dsnPassedOn: true }).dsnPassedOn, true);
  const bounced = verdictOfReply({ code: 550, enhanced: '5.1.1', lines: ['no'] });
  assert.equal(toResult(0, bounced, 'mx', { dsnPassedOn: true, relayed: true }).dsnPassedOn, undefined, 'flags only on delivered results');
});

test('bounce classes: every deferred or bounced verdict names why (feedback/classify.ts), delivered none', () => {
  const reply = (code: number, enhanced: string | undefined, text: string) => verdictOfReply({ code, ...(enhanced ? { enhanced } : {}), lines: [text] }).bounceClass;
  assert.equal(reply(250, '2.0.0', 'ok'), undefined);
  assert.equal(reply(550, '5.1.1', 'User unknown'), 'InvalidRecipient');
  assert.equal(reply(452, '4.2.2', 'Mailbox full'), 'MailboxFull');
  assert.equal(reply(421, '4.7.0', '[TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume'), 'Throttled');
  assert.equal(reply(554, '5.7.1', 'Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org'), 'BlockedByReputation');
  assert.equal(verdictOfReply({ code: 354, lines: [] }).bounceClass, 'ProtocolErrors');
  const v = (kind: ConstructorParameters<typeof SmtpClientError>[0], stage: ConstructorParameters<typeof SmtpClientError>[1] = 'rcpt') =>
    verdictOfError(new SmtpClientError(kind, stage, 'x')).bounceClass;
  assert.equal(v('connect', 'connect'), 'NoAnswerFromHost');
  assert.equal(v('timeout', 'connect'), 'NoAnswerFromHost');
  assert.equal(v('timeout', 'data'), 'BadConnection');
  assert.equal(v('lost'), 'BadConnection');
  assert.equal(v('tls-verify', 'starttls'), 'TlsFailure');
  assert.equal(v('auth', 'auth'), 'AuthFailure');
  assert.equal(v('loop'), 'RoutingErrors');
  assert.equal(verdictOfError(new MxLookupError('ERR_DNS_TEMPORARY', 'servfail', true, '4.4.3')).bounceClass, 'DnsFailure');
  assert.equal(verdictOfError(new MxLookupError('ERR_DNS_NXDOMAIN', 'domain example.invalid does not exist', false, '5.1.2')).bounceClass, 'BadDomain');
  assert.equal(verdictOfError(new MxLookupError('ERR_DNS_NULL_MX', 'null', false, '5.1.10')).bounceClass, 'BadDomain');
  assert.equal(verdictOfError(new MimeDowngradeError('8-bit header')).bounceClass, 'ProtocolErrors');
  assert.equal(verdictOfError(new Error('boom')).bounceClass, 'TransientFailure');
  // The result carries it when not delivered.
  assert.equal(toResult(0, verdictOfReply({ code: 550, enhanced: '5.1.1', lines: ['no such user'] }), 'mx').bounceClass, 'InvalidRecipient');
  assert.equal(toResult(0, verdictOfReply({ code: 250, lines: ['ok'] }), 'mx').bounceClass, undefined);
});
