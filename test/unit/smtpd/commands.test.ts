/** Conformance of the SMTP verbs (RFC 5321 4.1, 4.3.2) over real sockets: replies and state after errors. */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, serverFor, ehlo, RawClient, testConfig, HOST, type Running } from './helpers.js';

let srv: Running;
before(async () => { srv = await startServer(testConfig({ limits: { maxRecipients: 3, maxMessageSize: 5000, maxMessagesPerSession: 2 } })); });
after(async () => { await srv.server.close(1000); });

test('greeting, EHLO keywords (no AUTH before TLS), HELO', async () => {
  const c = await RawClient.connect(srv.port);
  assert.equal(await c.last(), `220 ${HOST} ESMTP Postline`);
  c.write('EHLO client.test\r\n');
  const lines = await c.reply();
  assert.equal(lines[0], `250-${HOST}`);
  const kw = lines.slice(1).map((l) => l.slice(4));
  for (const k of ['PIPELINING', 'SIZE 5000', '8BITMIME', 'SMTPUTF8', 'ENHANCEDSTATUSCODES', 'DSN', 'CHUNKING', 'STARTTLS']) assert.ok(kw.includes(k), k);
  assert.ok(!kw.some((k) => k.startsWith('AUTH')));
  assert.equal(await c.cmd('HELO client.test'), `250 ${HOST}`);
  assert.equal(await c.cmd('EHLO'), '501 5.5.4 Syntax error in parameters: expected a domain or address literal');
  assert.equal(await c.cmd('QUIT'), `221 2.0.0 ${HOST} closing connection`);
  await c.closed();
});

test('NOOP, VRFY, HELP, EXPN, unknown commands and syntax errors', async () => {
  const { c } = await ehlo(srv.port);
  assert.match(await c.cmd('NOOP'), /^250 2\.0\.0/);
  assert.match(await c.cmd('noop whatever'), /^250 /);
  assert.match(await c.cmd('VRFY alice'), /^252 2\.0\.0/);
  assert.match(await c.cmd('VRFY'), /^501 /);
  const help = await c.cmd('HELP');
  assert.match(help, /^214 2\.0\.0/);
  assert.match(await c.cmd('EXPN list'), /^502 5\.5\.1/);
  assert.match(await c.cmd('FOOBAR x'), /^500 5\.5\.1/);
  assert.match(await c.cmd('123'), /^500 5\.5\.2/);
  assert.match(await c.cmd(' NOOP'), /^500 5\.5\.2/);
  assert.match(await c.cmd('QUIT now'), /^501 /);
  c.destroy();
});

test('wrong order: MAIL before EHLO, RCPT before MAIL, DATA before RCPT, nested MAIL', async () => {
  const c = await RawClient.connect(srv.port);
  await c.last();
  assert.match(await c.cmd('MAIL FROM:<a@example.org>'), /^503 5\.5\.1/);
  assert.match(await c.cmd('EHLO x'), /^250 /);
  assert.match(await c.cmd('RCPT TO:<b@example.org>'), /^503 5\.5\.1/);
  assert.match(await c.cmd('DATA'), /^503 5\.5\.1/);
  assert.match(await c.cmd('MAIL FROM:<a@example.org>'), /^250 2\.1\.0/);
  assert.match(await c.cmd('MAIL FROM:<a@example.org>'), /^503 5\.5\.1/);
  assert.match(await c.cmd('DATA'), /^503 5\.5\.1/);
  assert.match(await c.cmd('DATA x'), /^501 /);
  c.destroy();
});

test('MAIL/RCPT syntax errors and policy rejections keep the transaction', async () => {
  const { c } = await ehlo(srv.port);
  assert.match(await c.cmd('MAIL FROM:a@example.org'), /^501 5\.1\.7/);
  assert.match(await c.cmd('MAIL TO:<a@example.org>'), /^501 5\.5\.4/);
  assert.match(await c.cmd('MAIL FROM:<blocked@example.org>'), /^553 5\.7\.1/);
  assert.match(await c.cmd('MAIL FROM:<a@example.org> FOO=1'), /^555 5\.5\.4/);
  assert.match(await c.cmd('MAIL FROM:<a@example.org> SIZE=1 SIZE=2'), /^501 5\.5\.4/);
  assert.match(await c.cmd('MAIL FROM:<ä@example.org>'), /^553 5\.6\.7/);
  assert.match(await c.cmd('MAIL FROM:<a@example.org> SIZE=100 BODY=8BITMIME RET=HDRS ENVID=id+2B1'), /^250 /);
  assert.match(await c.cmd('RCPT TO:<unknown@example.org>'), /^550 5\.1\.1/);
  assert.match(await c.cmd('RCPT TO:<bad address>'), /^501 5\.1\.3/);
  assert.match(await c.cmd('RCPT TO:<b@example.org> BAR=1'), /^555 5\.5\.4/);
  assert.match(await c.cmd('RCPT TO:<ü@example.org>'), /^553 5\.6\.7/);
  assert.match(await c.cmd('RCPT TO:<b@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b+40example.org'), /^250 2\.1\.5/);
  assert.match(await c.cmd('RCPT TO:<@hop.example:c@example.org>'), /^250 /);
  assert.match(await c.cmd('RCPT TO:<Postmaster>'), /^250 /);
  assert.match(await c.cmd('DATA'), /^354 /);
  assert.match(await c.cmd('Subject: t\r\n\r\nbody\r\n.'), /^250 2\.0\.0 OK queued as /);
  const m = srv.sink.messages.at(-1)!;
  assert.equal(m.envelope.mailFrom, 'a@example.org');
  assert.equal(m.envelope.bodyType, '8BITMIME');
  assert.equal(m.envelope.ret, 'HDRS');
  assert.equal(m.envelope.envid, 'id+1');
  assert.equal(m.envelope.declaredSize, 100);
  assert.deepEqual(m.envelope.recipients, [
    { address: 'b@example.org', notify: ['SUCCESS', 'FAILURE'], orcpt: { addrType: 'rfc822', address: 'b@example.org' } },
    { address: 'c@example.org' },
    { address: `postmaster@${HOST}` },
  ]);
  c.destroy();
});

