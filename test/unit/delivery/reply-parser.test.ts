/** Reply parser (RFC 5321 4.2, RFC 2034): multi-line replies, enhanced codes, bounds, fuzz. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ReplyParser, extractEnhanced } from '../../../src/rfc5321/reply-parser.js';

const b = (s: string) => Buffer.from(s, 'utf8');

test('single-line reply with enhanced code', () => {
  const r = new ReplyParser().push(b('250 2.1.0 Sender OK\r\n'));
  assert.deepEqual(r.replies, [{ code: 250, enhanced: '2.1.0', lines: ['Sender OK'] }]);
  assert.equal(r.error, undefined);
});

test('multi-line reply split across chunks', () => {
  const p = new ReplyParser();
  assert.deepEqual(p.push(b('250-mx.test Hello\r\n250-PIPE')).replies, []);
  assert.ok(p.pending);
  assert.deepEqual(p.push(b('LINING\r\n250-SIZE 1000\r')).replies, []);
  const r = p.push(b('\n250 8BITMIME\r\n'));
  assert.deepEqual(r.replies, [{ code: 250, lines: ['mx.test Hello', 'PIPELINING', 'SIZE 1000', '8BITMIME'] }]);
  assert.ok(!p.pending);
});

test('several replies in one chunk (pipelining) and bare code line', () => {
  const r = new ReplyParser().push(b('250 2.1.0 ok\r\n550-5.1.1 no such\r\n550 5.1.1 user\r\n354\r\n'));
  assert.equal(r.replies.length, 3);
  assert.deepEqual(r.replies[1], { code: 550, enhanced: '5.1.1', lines: ['no such', 'user'] });
  assert.deepEqual(r.replies[2], { code: 354, lines: [''] });
});

test('enhanced code of another class is not taken', () => {
  assert.deepEqual(extractEnhanced(451, '5.1.1 odd'), { text: '5.1.1 odd' });
  assert.deepEqual(extractEnhanced(550, '5.7.1'), { enhanced: '5.7.1', text: '' });
  assert.deepEqual(extractEnhanced(250, '2.0.0x'), { text: '2.0.0x' });
});

test('malformed lines stop the parser with an error', () => {
  for (const bad of ['hello\r\n', '25 x\r\n', '250x\r\n', '650 x\r\n', '250-a\r\n251 b\r\n']) {
    const p = new ReplyParser();
    const r = p.push(b(bad));
    assert.ok(r.error, bad);
    assert.equal(r.error.code, 'ERR_SMTP_REPLY_MALFORMED');
    assert.ok(p.push(b('250 ok\r\n')).error, 'stays stopped');
  }
});

test('line length and line count are bounded', () => {
  const p = new ReplyParser({ maxLineLength: 100 });
  assert.ok(p.push(Buffer.alloc(200, 0x41)).error, 'partial line too long');
  const q = new ReplyParser({ maxLineLength: 100 });
  assert.ok(q.push(b('250 ' + 'x'.repeat(200) + '\r\n')).error, 'complete line too long');
  const m = new ReplyParser({ maxLines: 5 });
  assert.ok(m.push(b('250-a\r\n'.repeat(10))).error, 'too many lines');
});

test('fuzz: never throws, and every reply has a valid code', () => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 10 }), (chunks) => {
      const p = new ReplyParser({ maxLineLength: 128 });
      for (const c of chunks) {
        const r = p.push(Buffer.from(c));
        for (const rep of r.replies) assert.ok(rep.code >= 200 && rep.code <= 599);
      }
    }),
    { numRuns: 500 },
  );
});

test('fuzz: well-formed replies round-trip through any chunking', () => {
  const line = fc.stringMatching(/^[ -~]{0,40}$/);
  const replyArb = fc.record({ code: fc.integer({ min: 200, max: 599 }), lines: fc.array(line, { minLength: 1, maxLength: 4 }) });
  fc.assert(
    fc.property(fc.array(replyArb, { minLength: 1, maxLength: 5 }), fc.array(fc.nat(), { maxLength: 6 }), (replies, cuts) => {
      const wire = Buffer.from(replies.map((r) => r.lines.map((l, i) => `${r.code}${i === r.lines.length - 1 ? ' ' : '-'}${l}\r\n`).join('')).join(''));
      const points = [...new Set(cuts.map((c) => c % (wire.length + 1)))].sort((x, y) => x - y);
      const p = new ReplyParser();
      const got = [];
      let prev = 0;
      for (const c of [...points, wire.length]) {
        const r = p.push(wire.subarray(prev, c));
        assert.equal(r.error, undefined);
        got.push(...r.replies);
        prev = c;
      }
      assert.deepEqual(got.map((r) => r.code), replies.map((r) => r.code));
      assert.deepEqual(got.map((r) => r.lines.length), replies.map((r) => r.lines.length));
    }),
    { numRuns: 300 },
  );
});
