/** Tests for the streaming DATA decoder: end of data, dot-unstuffing, bare CR/LF (smuggling), limits. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DataReader, dataErrorReply, type DataErrorKind, type DataReaderOptions } from '../../../src/rfc5321/data-reader.js';

const LIMITS = { maxLineLength: 1000, maxMessageSize: 1 << 20 };

/** Test-only dot-stuffing: CRLF lines in, wire form with the end-of-data line out. */
function stuff(message: Buffer): Buffer {
  const text = message.toString('latin1');
  const body = text.split('\r\n').map((l) => (l.startsWith('.') ? '.' + l : l)).join('\r\n');
  return Buffer.from(body + (text === '' || text.endsWith('\r\n') ? '' : '\r\n') + '.\r\n', 'latin1');
}

/** Feeds `wire` split at `cuts` and returns the decoded bytes, the rest and the error. */
function decode(wire: Buffer, cuts: number[] = [], limits: DataReaderOptions = LIMITS): { out: Buffer; rest?: Buffer; done: boolean; error?: DataErrorKind } {
  const r = new DataReader(limits);
  const points = [...new Set(cuts.map((c) => c % (wire.length + 1)))].sort((a, b) => a - b);
  const parts: Buffer[] = [];
  let prev = 0;
  for (const p of [...points, wire.length]) { parts.push(wire.subarray(prev, p)); prev = p; }
  const out: Buffer[] = [];
  for (let k = 0; k < parts.length; k++) {
    const res = r.feed(parts[k]!);
    out.push(...res.data);
    if (res.done) return { out: Buffer.concat(out), rest: Buffer.concat([res.rest!, ...parts.slice(k + 1)]), done: true, error: r.error };
  }
  return { out: Buffer.concat(out), done: false, error: r.error };
}

test('simple message: CRLF kept, end found, rest returned', () => {
  const d = decode(Buffer.from('Subject: x\r\n\r\nhello\r\n.\r\nQUIT\r\n'));
  assert.equal(d.out.toString(), 'Subject: x\r\n\r\nhello\r\n');
  assert.equal(d.rest!.toString(), 'QUIT\r\n');
  assert.equal(d.error, undefined);
});

test('empty message and dot-unstuffing exactness', () => {
  assert.deepEqual(decode(Buffer.from('.\r\n')).out.length, 0);
  const d = decode(Buffer.from('..\r\n...\r\n..x\r\n.y\r\n a.\r\n.\r\n'));
  assert.equal(d.out.toString(), '.\r\n..\r\n.x\r\ny\r\n a.\r\n');
  assert.equal(d.rest!.length, 0);
});

test('every byte split gives the same output', () => {
  const wire = Buffer.from('a\r\n..b\r\n\r\n.\r\nNOOP\r\n');
  for (let i = 0; i <= wire.length; i++) {
    for (let j = i; j <= wire.length; j++) {
      const d = decode(wire, [i, j]);
      assert.equal(d.out.toString(), 'a\r\n.b\r\n\r\n');
      assert.equal(d.rest!.toString(), 'NOOP\r\n');
    }
  }
});

const SMUGGLED = ['\n.\n', '\r\n.\n', '\n.\r\n', '\r.\r', '\r\n.\r', '\r.\r\n', '.\n', '\n'];
test('bare CR / LF: smuggled terminators never end the message; real end found after discarding', () => {
  for (const s of SMUGGLED) {
    const wire = Buffer.from(`line1\r\nx${s}MAIL FROM:<evil@example.com>\r\nRCPT TO:<v@example.com>\r\nDATA\r\nevil\r\n.\r\nQUIT\r\n`);
    for (let cut = 0; cut <= wire.length; cut += 3) {
      const d = decode(wire, [cut]);
      assert.equal(d.done, true, JSON.stringify(s));
      assert.ok(d.error === 'bareLf' || d.error === 'bareCr', JSON.stringify(s));
      assert.equal(d.rest!.toString(), 'QUIT\r\n', JSON.stringify(s));
    }
  }
  // a bare LF right at the start of data
  const d = decode(Buffer.from('\n.\nX\r\n.\r\n'));
  assert.equal(d.error, 'bareLf');
  assert.equal(d.rest!.length, 0);
  assert.deepEqual(dataErrorReply('bareLf').code, 550);
});

