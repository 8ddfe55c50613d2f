import { test } from 'node:test';
import assert from 'node:assert/strict';
import { foldHeaderLine, formatDate, makeMessageId } from '../../../src/rfc5322/format.js';
import {
  countReceived, findHeaderEnd, getHeaderFields, headerSection, isWellFormedHeader, parseHeaderFields, unfold,
} from '../../../src/rfc5322/header.js';

test('formatDate follows RFC 5322 3.3', () => {
  assert.equal(formatDate(1_700_000_000_000), 'Tue, 14 Nov 2023 22:13:20 +0000');
  assert.equal(formatDate(Date.UTC(2024, 0, 5, 3, 4, 5)), 'Fri, 5 Jan 2024 03:04:05 +0000');
  assert.equal(formatDate(Date.UTC(2024, 0, 5, 3, 4, 5), -330), 'Thu, 4 Jan 2024 21:34:05 -0530');
});

test('makeMessageId has the shape <queueId.random@host>', () => {
  const a = makeMessageId('01HF0000000000ABCD', 'mx.example.com');
  assert.match(a, /^<01HF0000000000ABCD\.[0-9a-f]{12}@mx\.example\.com>$/);
  assert.notEqual(a, makeMessageId('01HF0000000000ABCD', 'mx.example.com'));
});

test('findHeaderEnd and headerSection', () => {
  const m = Buffer.from('A: 1\r\nB: 2\r\n\r\nbody\r\n');
  assert.deepEqual(findHeaderEnd(m), { headerEnd: 12, bodyStart: 14 });
  assert.equal(headerSection(m).toString(), 'A: 1\r\nB: 2\r\n');
  assert.deepEqual(findHeaderEnd(Buffer.from('\r\nbody only')), { headerEnd: 0, bodyStart: 2 });
  assert.equal(findHeaderEnd(Buffer.from('A: 1\r\nno separator')), undefined);
  assert.equal(headerSection(Buffer.from('A: 1\r\n')).toString(), 'A: 1\r\n');
});

test('parseHeaderFields unfolds and finds fields case-insensitively', () => {
  const h = 'Received: from a\r\n\tby b; date\r\nSubject: hi\r\n  there\r\nRECEIVED: x\r\nreceived : y\r\n\r\nReceived: body\r\n';
  const f = parseHeaderFields(h);
  assert.deepEqual(f.map((x) => x.name), ['Received', 'Subject', 'RECEIVED', 'received']);
  assert.equal(f[0].value, ' from a\tby b; date');
  assert.equal(f[1].raw, 'Subject: hi\r\n  there');
  assert.equal(getHeaderFields(f, 'subject')[0].value, ' hi  there');
  assert.equal(countReceived(h), 3);
  assert.equal(unfold('a\r\n b\r\nc'), 'a b\r\nc');
});

test('isWellFormedHeader', () => {
  assert.ok(isWellFormedHeader('A: 1\r\n b\r\nC: 2\r\n'));
  assert.ok(isWellFormedHeader(''));
  assert.ok(!isWellFormedHeader('hello world\r\n'));
  assert.ok(!isWellFormedHeader(' leading continuation\r\n'));
  assert.ok(!isWellFormedHeader('A: 1\nB: 2\r\n'));
});

test('foldHeaderLine folds at whitespace, keeps content, respects quoted strings', () => {
  const words = Array.from({ length: 40 }, (_, i) => `word${i}`).join(' ');
  const line = `X-Long: ${words}`;
  const folded = foldHeaderLine(line);
  const parts = folded.split('\r\n');
  assert.ok(parts.length > 1);
  for (const p of parts) assert.ok(p.length <= 78, p);
  for (const p of parts.slice(1)) assert.match(p, /^[ \t]\S/);
  assert.equal(unfold(folded), line);
  assert.equal(foldHeaderLine('Short: value'), 'Short: value');
  const quoted = `To: "${'a '.repeat(50)}" <x@example.com>`;
  const fq = foldHeaderLine(quoted);
  assert.equal(unfold(fq), quoted);
  assert.ok(!fq.split('\r\n')[0].includes('<x@'), 'folds after the quoted string');
  assert.equal(fq.split('\r\n').length, 2);
  const nospace = `X-Token: ${'z'.repeat(200)}`;
  assert.equal(foldHeaderLine(nospace), nospace);
});
