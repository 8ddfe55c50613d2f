/** 8-bit → quoted-printable downgrade (RFC 6152 3, RFC 2045 6.7); 5.6.3 when not convertible. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { Readable } from 'node:stream';
import fc from 'fast-check';
import { createMimeDowngrade, MimeDowngradeError } from '../../../src/delivery/mime-downgrade.js';

const libqp = createRequire(import.meta.url)('libqp') as { decode(s: string): Buffer };

async function run(input: string | Buffer, chunk = 1 << 20): Promise<string> {
  const buf = Buffer.isBuffer(input) ? input : Buffer.from(input, 'utf8');
  const parts: Buffer[] = [];
  for (let i = 0; i < buf.length; i += chunk) parts.push(buf.subarray(i, i + chunk));
  const out: Buffer[] = [];
  for await (const c of Readable.from(parts).pipe(createMimeDowngrade())) out.push(c as Buffer);
  return Buffer.concat(out).toString('latin1');
}

test('8bit text part becomes quoted-printable', async () => {
  const out = await run('MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nhéllo\r\n');
  assert.match(out, /Content-Transfer-Encoding: quoted-printable\r\n\r\nh=C3=A9llo\r\n$/);
});

test('multipart: only the 8-bit part is rewritten, boundaries kept', async () => {
  const msg = 'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: 8bit\r\n\r\nçà\r\n--b\r\nContent-Type: text/plain\r\n\r\nplain\r\n--b--\r\n';
  const out = await run(msg, 7);
  assert.ok(!/[\x80-\xff]/.test(out));
  assert.match(out, /Content-Transfer-Encoding: quoted-printable\r\n\r\n=C3=A7=C3=A0\r\n--b\r\nContent-Type: text\/plain\r\n\r\nplain\r\n--b--\r\n$/);
});

test('a 7-bit message passes unchanged', async () => {
  const msg = 'Subject: x\r\nContent-Type: text/plain\r\n\r\nhello = world\r\n';
  assert.equal(await run(msg, 5), msg);
});

test('not convertible: 8-bit header, 8-bit attached message/rfc822, 8-bit header inside → MimeDowngradeError 5.6.3', async () => {
  await assert.rejects(run('Subject: é\r\n\r\nx\r\n'), (e: unknown) => e instanceof MimeDowngradeError && e.dsnStatus === '5.6.3');
  await assert.rejects(run('MIME-Version: 1.0\r\nContent-Type: message/rfc822\r\nContent-Disposition: attachment\r\nContent-Transfer-Encoding: 8bit\r\n\r\nSubject: y\r\n\r\nü\r\n'), MimeDowngradeError);
  await assert.rejects(run('MIME-Version: 1.0\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: 8bit\r\n\r\nSubject: ÿ\r\n\r\nü\r\n'), MimeDowngradeError);
});

test('an embedded message/rfc822 (e.g. the original in a DSN) is converted part by part and labelled 7bit', async () => {
  const dsn = 'MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=r\r\n\r\n--r\r\nContent-Type: text/plain\r\n\r\nbounce\r\n'
    + '--r\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: 8bit\r\n\r\nSubject: y\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nü\r\n--r--\r\n';
  const out = await run(dsn);
  assert.ok(!/[\x80-\xff]/.test(out), 'no 8-bit byte left');
  assert.match(out, /Content-Type: message\/rfc822\r\nContent-Transfer-Encoding: 7bit\r\n/);
  assert.match(out, /Content-Transfer-Encoding: quoted-printable\r\n[\s\S]*\r\n\r\n=C3=BC\r\n/);
  assert.match(out, /--r--\r\n$/);
});

test('property: decoded body equals the original text over any chunking', async () => {
  const text = fc.array(fc.constantFrom('a', 'é', ' ', '\r\n', '=', '-', '.', 'x'.repeat(90), '\t'), { maxLength: 40 }).map((a) => a.join(''));
  await fc.assert(
    fc.asyncProperty(text, fc.integer({ min: 1, max: 64 }), async (body, chunk) => {
      const head = 'MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n';
      const out = await run(head + body, chunk);
      assert.ok(!/[\x80-\xff]/.test(out));
      assert.ok(out.split('\r\n').every((l) => l.length <= 78), 'lines stay short');
      const encoded = out.slice(out.indexOf('\r\n\r\n') + 4);
      // Trailing whitespace before a line break is not significant in QP (RFC 2045 6.7 rule 3).
      const norm = (s: string) => s.replace(/[ \t]+(?=\r\n|$)/g, '');
      assert.equal(norm(libqp.decode(encoded).toString('utf8')), norm(body));
    }),
    { numRuns: 150 },
  );
});