test('bare CR directly before the real end: CR CR LF . CR LF ends with an error', () => {
  const d = decode(Buffer.from('abc\r\r\n.\r\nNEXT'));
  assert.equal(d.error, 'bareCr');
  assert.equal(d.rest!.toString(), 'NEXT');
  const e = decode(Buffer.from('abc\r\n.\r\r\n.\r\nNEXT'));
  assert.equal(e.error, 'bareCr');
  assert.equal(e.rest!.toString(), 'NEXT');
});

test('line length: up to the limit accepted, one more refused (after reading to the end)', () => {
  const lim = { maxLineLength: 1000, maxMessageSize: 1 << 20 };
  const ok = decode(Buffer.from('x'.repeat(1000) + '\r\n.' + 'y'.repeat(1000) + '\r\n.\r\n'), [7, 500, 1003], lim);
  assert.equal(ok.error, undefined);
  assert.equal(ok.out.length, 2004);
  const bad = decode(Buffer.from('x'.repeat(1001) + '\r\nz\r\n.\r\nQUIT\r\n'), [300, 600, 900], lim);
  assert.equal(bad.error, 'lineTooLong');
  assert.equal(bad.rest!.toString(), 'QUIT\r\n');
  assert.equal(dataErrorReply('lineTooLong').enhanced, '5.6.0');
});

test('message size: exact limit accepted, one more byte refused', () => {
  const lim = { maxLineLength: 1000, maxMessageSize: 12 };
  assert.equal(decode(Buffer.from('0123456789\r\n.\r\n'), [], lim).error, undefined);
  const d = decode(Buffer.from('0123456789a\r\n.\r\nX'), [], lim);
  assert.equal(d.error, 'sizeExceeded');
  assert.ok(d.out.length <= 12); // bytes before the error may have been emitted; the caller aborts the message
  assert.equal(d.rest!.toString(), 'X');
  assert.equal(dataErrorReply('sizeExceeded').code, 552);
});

test('huge message and huge line: state stays constant (no line buffering)', () => {
  const r = new DataReader({ maxLineLength: 1000, maxMessageSize: 1 << 30 });
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  let bytes = 0;
  for (let i = 0; i < 256; i++) { // 16 MiB line, never held
    const res = r.feed(chunk);
    for (const b of res.data) bytes += b.length;
  }
  assert.equal(r.error, 'lineTooLong');
  assert.equal(bytes, 0); // nothing emitted for the overlong line
  const end = r.feed(Buffer.from('\r\n.\r\n'));
  assert.equal(end.done, true);
  assert.throws(() => r.feed(Buffer.from('x')));
});

const lineArb = fc.oneof(
  fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a.filter((b) => b !== 10 && b !== 13)).toString('latin1')),
  fc.constantFrom('.', '..', '.x', '', ' .', '.\t', '...'),
);

test('property: dot-stuff + random chunk splits, decoder output equals the original', () => {
  fc.assert(fc.property(fc.array(lineArb, { maxLength: 30 }), fc.array(fc.nat(2000), { maxLength: 12 }), fc.string({ maxLength: 20 }), (lines, cuts, tail) => {
    const original = Buffer.from(lines.map((l) => l + '\r\n').join(''), 'latin1');
    const wire = Buffer.concat([stuff(original), Buffer.from(tail, 'latin1')]);
    const d = decode(wire, cuts);
    assert.equal(d.done, true);
    assert.equal(d.error, undefined);
    assert.deepEqual(d.out, original);
    assert.deepEqual(d.rest, Buffer.from(tail, 'latin1'));
  }), { numRuns: 1000 });
});

