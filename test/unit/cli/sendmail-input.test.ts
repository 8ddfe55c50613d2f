import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { LineNormalizer, MAX_HEADER_BYTES, fromField, readMessage, type MessageOptions } from '../../../src/cli/sendmail-input.js';
import { EX, SendmailExit } from '../../../src/cli/sysexits.js';

/** Runs the normalizer over `input` cut at `cuts`. */
function normalize(input: Buffer, cuts: number[], stopAtDot: boolean): string {
  const n = new LineNormalizer(stopAtDot);
  const out: Buffer[] = [];
  let at = 0;
  for (const c of [...new Set(cuts)].filter((c) => c > 0 && c < input.length).sort((a, b) => a - b).concat(input.length)) {
    out.push(...n.push(input.subarray(at, c)));
    at = c;
    if (n.done) break;
  }
  out.push(...n.end());
  return Buffer.concat(out).toString('latin1');
}

test('LF, CRLF, lone CR and mixes become CRLF; a last line gets its end', () => {
  assert.equal(normalize(Buffer.from('a\nb\r\nc\rd'), [], false), 'a\r\nb\r\nc\r\nd\r\n');
  assert.equal(normalize(Buffer.from('a\r\n\r\nb\n\nc'), [], false), 'a\r\n\r\nb\r\n\r\nc\r\n');
  assert.equal(normalize(Buffer.from('x\r'), [], false), 'x\r\n');
  assert.equal(normalize(Buffer.from('x\r'), [], false), 'x\r\n');
  assert.equal(normalize(Buffer.from(''), [], false), '');
});

test('without -i a "." line ends the input, also split across chunks; with -i it is content', () => {
  const msg = Buffer.from('Subject: x\n\nbody\n.\nafter\n');
  assert.equal(normalize(msg, [], true), 'Subject: x\r\n\r\nbody\r\n');
  for (let cut = 1; cut < msg.length; cut++) assert.equal(normalize(msg, [cut], true), 'Subject: x\r\n\r\nbody\r\n', `cut at ${cut}`);
  assert.equal(normalize(msg, [], false), 'Subject: x\r\n\r\nbody\r\n.\r\nafter\r\n');
  assert.equal(normalize(Buffer.from('a\n..\n.x\n'), [], true), 'a\r\n..\r\n.x\r\n'); // only a lone "." ends it
  assert.equal(normalize(Buffer.from('a\n.'), [], true), 'a\r\n'); // a "." last line without its end
  assert.equal(normalize(Buffer.from('a\r\n.\r\nb'), [4], true), 'a\r\n');
});

test('property: the output does not depend on where the input is cut, and has only CRLF line ends', () => {
  const bytes = fc.array(fc.constantFrom(0x0d, 0x0a, 0x2e, 0x61, 0x20, 0xc3), { maxLength: 60 });
  fc.assert(fc.property(bytes, fc.array(fc.nat(60), { maxLength: 6 }), fc.boolean(), (b, cuts, stop) => {
    const input = Buffer.from(b);
    const whole = normalize(input, [], stop);
    assert.equal(normalize(input, cuts, stop), whole);
    assert.doesNotMatch(whole.replace(/\r\n/g, ''), /[\r\n]/);
  }), { numRuns: 500 });
});

async function* chunksOf(...parts: string[]): AsyncGenerator<Buffer> {
  for (const p of parts) yield Buffer.from(p, 'utf8');
}

async function read(input: AsyncIterable<Buffer>, over: Partial<MessageOptions> = {}): Promise<{ head: string; body: string; rcpts: readonly string[] }> {
  const m = await readMessage(input, { ignoreDots: true, extract: true, fromAddress: 'alice@host.test', ...over });
  const body: Buffer[] = [];
  for await (const b of m.body) body.push(b);
  return { head: m.head.toString('utf8'), body: Buffer.concat(body).toString('utf8'), rcpts: m.headerRecipients };
}

test('-t: recipients of To, Cc, Bcc; Bcc removed; a From added; the body streams after the head', async () => {
  const r = await read(chunksOf('To: A <a@x.test>, b@x.test\nCc: "C, D" <c@x.test>\nBcc: secret@x.test,\n  other@x.test\nSub', 'ject: hi\n\nline 1\nline 2\n'));
  assert.deepEqual(r.rcpts, ['a@x.test', 'b@x.test', 'c@x.test', 'secret@x.test', 'other@x.test']);
  assert.equal(r.head, 'To: A <a@x.test>, b@x.test\r\nCc: "C, D" <c@x.test>\r\nSubject: hi\r\nFrom: alice@host.test\r\n\r\n');
  assert.equal(r.body, 'line 1\r\nline 2\r\n');
});

test('-t with Resent-* fields: only the resent recipients; Resent-Bcc removed', async () => {
  const r = await read(chunksOf('To: orig@x.test\nResent-To: new@x.test\nResent-Bcc: hidden@x.test\nFrom: f@x.test\n\nb\n'));
  assert.deepEqual(r.rcpts, ['new@x.test', 'hidden@x.test']);
  assert.equal(r.head, 'To: orig@x.test\r\nResent-To: new@x.test\r\nFrom: f@x.test\r\n\r\n');
});

test('groups, local users and undisclosed recipients', async () => {
  const r = await read(chunksOf('To: root\nCc: team: a@x.test, b@x.test;\nBcc: undisclosed-recipients:;\n\nb\n'));
  assert.deepEqual(r.rcpts, ['root', 'a@x.test', 'b@x.test']);
});

test('a message without a header section, an mbox "From " line, and From: with -F names', async () => {
  const bare = await read(chunksOf('just a body\nsecond line\n'), { fullName: 'Cron Daemon' });
  assert.equal(bare.head, 'From: Cron Daemon <alice@host.test>\r\n\r\n');
  assert.equal(bare.body, 'just a body\r\nsecond line\r\n');
  const mbox = await read(chunksOf('From alice@host Mon Jan  1 12:00:00 2024\nSubject: s\n\nb\n'));
  assert.equal(mbox.head, 'Subject: s\r\nFrom: alice@host.test\r\n\r\n');
  const empty = await read(chunksOf(''));
  assert.equal(empty.head, 'From: alice@host.test\r\n\r\n');
  assert.equal(empty.body, '');
  assert.equal(fromField('a@x', 'CronDaemon'), 'CronDaemon <a@x>');
  assert.equal(fromField('a@x', 'Smith, John'), '"Smith, John" <a@x>');
  assert.equal(fromField('a@x', 'Jürgen'), '=?UTF-8?Q?J=C3=BCrgen?= <a@x>');
  assert.equal(fromField('a@x', undefined), 'a@x');
  const kept = await read(chunksOf('From: Someone <s@x.test>\n\nb\n'), { fullName: 'Ignored' });
  assert.equal(kept.head, 'From: Someone <s@x.test>\r\n\r\n');
});

test('a header section over 1 MiB is EX_DATAERR', async () => {
  const big = 'X-Long: ' + 'a'.repeat(MAX_HEADER_BYTES) + '\n\nbody\n';
  await assert.rejects(read(chunksOf(big)), (e: unknown) => e instanceof SendmailExit && e.exitCode === EX.DATAERR);
});
