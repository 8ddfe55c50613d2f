/** Tests for the BDAT line-ending check: bare LF normalized or refused, bare CR refused, across chunks. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LineEndingCheck } from '../../../src/rfc5321/line-endings.js';

test('normalize: a chunk of many bare-LF lines comes out as a few buffers, not two per line', () => {
  for (const unit of ['\n', 'text line\n']) {
    const c = new LineEndingCheck('normalize');
    const chunk = Buffer.from(unit.repeat(Math.ceil(65536 / unit.length)));
    const out = c.feed(chunk);
    assert.equal(c.end(), true);
    assert.ok(out.length <= 4, `${JSON.stringify(unit)}: ${out.length} buffers`);
    assert.equal(Buffer.concat(out).toString(), unit.replace('\n', '\r\n').repeat(chunk.length / unit.length));
  }
});

test('a CRLF split across chunks is one line ending; a CR without its LF is refused', () => {
  const c = new LineEndingCheck('normalize');
  assert.deepEqual(Buffer.concat([...c.feed(Buffer.from('a\r')), ...c.feed(Buffer.from('\nb\n'))]).toString(), 'a\r\nb\r\n');
  assert.equal(c.end(), true);
  const d = new LineEndingCheck('normalize');
  d.feed(Buffer.from('a\r'));
  assert.deepEqual(d.feed(Buffer.from('b')), []);
  assert.equal(d.error, 'bareCr');
  const e = new LineEndingCheck('reject');
  assert.deepEqual(e.feed(Buffer.from('a\r\nb\n')), []);
  assert.equal(e.error, 'bareLf');
});