test('property: a bare CR or LF anywhere refuses the message and only the real CRLF.CRLF ends it', () => {
  const bad = fc.constantFrom('\n', '\r', '\n.\n', '\r.\r', '\r\n.\n', '\n.\r\n', '\r\r', '\n\r');
  fc.assert(fc.property(fc.array(lineArb, { maxLength: 10 }), bad, fc.nat(500), fc.array(fc.nat(600), { maxLength: 8 }), (lines, smuggle, at, cuts) => {
    const stuffed = stuff(Buffer.from(lines.map((l) => l + '\r\n').join(''), 'latin1')).toString('latin1');
    const bodyOnly = stuffed.slice(0, -3); // without ".\r\n"
    const pos = bodyOnly.length === 0 ? 0 : at % bodyOnly.length;
    const injected = 'X' + bodyOnly.slice(0, pos) + smuggle + 'Y' + bodyOnly.slice(pos);
    fc.pre(!injected.includes('\r\n.\r\n')); // splitting a CRLF can form a real end-of-data; not a smuggling case
    const wire = Buffer.from(injected + (injected.endsWith('\r\n') ? '' : '\r\n') + '.\r\nTAIL', 'latin1');
    const d = decode(wire, cuts);
    assert.equal(d.done, true);
    assert.ok(d.error === 'bareLf' || d.error === 'bareCr');
    assert.equal(d.rest!.toString(), 'TAIL');
  }), { numRuns: 1000 });
});

// ---- bareNewline: normalize (issue 15 item 5) ----------------------------------------------------

const NORM = { ...LIMITS, bareNewline: 'normalize' as const };

test('normalize: lines ending in a bare LF are stored with CRLF; CRLF lines are unchanged', () => {
  const d = decode(Buffer.from('Subject: x\n\nline1\r\nline2\n\nend\n\r\n.\r\nQUIT\r\n'), [], NORM);
  assert.equal(d.error, undefined);
  assert.equal(d.out.toString(), 'Subject: x\r\n\r\nline1\r\nline2\r\n\r\nend\r\n\r\n');
  assert.equal(d.rest!.toString(), 'QUIT\r\n');
});

test('normalize: dot lines after a bare LF are unstuffed; a lone "." next to a bare LF is content', () => {
  const d = decode(Buffer.from('a\n..b\n.c\n.\nd\r\n.\ne\n.\r\nf\r\n.\r\n'), [], NORM);
  assert.equal(d.error, undefined);
  assert.equal(d.out.toString(), 'a\r\n.b\r\nc\r\n.\r\nd\r\n.\r\ne\r\n.\r\nf\r\n');
});

test('normalize: every byte split gives the same output', () => {
  const wire = Buffer.from('a\n..b\n.\n\n.\r\nx\r\n.\nNOT\r\n.\r\nNOOP\r\n');
  const want = 'a\r\n.b\r\n.\r\n\r\n.\r\nx\r\n.\r\nNOT\r\n';
  for (let i = 0; i <= wire.length; i++) {
    for (let j = i; j <= wire.length; j++) {
      const d = decode(wire, [i, j], NORM);
      assert.equal(d.error, undefined);
      assert.equal(d.out.toString(), want, `cuts ${i} ${j}`);
      assert.equal(d.rest!.toString(), 'NOOP\r\n');
    }
  }
});

test('normalize: "\\n.\\n", "\\r\\n.\\n", "\\n.\\r\\n" never end DATA (smuggling); they are content', () => {
  for (const s of ['\n.\n', '\r\n.\n', '\n.\r\n']) {
    const wire = Buffer.from(`hello${s}MAIL FROM:<evil@example.com>\r\nDATA\r\nevil\r\n.\r\nQUIT\r\n`);
    for (let cut = 0; cut <= wire.length; cut++) {
      const d = decode(wire, [cut], NORM);
      assert.equal(d.done, true, JSON.stringify(s));
      assert.equal(d.error, undefined, JSON.stringify(s));
      assert.equal(d.out.toString(), 'hello\r\n.\r\nMAIL FROM:<evil@example.com>\r\nDATA\r\nevil\r\n', JSON.stringify(s));
      assert.equal(d.rest!.toString(), 'QUIT\r\n', JSON.stringify(s));
    }
  }
});

test('normalize: a bare CR is still refused (bareCr) and only the literal CRLF.CRLF ends DATA', () => {
  for (const s of ['\r.\r', '\r\n.\r', '\r.\r\n', '\r\r\n', '\n.\r.\r\n']) {
    const wire = Buffer.from(`x${s}MAIL FROM:<evil@example.com>\r\n.\r\nQUIT\r\n`);
    for (let cut = 0; cut <= wire.length; cut++) {
      const d = decode(wire, [cut], NORM);
      assert.equal(d.error, 'bareCr', JSON.stringify(s));
      assert.equal(d.rest!.toString(), 'QUIT\r\n', JSON.stringify(s));
    }
  }
  assert.match(dataErrorReply('bareCr').lines[0]!, /bare <CR>/);
  assert.match(dataErrorReply('bareLf').lines[0]!, /bare <LF>/);
});

