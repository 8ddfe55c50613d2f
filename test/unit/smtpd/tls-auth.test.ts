/**
 * STARTTLS (RFC 3207), implicit TLS (RFC 8314) and AUTH PLAIN/LOGIN (RFC 4954, RFC 4616) over real
 * sockets, including the CVE-2011-0411 plaintext injection and submission's AUTH requirement.
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, serverFor, ehlo, testConfig, RawClient, type Running } from './helpers.js';

const b64 = (s: string) => Buffer.from(s).toString('base64');
let mx: Running;
let sub: Running;
before(async () => {
  mx = await startServer();
  sub = await startServer(testConfig({ listener: { role: 'submission' } }));
});
after(async () => { await Promise.all([mx.server.close(1000), sub.server.close(1000)]); });

async function tlsSession(port: number): Promise<RawClient> {
  const { c } = await ehlo(port);
  assert.equal(await c.cmd('STARTTLS'), '220 2.0.0 Ready to start TLS');
  await c.startTls();
  return c;
}

test('STARTTLS: state reset to no-EHLO, STARTTLS no longer offered, AUTH offered', async () => {
  const { c } = await ehlo(mx.port);
  await c.cmd('MAIL FROM:<a@example.org>');
  assert.match(await c.cmd('STARTTLS extra'), /^501 /);
  assert.equal(await c.cmd('STARTTLS'), '220 2.0.0 Ready to start TLS');
  await c.startTls();
  assert.match(await c.cmd('MAIL FROM:<a@example.org>'), /^503 /, 'EHLO needed again');
  c.write('EHLO again\r\n');
  const kw = (await c.reply()).map((l) => l.slice(4));
  assert.ok(!kw.includes('STARTTLS'));
  assert.ok(kw.includes('AUTH PLAIN LOGIN'));
  assert.match(await c.cmd('STARTTLS'), /^503 /);
  assert.match(await c.cmd('RCPT TO:<b@example.org>'), /^503 /, 'the old transaction is gone');
  c.destroy();
});

test('plaintext pipelined after STARTTLS is discarded (CVE-2011-0411)', async () => {
  const { c } = await ehlo(mx.port);
  c.write('STARTTLS\r\nMAIL FROM:<injected@example.org>\r\nRCPT TO:<x@example.org>\r\n');
  assert.equal(await c.last(), '220 2.0.0 Ready to start TLS');
  await c.startTls();
  c.write('EHLO x\r\n');
  const lines = await c.reply();
  assert.match(lines.at(-1)!, /^250 /, 'first reply under TLS is for EHLO, nothing injected answered');
  assert.match(await c.cmd('RCPT TO:<x@example.org>'), /^503 /, 'the injected MAIL never ran');
  assert.match(await c.cmd('MAIL FROM:<a@example.org>'), /^250 /);
  c.destroy();
});

test('AUTH refused before TLS (538), mechanisms and order', async () => {
  const { c } = await ehlo(mx.port);
  assert.match(await c.cmd('AUTH PLAIN ' + b64('\0alice\0secret')), /^538 5\.7\.11/);
  const t = await tlsSession(mx.port);
  assert.match(await t.cmd('AUTH PLAIN'), /^503 /, 'EHLO needed after STARTTLS');
  t.write('EHLO x\r\n');
  await t.reply();
  assert.match(await t.cmd('AUTH CRAM-MD5'), /^504 5\.5\.4/);
  assert.match(await t.cmd('AUTH'), /^501 /);
  c.destroy();
  t.destroy();
});

test('AUTH PLAIN: initial response, challenge, failure, cancel, bad base64, temp failure', async () => {
  const c = await tlsSession(mx.port);
  c.write('EHLO x\r\n');
  await c.reply();
  assert.match(await c.cmd('AUTH PLAIN ' + b64('\0alice\0wrong')), /^535 5\.7\.8/);
  assert.match(await c.cmd('AUTH PLAIN !!!'), /^501 5\.5\.2/);
  assert.equal(await c.cmd('AUTH PLAIN'), '334 ');
  assert.match(await c.cmd('*'), /^501 /);
  assert.equal(await c.cmd('AUTH PLAIN'), '334 ');
  assert.match(await c.cmd('not base64'), /^501 5\.5\.2/);
  assert.match(await c.cmd('AUTH PLAIN ' + b64('\0boom\0x')), /^454 4\.7\.0/);
  assert.match(await c.cmd('AUTH PLAIN ' + b64('bob\0alice\0secret')), /^535 /, 'authzid must match');
  assert.match(await c.cmd('AUTH PLAIN ' + b64('nonul')), /^501 /);
  assert.equal(await c.cmd('AUTH PLAIN'), '334 ');
  assert.match(await c.cmd(b64('\0alice\0secret')), /^235 2\.7\.0/);
  assert.match(await c.cmd('AUTH PLAIN ' + b64('\0alice\0secret')), /^503 /, 'already authenticated');
  c.destroy();
});

test('AUTH LOGIN: prompts, initial username, cancel', async () => {
  const c = await tlsSession(mx.port);
  c.write('EHLO x\r\n');
  await c.reply();
  assert.equal(await c.cmd('AUTH LOGIN'), `334 ${b64('Username:')}`);
  assert.equal(await c.cmd(b64('alice')), `334 ${b64('Password:')}`);
  assert.match(await c.cmd('*'), /^501 /);
  assert.equal(await c.cmd('AUTH LOGIN ' + b64('alice')), `334 ${b64('Password:')}`);
  assert.match(await c.cmd(b64('nope')), /^535 5\.7\.8/);
  assert.equal(await c.cmd('AUTH LOGIN ' + b64('alice')), `334 ${b64('Password:')}`);
  assert.match(await c.cmd(b64('secret')), /^235 /);
  c.destroy();
});

test('AUTH response lines longer than 12288 octets: 500 5.5.6', async () => {
  const c = await tlsSession(mx.port);
  c.write('EHLO x\r\n');
  await c.reply();
  assert.equal(await c.cmd('AUTH PLAIN'), '334 ');
  assert.match(await c.cmd('A'.repeat(13000)), /^500 5\.5\.6/);
  assert.match(await c.cmd('NOOP'), /^250 /);
  c.destroy();
});

test('submission: MAIL without AUTH gets 530 5.7.0 (before TLS: Must issue a STARTTLS command first); after AUTH it works', async () => {
  const { c } = await ehlo(sub.port);
  assert.equal(await c.cmd('MAIL FROM:<a@example.org>'), '530 5.7.0 Must issue a STARTTLS command first');
  c.destroy();
  const t = await tlsSession(sub.port);
  t.write('EHLO x\r\n');
  await t.reply();
  assert.equal(await t.cmd('MAIL FROM:<a@example.org>'), '530 5.7.0 Authentication required');
  assert.match(await t.cmd('AUTH PLAIN ' + b64('\0alice\0secret')), /^235 /);
  assert.match(await t.cmd('MAIL FROM:<a@example.org>'), /^250 /);
  assert.match(await t.cmd('RCPT TO:<b@example.org>'), /^250 /);
  assert.match(await t.cmd('DATA'), /^354 /);
  assert.match(await t.cmd('hi\r\n.'), /^250 /);
  const m = sub.sink.messages.at(-1)!;
  assert.equal(m.session.authUser, 'alice');
  assert.ok(m.session.tls?.protocol.startsWith('TLS'));
  assert.match(m.session.tls?.standardName ?? '', /^TLS_/, 'the IANA cipher suite name, for the Received tls clause');
  t.destroy();
});

test('allowPlaintextAuth offers AUTH without TLS; tls: none listeners refuse STARTTLS and AUTH', async (t) => {
  const plainAuth = await serverFor(t, testConfig({ listener: { allowPlaintextAuth: true } }));
  const { c, lines } = await ehlo(plainAuth.port);
  assert.ok(lines.some((l) => l.endsWith('AUTH PLAIN LOGIN')));
  assert.match(await c.cmd('AUTH PLAIN ' + b64('\0alice\0secret')), /^235 /);
  c.destroy();
  const none = await serverFor(t, testConfig({ listener: { tls: 'none' } }));
  const n = await ehlo(none.port);
  assert.ok(!n.lines.some((l) => /STARTTLS|AUTH/.test(l)));
  assert.match(await n.c.cmd('STARTTLS'), /^502 /);
  assert.match(await n.c.cmd('AUTH PLAIN'), /^502 /);
  n.c.destroy();
  const noMaterial = await serverFor(t, testConfig(), { tls: false });
  const m = await ehlo(noMaterial.port);
  assert.ok(!m.lines.some((l) => l.includes('STARTTLS')));
  assert.match(await m.c.cmd('STARTTLS'), /^454 4\.7\.0/);
  m.c.destroy();
});

test('implicit TLS listener: greeting under TLS, no STARTTLS, AUTH offered', async (t) => {
  const s = await serverFor(t, testConfig({ listener: { tls: 'implicit', role: 'submission' } }));
  const { c, lines } = await ehlo(s.port, { tls: true });
  assert.ok(!lines.some((l) => l.includes('STARTTLS')));
  assert.ok(lines.some((l) => l.endsWith('AUTH PLAIN LOGIN')));
  assert.match(await c.cmd('AUTH PLAIN ' + b64('\0alice\0secret')), /^235 /);
  c.destroy();
});

test('implicit TLS: a plaintext client or a silent one is dropped (handshake error / timeout), the server goes on', async (t) => {
  const s = await serverFor(t, testConfig({ listener: { tls: 'implicit' }, timeouts: { tlsHandshakeMs: 150 } }));
  const silent = await RawClient.connect(s.port);
  await silent.closed();
  const chatty = await RawClient.connect(s.port);
  chatty.write('EHLO plain.example\r\n');
  await chatty.closed();
  const { c } = await ehlo(s.port, { tls: true });
  assert.match(await c.cmd('NOOP'), /^250 /);
  c.destroy();
});

test('STARTTLS followed by garbage instead of a ClientHello closes the session', async () => {
  const { c } = await ehlo(mx.port);
  assert.equal(await c.cmd('STARTTLS'), '220 2.0.0 Ready to start TLS');
  c.write('this is not TLS\r\n');
  await c.closed();
});

test('submission with allowPlaintextAuth (or tls: none) keeps 530 5.7.0 Authentication required without TLS', async (t) => {
  for (const listener of [{ role: 'submission' as const, allowPlaintextAuth: true }, { role: 'submission' as const, tls: 'none' as const }]) {
    const s = await serverFor(t, testConfig({ listener }));
    const { c } = await ehlo(s.port);
    assert.equal(await c.cmd('MAIL FROM:<a@example.org>'), '530 5.7.0 Authentication required', JSON.stringify(listener));
    c.destroy();
  }
});