test('SMTPUTF8 transaction and null reverse-path', async () => {
  const { c } = await ehlo(srv.port);
  assert.match(await c.cmd('MAIL FROM:<jöran@bücher.example> SMTPUTF8'), /^250 /);
  assert.match(await c.cmd('RCPT TO:<δοκιμή@παράδειγμα.δοκιμή>'), /^250 /);
  assert.match(await c.cmd('RSET'), /^250 /);
  assert.match(await c.cmd('MAIL FROM:<>'), /^250 /);
  assert.match(await c.cmd('RCPT TO:<x@example.org>'), /^250 /);
  c.write('DATA\r\n');
  assert.match(await c.last(), /^354 /);
  assert.match(await c.cmd('.'), /^250 /);
  assert.equal(srv.sink.messages.at(-1)!.envelope.mailFrom, '');
  assert.equal(srv.sink.messages.at(-1)!.data.length, 0);
  c.destroy();
});

test('HELO sessions refuse ESMTP parameters (555)', async () => {
  const c = await RawClient.connect(srv.port);
  await c.last();
  assert.match(await c.cmd('HELO x'), /^250 /);
  assert.match(await c.cmd('MAIL FROM:<a@example.org> SIZE=10'), /^555 5\.5\.4/);
  assert.match(await c.cmd('MAIL FROM:<a@example.org>'), /^250 /);
  assert.match(await c.cmd('RCPT TO:<b@example.org> NOTIFY=NEVER'), /^555 5\.5\.4/);
  c.destroy();
});

test('RSET clears the transaction; EHLO resets it too', async () => {
  const { c } = await ehlo(srv.port);
  assert.match(await c.cmd('MAIL FROM:<a@example.org>'), /^250 /);
  assert.match(await c.cmd('RSET'), /^250 2\.0\.0/);
  assert.match(await c.cmd('RCPT TO:<b@example.org>'), /^503 /);
  assert.match(await c.cmd('RSET x'), /^501 /);
  assert.match(await c.cmd('MAIL FROM:<a@example.org>'), /^250 /);
  assert.match(await c.cmd('RCPT TO:<b@example.org>'), /^250 /);
  c.write('EHLO again\r\n');
  await c.reply();
  assert.match(await c.cmd('DATA'), /^503 /);
  assert.match(await c.cmd('MAIL FROM:<a@example.org>'), /^250 /);
  c.destroy();
});

test('too many recipients: 452 4.5.3, the transaction goes on', async () => {
  const { c } = await ehlo(srv.port);
  await c.cmd('MAIL FROM:<a@example.org>');
  for (let i = 0; i < 3; i++) assert.match(await c.cmd(`RCPT TO:<r${i}@example.org>`), /^250 /);
  assert.match(await c.cmd('RCPT TO:<r4@example.org>'), /^452 4\.5\.3/);
  assert.match(await c.cmd('DATA'), /^354 /);
  assert.match(await c.cmd('x\r\n.'), /^250 /);
  assert.equal(srv.sink.messages.at(-1)!.envelope.recipients.length, 3);
  c.destroy();
});

test('SIZE= above the limit at MAIL: 552 5.3.4', async () => {
  const { c } = await ehlo(srv.port);
  assert.match(await c.cmd('MAIL FROM:<a@example.org> SIZE=5001'), /^552 5\.3\.4/);
  assert.match(await c.cmd('MAIL FROM:<a@example.org> SIZE=5000'), /^250 /);
  c.destroy();
});

test('maxMessagesPerSession: 421 at the next MAIL and close', async () => {
  const { c } = await ehlo(srv.port);
  for (let i = 0; i < 2; i++) {
    c.write('MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n');
    await c.reply(); await c.reply(); await c.reply();
    assert.match(await c.cmd('m\r\n.'), /^250 /);
  }
  assert.match(await c.cmd('MAIL FROM:<a@example.org>'), /^421 4\.7\.0/);
  await c.closed();
});

test('pipelined commands are answered in order, in one batch', async () => {
  const { c } = await ehlo(srv.port);
  let packets = 0;
  c.socket.on('data', () => { packets++; });
  c.write('RSET\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<unknown@example.org>\r\nRCPT TO:<b@example.org>\r\nNOOP\r\nRSET\r\n');
  const got: string[] = [];
  for (let i = 0; i < 6; i++) got.push(await c.last());
  assert.deepEqual(got.map((l) => l.slice(0, 3)), ['250', '250', '550', '250', '250', '250']);
  // the server answers a batch with one write; allow one split of the client's input by the network
  assert.ok(packets <= 2, `replies to one pipelined batch come in one write, not one per reply (got ${packets})`);
  assert.equal(c.socket.readyState, 'open');
  c.destroy();
});

test('policy checkConnect refusal is sent instead of the greeting', async (t) => {
  const s = await serverFor(t);
  s.policy.connectReply = { code: 554, enhanced: '5.7.1', lines: ['go away'] };
  const c = await RawClient.connect(s.port);
  assert.equal(await c.last(), '554 5.7.1 go away');
  await c.closed();
});
