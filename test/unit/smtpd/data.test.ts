/**
 * DATA over real sockets (RFC 5321 4.1.1.4, 4.5.2): dot-unstuffing, size and line limits, bare CR/LF
 * smuggling (the smuggled part never becomes a second message), sink failures, backpressure.
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { StoreError, PostlineError } from '../../../src/core/errors.js';
import { R } from '../../../src/core/reply.js';
import { startServer, serverFor, ehlo, testConfig, type RawClient, type Running } from './helpers.js';

let srv: Running;
/** A listener with bareNewline: reject (the strict mode; bare-newline.test.ts covers normalize). */
let strict: Running;
before(async () => {
  srv = await startServer(testConfig({ limits: { maxMessageSize: 200_000, maxLineLength: 1000 } }));
  strict = await startServer(testConfig({ limits: { maxMessageSize: 200_000, maxLineLength: 1000 }, listener: { bareNewline: 'reject' } }));
});
after(async () => { await Promise.all([srv.server.close(1000), strict.server.close(1000)]); });

/** Starts a transaction and DATA; returns after the 354. */
async function begin(c: RawClient, rcpt = 'b@example.org'): Promise<void> {
  c.write(`MAIL FROM:<a@example.org>\r\nRCPT TO:<${rcpt}>\r\nDATA\r\n`);
  assert.match(await c.last(), /^250 /);
  assert.match(await c.last(), /^250 /);
  assert.match(await c.last(), /^354 /);
}

test('dot-unstuffing is exact and CRLFs are kept', async () => {
  const { c } = await ehlo(srv.port);
  await begin(c);
  c.write('..\r\n...leading\r\n.x\r\nmiddle . dot\r\n. \r\n\r\nend');
  c.write('\r\n.\r\n');
  assert.match(await c.last(), /^250 2\.0\.0 OK queued as /);
  assert.equal(srv.sink.messages.at(-1)!.data.toString(), '.\r\n..leading\r\nx\r\nmiddle . dot\r\n \r\n\r\nend\r\n');
  c.destroy();
});

test('message over maxMessageSize during DATA: read to the end, then 552 5.3.4; session goes on', async () => {
  const { c } = await ehlo(srv.port);
  const before = srv.sink.messages.length;
  await begin(c);
  const line = 'x'.repeat(998) + '\r\n';
  for (let i = 0; i < 250; i++) c.write(line);
  c.write('.\r\nNOOP\r\n');
  assert.match(await c.last(), /^552 5\.3\.4/);
  assert.match(await c.last(), /^250 /);
  assert.equal(srv.sink.messages.length, before);
  assert.ok(srv.sink.aborted > 0);
  assert.match(await c.cmd('RCPT TO:<b@example.org>'), /^503 /, 'the transaction ended');
  c.destroy();
});

test('long data lines: exactly maxLineLength accepted, one more refused with 554 5.6.0', async () => {
  const { c } = await ehlo(srv.port);
  await begin(c);
  c.write('y'.repeat(1000) + '\r\n.\r\n');
  assert.match(await c.last(), /^250 /);
  assert.equal(srv.sink.messages.at(-1)!.data.length, 1002);
  await begin(c);
  c.write('y'.repeat(1001) + '\r\nmore\r\n.\r\n');
  assert.match(await c.last(), /^554 5\.6\.0/);
  assert.match(await c.cmd('NOOP'), /^250 /);
  c.destroy();
});

const SMUGGLE = ['\n.\n', '\r\n.\n', '\n.\r\n', '\r.\r', '\r.\r\n'];
for (const s of SMUGGLE) {
  test(`smuggling ${JSON.stringify(s)} (bareNewline: reject): refused with 550 5.5.2, the smuggled message is never accepted`, async () => {
    const { c } = await ehlo(strict.port);
    const before = strict.sink.messages.length;
    await begin(c, 'victim1@example.org');
    c.write(`Subject: first\r\n\r\nhello${s}MAIL FROM:<evil@example.org>\r\nRCPT TO:<victim2@example.org>\r\nDATA\r\nSubject: smuggled\r\n\r\nevil\r\n.\r\nNOOP\r\n`);
    assert.match(await c.last(), s.startsWith('\r.') ? /^550 5\.5\.2 Error: bare <CR> received$/ : /^550 5\.5\.2 Error: bare <LF> received$/);
    assert.match(await c.last(), /^250 2\.0\.0 OK$/, 'NOOP after the real end');
    assert.equal(strict.sink.messages.length, before, 'nothing accepted');
    assert.ok(!strict.sink.messages.some((m) => m.envelope.mailFrom === 'evil@example.org'));
    c.destroy();
  });
}

