/**
 * Bare LF / bare CR over real sockets (issue 15 items 4 and 5): the listener's bareNewline
 * (normalize | reject) for command lines, AUTH responses, DATA and BDAT; smuggling never works.
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, ehlo, testConfig, type RawClient, type Running } from './helpers.js';

let norm: Running;
let rej: Running;
before(async () => {
  norm = await startServer(testConfig({ listener: { allowPlaintextAuth: true } }));
  rej = await startServer(testConfig({ listener: { bareNewline: 'reject', allowPlaintextAuth: true } }));
});
after(async () => { await Promise.all([norm.server.close(1000), rej.server.close(1000)]); });

const b64 = (s: string) => Buffer.from(s).toString('base64');

async function begin(c: RawClient, rcpt = 'b@example.org'): Promise<void> {
  c.write(`MAIL FROM:<a@example.org>\r\nRCPT TO:<${rcpt}>\r\nDATA\r\n`);
  assert.match(await c.last(), /^250 /);
  assert.match(await c.last(), /^250 /);
  assert.match(await c.last(), /^354 /);
}

test('default listener config is bareNewline: normalize', () => {
  assert.equal(testConfig().listeners[0]!.bareNewline, 'normalize');
});

test('normalize: a bare LF ends the command line ("NOOP\\nMAIL FROM" is two whole commands)', async () => {
  const { c } = await ehlo(norm.port);
  c.write('NOOP\nMAIL FROM:<a@example.org>\r\n');
  assert.equal(await c.last(), '250 2.0.0 OK');
  assert.equal(await c.last(), '250 2.1.0 Sender OK');
  assert.match(await c.cmd('RSET'), /^250 /);
  c.write('EHLO lf.client\n');
  assert.match((await c.reply()).at(-1)!, /^250 /);
  c.write('NO\rOP\r\n'); // a bare CR inside a command stays refused
  assert.match(await c.last(), /^500 5\.5\.2/);
  c.write('NOOP\r\r\n');
  assert.match(await c.last(), /^500 5\.5\.2/);
  assert.match(await c.cmd('NOOP'), /^250 /);
  c.destroy();
});

test('reject: a command line ending in a bare LF gets 550 5.5.2 Error: bare <LF> received and the session ends', async () => {
  const { c } = await ehlo(rej.port);
  c.write('NOOP\nMAIL FROM:<a@example.org>\r\n');
  assert.equal(await c.last(), '550 5.5.2 Error: bare <LF> received');
  await c.closed();
  const again = await ehlo(rej.port); // bare CR: 500, the session goes on
  again.c.write('NO\rOP\r\n');
  assert.match(await again.c.last(), /^500 5\.5\.2/);
  assert.match(await again.c.cmd('NOOP'), /^250 /);
  again.c.destroy();
});

test('reject: an over-long command line ending in a bare LF also gets 550 and the session ends (not 500 and the rest as a command)', async () => {
  for (const split of [false, true]) {
    const { c } = await ehlo(rej.port);
    const long = 'NOOP ' + 'x'.repeat(40_000); // longer than any command line: discarded as it arrives
    if (split) { // the CR-less end arrives in a later segment than the discarded bytes
      c.write(long);
      await new Promise((r) => setTimeout(r, 50));
      c.write('\nMAIL FROM:<a@example.org>\r\n');
    } else c.write(long + '\nMAIL FROM:<a@example.org>\r\n');
    assert.equal(await c.last(), '550 5.5.2 Error: bare <LF> received', `split ${split}`);
    await c.closed();
  }
  const { c } = await ehlo(rej.port); // over-long with CRLF: 500, the session goes on
  c.write('NOOP ' + 'x'.repeat(40_000) + '\r');
  await new Promise((r) => setTimeout(r, 50));
  c.write('\nNOOP\r\n');
  assert.match(await c.last(), /^500 5\.5\.2 Line too long/);
  assert.match(await c.last(), /^250 /);
  c.destroy();
});

test('AUTH responses follow the same rule (normalize: accepted; reject: 550 and close)', async () => {
  const n = await ehlo(norm.port);
  assert.match(await n.c.cmd('AUTH LOGIN'), /^334 /);
  n.c.write(b64('alice') + '\n');
  assert.match(await n.c.last(), /^334 /);
  n.c.write(b64('secret') + '\n');
  assert.match(await n.c.last(), /^235 /);
  n.c.destroy();
  const r = await ehlo(rej.port);
  assert.match(await r.c.cmd('AUTH PLAIN'), /^334 /);
  r.c.write(b64('\0alice\0secret') + '\n');
  assert.equal(await r.c.last(), '550 5.5.2 Error: bare <LF> received');
  await r.c.closed();
});

test('normalize: LF-only message lines are stored with CRLF; dots unstuffed; a lone "." next to an LF is content', async () => {
  const { c } = await ehlo(norm.port);
  await begin(c);
  c.write('Subject: lf\n\nline 1\n..stuffed\n.\nmixed\r\nlast\n');
  c.write('\r\n.\r\n');
  assert.match(await c.last(), /^250 2\.0\.0 OK queued as /);
  assert.equal(norm.sink.messages.at(-1)!.data.toString(), 'Subject: lf\r\n\r\nline 1\r\n.stuffed\r\n.\r\nmixed\r\nlast\r\n\r\n');
  c.destroy();
});

for (const s of ['\n.\n', '\r\n.\n', '\n.\r\n']) {
  test(`normalize: smuggling ${JSON.stringify(s)} does not end DATA; the "smuggled" commands are content of one message`, async () => {
    const { c } = await ehlo(norm.port);
    const before = norm.sink.messages.length;
    await begin(c, 'victim1@example.org');
    c.write(`Subject: first\r\n\r\nhello${s}MAIL FROM:<evil@example.org>\r\nRCPT TO:<victim2@example.org>\r\nDATA\r\nSubject: smuggled\r\n\r\nevil\r\n.\r\nNOOP\r\n`);
    assert.match(await c.last(), /^250 2\.0\.0 OK queued as /);
    assert.equal(await c.last(), '250 2.0.0 OK', 'NOOP after the real end');
    assert.equal(norm.sink.messages.length, before + 1, 'one message');
    const m = norm.sink.messages.at(-1)!;
    assert.deepEqual(m.envelope.recipients.map((r) => r.address), ['victim1@example.org']);
    assert.equal(m.data.toString(), 'Subject: first\r\n\r\nhello\r\n.\r\nMAIL FROM:<evil@example.org>\r\nRCPT TO:<victim2@example.org>\r\nDATA\r\nSubject: smuggled\r\n\r\nevil\r\n');
    assert.ok(!norm.sink.messages.some((x) => x.envelope.mailFrom === 'evil@example.org'));
    c.destroy();
  });
}

for (const s of ['\r.\r', '\r.\r\n', '\r\n.\r']) {
  test(`normalize: bare CR ${JSON.stringify(s)} is refused (550 5.5.2 bare <CR>), nothing smuggled`, async () => {
    const { c } = await ehlo(norm.port);
    const before = norm.sink.messages.length;
    await begin(c);
    c.write(`hello${s}MAIL FROM:<evil@example.org>\r\nRCPT TO:<v2@example.org>\r\nDATA\r\nevil\r\n.\r\nNOOP\r\n`);
    assert.equal(await c.last(), '550 5.5.2 Error: bare <CR> received');
    assert.equal(await c.last(), '250 2.0.0 OK');
    assert.equal(norm.sink.messages.length, before);
    c.destroy();
  });
}

test('reject: a bare LF in DATA refuses the message with 550 5.5.2 Error: bare <LF> received', async () => {
  const { c } = await ehlo(rej.port);
  const before = rej.sink.messages.length;
  await begin(c);
  c.write('Subject: x\n\nhello\n.\nMAIL FROM:<evil@example.org>\r\n.\r\nNOOP\r\n');
  assert.equal(await c.last(), '550 5.5.2 Error: bare <LF> received');
  assert.equal(await c.last(), '250 2.0.0 OK');
  assert.equal(rej.sink.messages.length, before);
  c.destroy();
});

async function bdatSend(srv: Running, chunks: string[]): Promise<{ c: RawClient; last: string }> {
  const { c } = await ehlo(srv.port);
  c.write('MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\n');
  assert.match(await c.last(), /^250 /);
  assert.match(await c.last(), /^250 /);
  let last = '';
  for (let i = 0; i < chunks.length; i++) {
    const data = Buffer.from(chunks[i]!, 'latin1');
    const isLast = i === chunks.length - 1;
    c.write(Buffer.concat([Buffer.from(`BDAT ${data.length}${isLast ? ' LAST' : ''}\r\n`), data]));
    last = await c.last();
  }
  return { c, last };
}

test('BDAT normalize: bare LFs become CRLF (also at chunk edges); CRLF split across chunks is kept', async () => {
  const { c, last } = await bdatSend(norm, ['Subject: b\n\nline\n.\nx\r', '\ny\n', '\nz\r\n']);
  assert.match(last, /^250 2\.0\.0 OK queued as /);
  assert.equal(norm.sink.messages.at(-1)!.data.toString(), 'Subject: b\r\n\r\nline\r\n.\r\nx\r\ny\r\n\r\nz\r\n');
  c.destroy();
});

test('BDAT: a bare CR is refused in normalize mode, a bare LF in reject mode (550 5.5.2, clear text)', async () => {
  const a = await bdatSend(norm, ['hello\r.\rMAIL FROM:<evil@x.test>\r\n']);
  assert.equal(a.last, '550 5.5.2 Error: bare <CR> received');
  assert.match(await a.c.cmd('NOOP'), /^250 /);
  a.c.destroy();
  const b = await bdatSend(norm, ['hello\r']);
  assert.equal(b.last, '550 5.5.2 Error: bare <CR> received');
  b.c.destroy();
  const r = await bdatSend(rej, ['hello\n.\nMAIL FROM:<evil@x.test>\r\n']);
  assert.equal(r.last, '550 5.5.2 Error: bare <LF> received');
  assert.match(await r.c.cmd('NOOP'), /^250 /);
  r.c.destroy();
});
