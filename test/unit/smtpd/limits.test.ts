/**
 * Limits and timeouts (RFC 5321 4.5.3.1.4 line length, 4.5.3.2 timeouts): long command lines,
 * maxErrors, idle and data timeouts, connection limits, graceful close.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, serverFor, ehlo, testConfig, RawClient, type Running } from './helpers.js';

async function waitFor(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(cond(), what);
}

test('command lines: 512 octets accepted, 513 refused (500 5.5.2), MAIL/RCPT get extension room, huge lines survive', async (t) => {
  const s = await serverFor(t);
  const { c } = await ehlo(s.port);
  assert.match(await c.cmd('NOOP ' + 'x'.repeat(512 - 7)), /^250 /);
  assert.match(await c.cmd('NOOP ' + 'x'.repeat(513 - 7)), /^500 5\.5\.2/);
  assert.match(await c.cmd(`MAIL FROM:<a@example.org> AUTH=${'q'.repeat(480)} ENVID=${'e'.repeat(100)}`), /^250 /);
  assert.match(await c.cmd(`RCPT TO:<b@example.org> ORCPT=rfc822;${'o'.repeat(480)}`), /^250 /);
  assert.match(await c.cmd(`RCPT TO:<b@example.org> ORCPT=rfc822;${'o'.repeat(1100)}`), /^500 5\.5\.2/);
  c.write('NOOP ' + 'y'.repeat(200_000) + '\r\n');
  assert.match(await c.last(), /^500 5\.5\.2/);
  assert.match(await c.cmd('NOOP'), /^250 /, 'the session goes on');
  c.write(Buffer.from([0x4e, 0x4f, 0x4f, 0x50, 0x20, 0xff, 0xfe, 13, 10]));
  assert.match(await c.last(), /^500 5\.5\.2/, 'invalid UTF-8');
  c.destroy();
});

test('maxErrors: the error that reaches the limit is followed by 421 4.7.0 and close', async (t) => {
  const s = await serverFor(t, testConfig({ limits: { maxErrors: 3 } }));
  const { c } = await ehlo(s.port);
  assert.match(await c.cmd('BOGUS'), /^500 /);
  assert.match(await c.cmd('RCPT TO:<a@b.example>'), /^503 /);
  c.write('BOGUS\r\n');
  assert.match(await c.last(), /^500 /);
  assert.match(await c.last(), /^421 4\.7\.0 Too many errors/);
  await c.closed();
});

test('idle timeout waiting for a command: 421 4.4.2 and close', async (t) => {
  const s = await serverFor(t, testConfig({ timeouts: { commandMs: 150 } }));
  const { c } = await ehlo(s.port);
  assert.match(await c.last(), /^421 4\.4\.2/);
  await c.closed();
  await waitFor(() => s.server.connectionCount() === 0, 'session gone');
});

test('data block timeout during DATA: 421 4.4.2, the message is abandoned', async (t) => {
  const s = await serverFor(t, testConfig({ timeouts: { dataBlockMs: 150 } }));
  const { c } = await ehlo(s.port);
  c.write('MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n');
  await c.last(); await c.last();
  assert.match(await c.last(), /^354 /);
  c.write('partial line\r\n');
  assert.match(await c.last(), /^421 4\.4\.2/);
  await c.closed();
  await waitFor(() => s.sink.aborted === 1, 'message aborted');
  assert.equal(s.sink.messages.length, 0);
});

test('session time limit: 421 4.4.2 even while the client is active (command timeout is 5 min)', async (t) => {
  const s = await startServer(testConfig({ timeouts: { sessionMs: 300 } }));
  t.after(() => s.server.close(1000));
  const { c } = await ehlo(s.port);
  assert.match(await c.cmd('NOOP'), /^250 /);
  assert.match(await c.last(), /^421 4\.4\.2/);
  await c.closed();
});

async function limitTest(t: TestContext, limits: object): Promise<void> {
  const s: Running = await serverFor(t, testConfig({ limits }));
  const a = await RawClient.connect(s.port);
  const b = await RawClient.connect(s.port);
  assert.match(await a.last(), /^220 /);
  assert.match(await b.last(), /^220 /);
  const third = await RawClient.connect(s.port);
  assert.match(await third.last(), /^421 4\.7\.0/);
  await third.closed();
  assert.equal(await a.cmd('QUIT'), '221 2.0.0 mx.test closing connection');
  await a.closed();
  await waitFor(() => s.server.connectionCount() === 1, 'first session gone');
  const fourth = await RawClient.connect(s.port);
  assert.match(await fourth.last(), /^220 /, 'a slot is free again');
  b.destroy();
  fourth.destroy();
}

test('maxConnectionsPerIp: 421 4.7.0 at connect beyond the limit', (t) => limitTest(t, { maxConnectionsPerIp: 2 }));
test('maxConnections: 421 4.7.0 at connect beyond the limit', (t) => limitTest(t, { maxConnections: 2 }));

test('close(): idle sessions get 421, in-flight transactions finish, then the server stops', async (t) => {
  const s = await serverFor(t);
  const idle = (await ehlo(s.port)).c;
  const busy = (await ehlo(s.port)).c;
  busy.write('MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n');
  await busy.last(); await busy.last();
  assert.match(await busy.last(), /^354 /);
  busy.write('first part\r\n');
  const closing = s.server.close(10_000);
  assert.match(await idle.last(), /^421 4\.3\.2/);
  await idle.closed();
  busy.write('second part\r\n.\r\n');
  assert.match(await busy.last(), /^250 2\.0\.0 OK queued/);
  assert.match(await busy.last(), /^421 4\.3\.2/);
  await busy.closed();
  await closing;
  assert.equal(s.server.connectionCount(), 0);
  assert.equal(s.sink.messages[0]!.data.toString(), 'first part\r\nsecond part\r\n');
  await assert.rejects(RawClient.connect(s.port));
});

test('close(graceMs): a transaction that does not finish in time is dropped', async (t) => {
  const s = await serverFor(t);
  const { c } = await ehlo(s.port);
  c.write('MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n');
  await c.last(); await c.last(); await c.last();
  await s.server.close(100);
  await c.closed();
  assert.equal(s.server.connectionCount(), 0);
  assert.equal(s.sink.messages.length, 0);
  assert.equal(s.sink.aborted, 1);
});

test('a client that pipelines but never reads its replies is not read further (bounded memory)', async (t) => {
  const s = await serverFor(t);
  const { connect } = await import('node:net');
  const sock = connect({ port: s.port, host: '127.0.0.1' });
  sock.on('error', () => {});
  await new Promise((r) => sock.once('connect', r));
  sock.pause(); // never read: replies pile up
  // Live memory after a full GC (not RSS, which depends on when the collector last ran).
  const { setFlagsFromString } = await import('node:v8');
  const { runInNewContext } = await import('node:vm');
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const live = () => { gc(); const m = process.memoryUsage(); return m.heapUsed + m.arrayBuffers; };
  const before = live();
  // 12 MB of commands would make 28 MB of replies: far more than the kernel's socket buffers hold.
  const burst = Buffer.from('NOOP\r\n'.repeat(200_000));
  for (let i = 0; i < 10; i++) sock.write(burst);
  // Without reply backpressure the server reads all of it within about 2 s (and its memory grows
  // by tens of MB: 46 MB measured); with it, the server stops reading once its unsent replies pass
  // 64 KiB (3.5 MB measured).
  await new Promise((r) => setTimeout(r, 4000));
  const grownMb = (live() - before) / 1e6;
  assert.ok(grownMb < 20, `memory stays bounded while a client does not read (live memory grew ${grownMb.toFixed(0)} MB)`);
  sock.destroy();
});
