/** Tests for the SMTP command grammar (RFC 5321 4.1), ESMTP parameters and xtext; fuzzed with fast-check. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseCommandLine, parseMailFrom, parseRcptTo, parseBdatArgs, parseHeloArg, commandLineLimit } from '../../../src/rfc5321/command.js';
import { parsePath, isAddressLiteral, isDomain } from '../../../src/rfc5321/address.js';
import { encodeXtext, decodeXtext } from '../../../src/rfc5321/xtext.js';
import { parseNotify, parseOrcpt, splitEsmtpParams } from '../../../src/rfc5321/params.js';

const MAX = 1000;
const mail = (arg: string, esmtp = true) => parseMailFrom(arg, { esmtp, maxMessageSize: MAX });
const rcpt = (arg: string, smtputf8 = false, esmtp = true) => parseRcptTo(arg, { esmtp, smtputf8 });
const code = (r: { ok: boolean; reply?: { code: number; enhanced?: string } } & object) =>
  r.ok ? 'ok' : `${(r as { reply: { code: number } }).reply.code} ${(r as { reply: { enhanced?: string } }).reply.enhanced}`;

test('command line: verbs are case-insensitive, argument kept', () => {
  assert.deepEqual(parseCommandLine('ehlo client.example'), { ok: true, value: { verb: 'EHLO', arg: 'client.example' } });
  assert.deepEqual(parseCommandLine('QuIt'), { ok: true, value: { verb: 'QUIT', arg: '' } });
  assert.deepEqual(parseCommandLine('NOOP   '), { ok: true, value: { verb: 'NOOP', arg: '' } });
  assert.deepEqual(parseCommandLine('MAIL FROM:<a@b.c> SIZE=10'), { ok: true, value: { verb: 'MAIL', arg: 'FROM:<a@b.c> SIZE=10' } });
  for (const bad of ['', ' EHLO x', '123', 'EH\0LO', 'EHLO\rx', 'MA-IL x', 'EHLO\nx']) {
    assert.equal(parseCommandLine(bad).ok, false, JSON.stringify(bad));
  }
});

test('command line limits: 512 base, MAIL/RCPT extension room, AUTH 12288', () => {
  assert.equal(commandLineLimit('NOOP'), 512);
  assert.ok(commandLineLimit('MAIL') >= 512 + 100 + 26 + 500);
  assert.ok(commandLineLimit('RCPT') >= 512 + 500);
  assert.equal(commandLineLimit('AUTH'), 12288);
});

test('MAIL FROM: paths, null path, source route, quoted local part, literals', () => {
  const cases: Array<[string, string]> = [
    ['FROM:<user@example.com>', 'user@example.com'],
    ['from:<>', ''],
    ['FROM: <user@example.com>', 'user@example.com'],
    ['FROM:<@a.example,@b.example:user@c.example>', 'user@c.example'],
    ['FROM:<"john doe"@example.com>', '"john doe"@example.com'],
    ['FROM:<"a\\"b"@example.com>', '"a\\"b"@example.com'],
    ['FROM:<user@[192.0.2.1]>', 'user@[192.0.2.1]'],
    ['FROM:<user@[IPv6:2001:db8::1]>', 'user@[IPv6:2001:db8::1]'],
    ['FROM:<first.last+tag@sub.example.com>', 'first.last+tag@sub.example.com'],
  ];
  for (const [arg, addr] of cases) {
    const r = mail(arg);
    assert.ok(r.ok, arg);
    assert.equal(r.value.reversePath, addr);
    assert.equal(r.value.params.body, '7BIT');
  }
});

test('MAIL FROM: syntax errors get 501', () => {
  for (const arg of ['FROM:user@example.com', 'TO:<a@b.c>', 'FROM:<a@b.c', 'FROM:<a..b@c.d>', 'FROM:<.a@c.d>', 'FROM:<a@>',
    'FROM:<a@-b.c>', 'FROM:<a@[300.1.1.1]>', 'FROM:<a@[IPv6:zz]>', 'FROM:<a b@c.d>', 'FROM:<a@b.c>x', 'FROM:<postmaster>', 'FROM:<@a:>', 'FROM:<"abc@d.e>']) {
    const r = mail(arg);
    assert.equal(r.ok, false, arg);
    assert.equal(r.reply.code, 501, arg);
  }
});

test('MAIL FROM parameters: SIZE, BODY, SMTPUTF8, RET, ENVID, AUTH', () => {
  const r = mail('FROM:<a@b.c> SIZE=500 BODY=8bitmime SMTPUTF8 RET=hdrs ENVID=QQ+2Bx AUTH=<>');
  assert.ok(r.ok);
  assert.deepEqual(r.value.params, { body: '8BITMIME', smtputf8: true, size: 500, ret: 'HDRS', envid: 'QQ+x', auth: '<>' });
  assert.equal(code(mail('FROM:<a@b.c> BODY=BINARYMIME')), '555 5.5.4');
  assert.equal(code(mail('FROM:<a@b.c> SIZE=1001')), '552 5.3.4');
  assert.equal(code(mail('FROM:<a@b.c> SIZE=99999999999999999999')), '552 5.3.4');
  assert.equal(code(mail('FROM:<a@b.c> SIZE=x')), '501 5.5.4');
  assert.equal(code(mail('FROM:<a@b.c> SIZE')), '501 5.5.4');
  assert.equal(code(mail('FROM:<a@b.c> BODY=9BIT')), '501 5.5.4');
  assert.equal(code(mail('FROM:<a@b.c> RET=ALL')), '501 5.5.4');
  assert.equal(code(mail('FROM:<a@b.c> ENVID=a+zz')), '501 5.5.4');
  assert.equal(code(mail('FROM:<a@b.c> ENVID=' + 'x'.repeat(101))), '501 5.5.4');
  assert.equal(code(mail('FROM:<a@b.c> SMTPUTF8=yes')), '501 5.5.4');
  assert.equal(code(mail('FROM:<a@b.c> FOO=bar')), '555 5.5.4');
  assert.equal(code(mail('FROM:<a@b.c> SIZE=1 size=2')), '501 5.5.4');
  assert.equal(code(mail('FROM:<a@b.c> SIZE=10', false)), '555 5.5.4');
});

test('UTF-8 addresses only with SMTPUTF8 (553 5.6.7)', () => {
  assert.equal(code(mail('FROM:<jöran@bücher.example>')), '553 5.6.7');
  const ok = mail('FROM:<jöran@bücher.example> SMTPUTF8');
  assert.ok(ok.ok && ok.value.reversePath === 'jöran@bücher.example');
  assert.equal(code(rcpt('TO:<δοκιμή@παράδειγμα.δοκιμή>')), '553 5.6.7');
  assert.ok(rcpt('TO:<δοκιμή@παράδειγμα.δοκιμή>', true).ok);
});

test('RCPT TO: forward paths, Postmaster, NOTIFY and ORCPT', () => {
  assert.deepEqual(rcpt('TO:<Postmaster>'), { ok: true, value: { forwardPath: 'Postmaster', params: {} } });
  const r = rcpt('TO:<@relay.example:bob@example.org> NOTIFY=success,delay ORCPT=rfc822;bob+40example.org');
  assert.ok(r.ok);
  assert.equal(r.value.forwardPath, 'bob@example.org');
  assert.deepEqual(r.value.params, { notify: ['SUCCESS', 'DELAY'], orcpt: { addrType: 'rfc822', address: 'bob@example.org' } });
  assert.equal(code(rcpt('TO:<>')), '501 5.1.3');
  assert.equal(code(rcpt('TO:<bob>')), '501 5.1.3');
  assert.equal(code(rcpt('FROM:<bob@example.org>')), '501 5.5.4');
  assert.equal(code(rcpt('TO:<b@c.d> NOTIFY=NEVER,SUCCESS')), '501 5.5.4');
  assert.equal(code(rcpt('TO:<b@c.d> NOTIFY=FAILURE,FAILURE')), '501 5.5.4');
  assert.equal(code(rcpt('TO:<b@c.d> ORCPT=bob@example.org')), '501 5.5.4');
  assert.equal(code(rcpt('TO:<b@c.d> SIZE=1')), '555 5.5.4');
  assert.equal(code(rcpt('TO:<b@c.d> NOTIFY=NEVER', false, false)), '555 5.5.4');
  assert.deepEqual(parseNotify('never'), ['NEVER']);
  assert.equal(parseOrcpt(';x'), undefined);
});

test('BDAT and EHLO arguments', () => {
  assert.deepEqual(parseBdatArgs('0 LAST'), { ok: true, value: { size: 0, last: true } });
  assert.deepEqual(parseBdatArgs('1234'), { ok: true, value: { size: 1234, last: false } });
  assert.deepEqual(parseBdatArgs('12 last'), { ok: true, value: { size: 12, last: true } });
  for (const bad of ['', 'x', '-1', '1 FIRST', '1 LAST x']) assert.equal(parseBdatArgs(bad).ok, false, bad);
  assert.ok(parseHeloArg('[127.0.0.1]').ok);
  assert.equal(parseHeloArg('').ok, false);
  assert.equal(parseHeloArg('a b').ok, false);
});

test('domains and address literals', () => {
  assert.ok(isDomain('a-b.example'));
  assert.ok(!isDomain('a_b.example'));
  assert.ok(!isDomain('x'.repeat(64) + '.com'));
  assert.ok(isAddressLiteral('[x-tag:stuff]'));
  assert.ok(!isAddressLiteral('[1.2.3]'));
  assert.ok(parsePath('<a@b>').ok);
});

test('xtext encode/decode (RFC 3461 4)', () => {
  assert.equal(encodeXtext('a+b=c d'), 'a+2Bb+3Dc+20d');
  assert.equal(decodeXtext('a+2Bb+3Dc+20d'), 'a+b=c d');
  assert.equal(decodeXtext('a+2b'), undefined);
  assert.equal(decodeXtext('a+0Db+0Ac'), undefined, 'control characters are refused');
  assert.equal(decodeXtext('a+00b'), undefined);
  assert.equal(decodeXtext('a=b'), undefined);
  assert.equal(decodeXtext('a+'), undefined);
  assert.equal(decodeXtext('+FF'), undefined);
  fc.assert(fc.property(fc.string({ unit: 'grapheme' }), (s) => decodeXtext(encodeXtext(s)) === s), { numRuns: 500 });
});

test('ESMTP parameter splitting', () => {
  assert.deepEqual(splitEsmtpParams('  A=1  b '), { ok: true, value: [{ keyword: 'A', value: '1' }, { keyword: 'B', value: undefined }] });
  assert.equal(splitEsmtpParams('=1').ok, false);
  assert.equal(splitEsmtpParams('A=').ok, false);
  assert.equal(splitEsmtpParams('A=b=c').ok, false);
});

const smtpish = fc.oneof(
  fc.string({ maxLength: 300 }),
  fc.string({ unit: 'binary', maxLength: 300 }),
  fc.array(fc.constantFrom('MAIL', 'RCPT', ' FROM:', 'TO:', '<', '>', '@', '"', '\\', '[', ']', 'IPv6:', ':', ',', '.', '=', ' ', 'SIZE', 'BODY=',
    'NOTIFY=', 'ORCPT=', ';', '+', '2B', 'ä', 'x', 'example.com', '\r', '\n', '\0', '1.2.3.4'), { maxLength: 40 }).map((a) => a.join('')),
);

test('fuzz: the command parsers never throw and always return a value or a reply', () => {
  fc.assert(fc.property(smtpish, fc.boolean(), (line, flag) => {
    const results = [
      parseCommandLine(line), mail(line, flag), mail('FROM:' + line, flag), rcpt(line, flag), rcpt('TO:' + line, flag, !flag),
      parseBdatArgs(line), parseHeloArg(line),
    ];
    for (const r of results) {
      if (r.ok) assert.ok(r.value !== undefined);
      else assert.ok(r.reply.code >= 400 && r.reply.code < 600 && r.reply.lines.length > 0);
    }
  }), { numRuns: 3000 });
});