test('bare LF in a command line (bareNewline: reject): 550 5.5.2 and close, the rest never runs', async () => {
  const { c } = await ehlo(strict.port);
  const begun = strict.sink.begun;
  c.write('MAIL FROM:<a@example.org>\nRCPT TO:<b@example.org>\r\nDATA\r\n');
  assert.equal(await c.last(), '550 5.5.2 Error: bare <LF> received');
  await c.closed();
  assert.equal(strict.sink.begun, begun, 'no DATA ran');
});

test('bytes pipelined after the end of data are the next commands', async () => {
  const { c } = await ehlo(srv.port);
  await begin(c);
  c.write('one\r\n.\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n');
  assert.match(await c.last(), /^250 2\.0\.0 OK queued/);
  assert.match(await c.last(), /^250 2\.1\.0/);
  assert.match(await c.last(), /^250 2\.1\.5/);
  assert.match(await c.last(), /^354 /);
  assert.match(await c.cmd('two\r\n.'), /^250 2\.0\.0 OK queued/);
  assert.deepEqual(srv.sink.messages.slice(-2).map((m) => m.data.toString()), ['one\r\n', 'two\r\n']);
  c.destroy();
});

test('sink failures: begin refuses (452), finish throws PostlineError (its reply) or other (451)', async () => {
  const { c } = await ehlo(srv.port);
  srv.sink.failBegin = new StoreError('full', { full: true });
  c.write('MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n');
  await c.last(); await c.last();
  assert.match(await c.last(), /^452 4\.3\.1/);
  srv.sink.failBegin = undefined;
  srv.sink.failFinish = new PostlineError('ERR_LOOP', 'loop', { temporary: false, reply: R.tooManyHops });
  await begin(c);
  assert.match(await c.cmd('x\r\n.'), /^554 5\.4\.6/);
  srv.sink.failFinish = new Error('disk on fire');
  await begin(c);
  assert.match(await c.cmd('x\r\n.'), /^451 4\.3\.0/);
  srv.sink.failFinish = undefined;
  c.destroy();
});

test('BODY=BINARYMIME is not offered (555) and the session goes on', async () => {
  const { c } = await ehlo(srv.port);
  assert.match(await c.cmd('MAIL FROM:<a@example.org> BODY=BINARYMIME'), /^555 5\.5\.4/);
  assert.match(await c.cmd('MAIL FROM:<a@example.org>'), /^250 /);
  c.destroy();
});

test('backpressure: a slow sink still receives every byte in order', async (t) => {
  const s = await serverFor(t, testConfig({ limits: { maxMessageSize: 50 * 1024 * 1024 } }));
  s.sink.highWater = 4096;
  const { c } = await ehlo(s.port);
  await begin(c);
  const lines: string[] = [];
  for (let i = 0; i < 40_000; i++) lines.push(`line ${i} ${'z'.repeat(i % 90)}`);
  const body = lines.join('\r\n') + '\r\n';
  c.write(body + '.\r\n');
  assert.match(await c.last(20_000), /^250 /);
  assert.equal(s.sink.messages[0]!.data.toString(), body);
  c.destroy();
});

test('a multi-megabyte single line is streamed and refused (554 5.6.0) without reaching the sink', async () => {
  const { c } = await ehlo(srv.port);
  const before = srv.sink.messages.length;
  await begin(c);
  const chunk = 'w'.repeat(64 * 1024);
  for (let i = 0; i < 64; i++) c.write(chunk); // 4 MiB, no line end
  c.write('\r\n.\r\n');
  assert.match(await c.last(10_000), /^554 5\.6\.0/);
  assert.equal(srv.sink.messages.length, before);
  assert.match(await c.cmd('NOOP'), /^250 /);
  c.destroy();
});