test('normalize: size counts the added CRs; line length does not', () => {
  // "012345678\n" is stored as 11 bytes, then the empty CRLF line before the end: 13 bytes
  assert.equal(decode(Buffer.from('012345678\n\r\n.\r\n'), [], { ...NORM, maxMessageSize: 13 }).error, undefined);
  assert.equal(decode(Buffer.from('0123456789\n\r\n.\r\n'), [], { ...NORM, maxMessageSize: 13 }).error, 'sizeExceeded');
  const lim = { ...NORM, maxLineLength: 1000 };
  assert.equal(decode(Buffer.from('x'.repeat(1000) + '\n.\r\n'), [], lim).error, undefined);
  assert.equal(decode(Buffer.from('x'.repeat(1001) + '\n\r\n.\r\n'), [], lim).error, 'lineTooLong');
});

test('normalize: an LF-only body of many lines is decoded in linear time (no rescans per line)', () => {
  const r = new DataReader({ maxLineLength: 1000, maxMessageSize: 1 << 30, bareNewline: 'normalize' });
  const chunk = Buffer.from('x'.repeat(63) + '\n');
  const big = Buffer.concat(Array.from({ length: 4096 }, () => chunk)); // 256 KiB, 4096 lines, no CR
  const t0 = process.hrtime.bigint();
  let bytes = 0;
  for (let i = 0; i < 64; i++) for (const b of r.feed(big).data) bytes += b.length; // 16 MiB
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  assert.equal(bytes, 64 * 4096 * 65);
  assert.ok(ms < 3000, `took ${ms} ms`);
});

test('property (normalize): random CRLF / LF line endings decode to the CRLF original', () => {
  fc.assert(fc.property(fc.array(fc.tuple(lineArb, fc.boolean()), { maxLength: 30 }), fc.array(fc.nat(2000), { maxLength: 12 }), (lines, cuts) => {
    // the wire: each line dot-stuffed, ended by CRLF or a bare LF; a lone "." line next to a bare LF stays "."
    let wire = '';
    let want = '';
    let prevLf = false;
    for (const [l, lf] of lines) {
      const lone = l === '.' && (lf || prevLf);
      wire += (l.startsWith('.') && !lone ? '.' + l : l) + (lf ? '\n' : '\r\n');
      want += l + '\r\n';
      prevLf = lf;
    }
    const d = decode(Buffer.from(wire + (prevLf ? '\r\n' : '') + '.\r\nT', 'latin1'), cuts, NORM);
    assert.equal(d.done, true);
    assert.equal(d.error, undefined);
    assert.equal(d.out.toString('latin1'), want + (prevLf ? '\r\n' : ''));
    assert.equal(d.rest!.toString(), 'T');
  }), { numRuns: 1000 });
});

test('normalize: a chunk of many bare-LF lines comes out as a few buffers, not two per line (one body write each)', () => {
  // 64 KiB of empty LF lines, of LF text lines and of "." LF lines: each is one body write per
  // returned buffer, so a body of bare LFs must not turn into millions of tiny writes (time, memory).
  for (const unit of ['\n', 'text line\n', '.\n', '..x\n']) {
    const r = new DataReader({ maxLineLength: 1000, maxMessageSize: 1 << 30, bareNewline: 'normalize' });
    const chunk = Buffer.from(unit.repeat(Math.ceil(65536 / unit.length)));
    const lines = chunk.length / unit.length;
    const res = r.feed(chunk);
    assert.ok(res.data.length <= 4, `${JSON.stringify(unit)}: ${res.data.length} buffers for ${lines} lines`);
    const want = unit === '..x\n' ? '.x\r\n' : unit === '.\n' ? '.\r\n' : unit.replace('\n', '\r\n');
    assert.equal(Buffer.concat(res.data).toString(), want.repeat(lines));
  }
});
