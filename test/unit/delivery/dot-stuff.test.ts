/** Dot-stuffing (RFC 5321 4.5.2): stuff then unstuff is the identity over any chunking. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import fc from 'fast-check';
import { DotStuffer } from '../../../src/rfc5321/dot-stuff.js';

async function stuff(chunks: Buffer[]): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of Readable.from(chunks).pipe(new DotStuffer())) out.push(c as Buffer);
  return Buffer.concat(out);
}

/** Receiver side: strips the terminator and removes one leading '.' per line (RFC 5321 4.5.2). */
function unstuff(wire: Buffer): Buffer {
  const s = wire.toString('latin1');
  assert.ok(s.endsWith('\r\n.\r\n') || s === '.\r\n', 'ends with the end-of-data indicator');
  const body = s === '.\r\n' ? '' : s.slice(0, -3);
  const raw = body.split('\n');
  assert.ok(!raw.some((l, i) => i < raw.length - 1 && l === '.\r'), 'no premature terminator');
  const lines = raw.map((l) => (l.startsWith('.') ? l.slice(1) : l));
  return Buffer.from(lines.join('\n'), 'latin1');
}

test('examples', async () => {
  assert.equal((await stuff([])).toString(), '.\r\n');
  assert.equal((await stuff([Buffer.from('a\r\n')])).toString(), 'a\r\n.\r\n');
  assert.equal((await stuff([Buffer.from('a')])).toString(), 'a\r\n.\r\n');
  assert.equal((await stuff([Buffer.from('.a\r\n.\r\n..b')])).toString(), '..a\r\n..\r\n...b\r\n.\r\n');
  assert.equal((await stuff([Buffer.from('x\r\n'), Buffer.from('.y\r'), Buffer.from('\n')])).toString(), 'x\r\n..y\r\n.\r\n');
  assert.equal((await stuff([Buffer.from('x\r'), Buffer.from('\n')])).toString(), 'x\r\n.\r\n');
});

test('property: stuff then unstuff is the identity over random chunking', async () => {
  const body = fc.array(fc.constantFrom('.', '\r\n', 'a', '..', ' ', '\r', '\n.', 'é'), { maxLength: 60 }).map((a) => a.join(''));
  await fc.assert(
    fc.asyncProperty(body, fc.array(fc.nat(), { maxLength: 8 }), async (text, cuts) => {
      let input = Buffer.from(text, 'utf8');
      const endsCrlf = input.length >= 2 && input[input.length - 2] === 0x0d && input[input.length - 1] === 0x0a;
      const points = [...new Set(cuts.map((c) => c % (input.length + 1)))].sort((x, y) => x - y);
      const chunks: Buffer[] = [];
      let prev = 0;
      for (const c of [...points, input.length]) { chunks.push(input.subarray(prev, c)); prev = c; }
      const wire = await stuff(chunks.filter((c) => c.length > 0));
      if (input.length > 0 && !endsCrlf) input = Buffer.concat([input, Buffer.from('\r\n')]);
      assert.deepEqual(unstuff(wire), input);
    }),
    { numRuns: 400 },
  );
});
