/**
 * Session-level fuzzing: random mixes of valid commands, garbage, bare CR/LF and binary sent to a
 * real server, then a half-close. The session must end cleanly every time (no crash, no hang) and
 * the server must keep answering.
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { startServer, ehlo, testConfig, RawClient, type Running } from './helpers.js';

let srv: Running;
before(async () => { srv = await startServer(testConfig({ limits: { maxErrors: 1000, maxMessageSize: 4096 } })); });
after(async () => { await srv.server.close(1000); });

const pieces = fc.constantFrom(
  'EHLO x\r\n', 'HELO x\r\n', 'MAIL FROM:<a@example.org>\r\n', 'MAIL FROM:<> SIZE=10 BODY=BINARYMIME\r\n', 'RCPT TO:<b@example.org>\r\n',
  'RCPT TO:<unknown@example.org>\r\n', 'DATA\r\n', '.\r\n', '..\r\n', 'BDAT 3\r\n', 'BDAT 0 LAST\r\n', 'BDAT 5 LAST\r\n', 'RSET\r\n',
  'NOOP\r\n', 'AUTH PLAIN\r\n', 'AUTH LOGIN\r\n', '*\r\n', 'STARTTLS\r\n', 'VRFY x\r\n', '\n', '\r', '\r\n.\n', '\n.\r\n', '\0', 'é',
  'x'.repeat(600), 'QUIT\r\n',
);
const input = fc.array(fc.oneof(pieces, fc.string({ maxLength: 20 }), fc.uint8Array({ maxLength: 20 }).map((a) => Buffer.from(a).toString('latin1'))), { maxLength: 25 })
  .map((parts) => Buffer.from(parts.join(''), 'latin1'));

test('fuzz: random input then half-close always ends the session; the server keeps working', async () => {
  await fc.assert(fc.asyncProperty(input, async (bytes) => {
    const c = await RawClient.connect(srv.port);
    c.write(bytes);
    c.socket.end();
    await c.closed(10_000);
  }), { numRuns: 80 });
  const { c, lines } = await ehlo(srv.port);
  assert.match(lines.at(-1)!, /^250 /);
  assert.match(await c.cmd('QUIT'), /^221 /);
  for (let i = 0; i < 200 && srv.server.connectionCount() > 0; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(srv.server.connectionCount(), 0);
});
