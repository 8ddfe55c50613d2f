/** BDAT / CHUNKING (RFC 3030) over real sockets: exact octet counts, LAST, BDAT 0 LAST, errors. */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, ehlo, testConfig, type RawClient, type Running } from './helpers.js';

let srv: Running;
/** bareNewline: reject (bare-newline.test.ts covers normalize). */
let strict: Running;
before(async () => {
  srv = await startServer(testConfig({ limits: { maxMessageSize: 1000 } }));
  strict = await startServer(testConfig({ limits: { maxMessageSize: 1000 }, listener: { bareNewline: 'reject' } }));
});
after(async () => { await Promise.all([srv.server.close(1000), strict.server.close(1000)]); });

async function tx(c: RawClient, mailParams = ''): Promise<void> {
  c.write(`MAIL FROM:<a@example.org>${mailParams}\r\nRCPT TO:<b@example.org>\r\n`);
  assert.match(await c.last(), /^250 /);
  assert.match(await c.last(), /^250 /);
}

test('chunks with exact octet counts, 8-bit and dot lines untouched, CRLF split across chunks', async () => {
  const { c } = await ehlo(srv.port);
  await tx(c, ' BODY=8BITMIME');
  const part1 = Buffer.from('Subject: b\r\n\r\n.line\r\n\0\xff 8-bit\r');
  const part2 = Buffer.from('\n.\r\nend\r\n');
  c.write(Buffer.concat([Buffer.from(`BDAT ${part1.length}\r\n`), part1]));
  assert.equal(await c.last(), `250 2.0.0 ${part1.length} octets received`);
  c.write(Buffer.concat([Buffer.from(`BDAT ${part2.length} LAST\r\n`), part2]));
  assert.match(await c.last(), /^250 2\.0\.0 OK queued as /);
  const m = srv.sink.messages.at(-1)!;
  assert.deepEqual(m.data, Buffer.concat([part1, part2]));
  assert.equal(m.envelope.bodyType, '8BITMIME');
  c.destroy();
});

test('BDAT 0 LAST: ends the message (also as the only chunk)', async () => {
  const { c } = await ehlo(srv.port);
  await tx(c);
  c.write('BDAT 5\r\nhelloBDAT 0 LAST\r\n');
  assert.match(await c.last(), /^250 2\.0\.0 5 octets/);
  assert.match(await c.last(), /^250 2\.0\.0 OK queued/);
  assert.equal(srv.sink.messages.at(-1)!.data.toString(), 'hello');
  await tx(c);
  assert.match(await c.cmd('BDAT 0 LAST'), /^250 2\.0\.0 OK queued/);
  assert.equal(srv.sink.messages.at(-1)!.data.length, 0);
  c.destroy();
});

test('BDAT out of sequence: the chunk is read and discarded, 503, session in sync', async () => {
  const { c } = await ehlo(srv.port);
  c.write('BDAT 12\r\nNOOP\r\nNOOP\r\nNOOP\r\n');
  assert.match(await c.last(), /^503 5\.5\.1/);
  assert.match(await c.last(), /^250 2\.0\.0 OK$/, 'one NOOP after the 12 discarded octets');
  c.write('MAIL FROM:<a@example.org>\r\n');
  assert.match(await c.last(), /^250 /);
  c.write('BDAT 4 LAST\r\nRSET');
  assert.match(await c.last(), /^503 5\.5\.1/, 'no recipients yet');
  assert.match(await c.cmd('RCPT TO:<b@example.org>'), /^250 /, 'transaction kept');
  assert.match(await c.cmd('BDAT x'), /^501 5\.5\.4/);
  c.destroy();
});

test('mixing BDAT and DATA: DATA after BDAT is refused; RSET ends the BDAT transaction', async () => {
  const { c } = await ehlo(srv.port);
  await tx(c);
  c.write('BDAT 3\r\nabc');
  assert.match(await c.last(), /^250 /);
  assert.match(await c.cmd('DATA'), /^503 5\.5\.1/);
  assert.match(await c.cmd('RCPT TO:<c@example.org>'), /^503 5\.5\.1/);
  const aborted = srv.sink.aborted;
  assert.match(await c.cmd('RSET'), /^250 /);
  assert.equal(srv.sink.aborted, aborted + 1, 'the open message was abandoned');
  assert.match(await c.cmd('BDAT 0 LAST'), /^503 /);
  c.destroy();
});

test('BDAT over maxMessageSize: 552 for this and every later chunk, the transaction ends at LAST', async () => {
  const { c } = await ehlo(srv.port);
  const before = srv.sink.messages.length;
  await tx(c);
  c.write(`BDAT 600\r\n${'a'.repeat(600)}`);
  assert.match(await c.last(), /^250 /);
  c.write(`BDAT 600\r\n${'b'.repeat(600)}`);
  assert.match(await c.last(), /^552 5\.3\.4/);
  c.write('BDAT 3\r\nccc');
  assert.match(await c.last(), /^552 5\.3\.4/);
  c.write('BDAT 1 LAST\r\nd');
  assert.match(await c.last(), /^552 5\.3\.4/);
  assert.equal(srv.sink.messages.length, before);
  assert.match(await c.cmd('MAIL FROM:<a@example.org>'), /^250 /, 'new transaction possible');
  c.destroy();
});

test('pipelined BDAT chunks and commands', async () => {
  const { c } = await ehlo(srv.port);
  c.write('MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nBDAT 2\r\nhiBDAT 3 LAST\r\n!!!NOOP\r\n');
  const got: string[] = [];
  for (let i = 0; i < 5; i++) got.push(await c.last());
  assert.deepEqual(got.map((l) => l.slice(0, 3)), ['250', '250', '250', '250', '250']);
  assert.match(got[3]!, /queued/);
  assert.equal(srv.sink.messages.at(-1)!.data.toString(), 'hi!!!');
  c.destroy();
});

test('BDAT (bareNewline: reject) refuses bare CR or LF (smuggling sequences) in any chunk, also split across chunks', async () => {
  const variants: Array<[string, string[]]> = [
    ['\\r.\\r', ['Subject: s\r\n\r\nhello\r.\rMAIL FROM:<evil@x.test>\r\n']],
    ['\\n.\\n', ['Subject: s\r\n\r\nhello\n.\nMAIL FROM:<evil@x.test>\r\n']],
    ['\\r\\n.\\r', ['Subject: s\r\n\r\nhello\r\n.\rRCPT\r\n']],
    ['CR at a chunk end, no LF next', ['Subject: s\r\n\r\nhello\r', '.\r\nx\r\n']],
    ['trailing CR at LAST', ['Subject: s\r\n\r\nhello\r']],
  ];
  for (const [name, chunks] of variants) {
    const before = strict.sink.messages.length;
    const { c } = await ehlo(strict.port);
    await tx(c);
    for (let i = 0; i < chunks.length; i++) {
      const data = Buffer.from(chunks[i]!, 'latin1');
      const last = i === chunks.length - 1;
      c.write(Buffer.concat([Buffer.from(`BDAT ${data.length}${last ? ' LAST' : ''}\r\n`), data]));
      const r = await c.last();
      if (last) assert.match(r, /^550 5\.5\.2/, name);
    }
    assert.equal(strict.sink.messages.length, before, `${name}: nothing queued`);
    assert.match(await c.cmd('NOOP'), /^250 /, `${name}: session in sync`);
    c.destroy();
  }
});
