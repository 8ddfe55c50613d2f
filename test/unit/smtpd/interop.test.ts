/** Interop with real clients: nodemailer (plain, STARTTLS, implicit TLS, AUTH) and Python smtplib. */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import nodemailer from 'nodemailer';
import { startServer, testConfig, type Running } from './helpers.js';

let mx: Running;
let plain: Running;
let smtps: Running;
before(async () => {
  mx = await startServer();
  plain = await startServer(testConfig({ listener: { tls: 'none' } }));
  smtps = await startServer(testConfig({ listener: { tls: 'implicit', role: 'submission' } }));
});
after(async () => { await Promise.all([mx.server.close(1000), plain.server.close(1000), smtps.server.close(1000)]); });

const message = {
  from: 'sender@example.org',
  to: ['one@example.net', 'two@example.net'],
  subject: 'interop',
  text: 'Hello\n.leading dot\nlast line\n',
};

test('nodemailer: plaintext', async () => {
  const t = nodemailer.createTransport({ host: '127.0.0.1', port: plain.port, secure: false, ignoreTLS: true });
  const info = await t.sendMail(message);
  assert.deepEqual(info.accepted, ['one@example.net', 'two@example.net']);
  const m = plain.sink.messages.at(-1)!;
  assert.equal(m.envelope.mailFrom, 'sender@example.org');
  assert.match(m.data.toString(), /\r\n\.leading dot\r\n/);
  assert.match(info.response, /^250 2\.0\.0 OK queued as /);
  t.close();
});

test('nodemailer: STARTTLS with AUTH PLAIN and LOGIN', async () => {
  for (const authMethod of ['PLAIN', 'LOGIN']) {
    const t = nodemailer.createTransport({
      host: '127.0.0.1', port: mx.port, secure: false, requireTLS: true, tls: { rejectUnauthorized: false },
      auth: { user: 'alice', pass: 'secret' }, authMethod,
    });
    await t.sendMail(message);
    const m = mx.sink.messages.at(-1)!;
    assert.equal(m.session.authUser, 'alice');
    assert.ok(m.session.tls);
    t.close();
  }
  const bad = nodemailer.createTransport({
    host: '127.0.0.1', port: mx.port, secure: false, requireTLS: true, tls: { rejectUnauthorized: false }, auth: { user: 'alice', pass: 'nope' },
  });
  await assert.rejects(bad.sendMail(message), /535/);
  bad.close();
});

test('nodemailer: implicit TLS submission with AUTH, a large message', async () => {
  const t = nodemailer.createTransport({
    host: '127.0.0.1', port: smtps.port, secure: true, tls: { rejectUnauthorized: false }, auth: { user: 'alice', pass: 'secret' },
  });
  const big = 'z'.repeat(76) + '\n';
  await t.sendMail({ ...message, text: big.repeat(20_000) });
  const m = smtps.sink.messages.at(-1)!;
  assert.ok(m.data.length > 20_000 * 77);
  assert.equal(m.session.authUser, 'alice');
  t.close();
});

function python(script: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('python3', ['-c', script, String(port)], { timeout: 20_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${err.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

test('Python smtplib: STARTTLS, AUTH, sendmail with SMTPUTF8 and a dot line', async () => {
  const out = await python(`
import smtplib, ssl, sys
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]), timeout=10)
s.ehlo('py.test'); s.starttls(context=ctx); s.ehlo('py.test')
s.login('alice', 'secret')
s.sendmail('py@example.org', ['to@example.net'], b'Subject: py\\r\\n\\r\\n.dot first\\r\\nend\\r\\n')
s.sendmail('j\\u00f6ran@example.org', ['to@example.net'], 'Subject: u\\r\\n\\r\\nhi\\r\\n'.encode(), mail_options=['SMTPUTF8'])
print(s.noop()[0]); s.quit()
`, mx.port);
  assert.equal(out.trim(), '250');
  const [a, b] = mx.sink.messages.slice(-2);
  assert.equal(a!.data.toString(), 'Subject: py\r\n\r\n.dot first\r\nend\r\n');
  assert.equal(b!.envelope.mailFrom, 'jöran@example.org');
  assert.equal(b!.envelope.smtputf8, true);
});

test('Python smtplib: refused recipient and plaintext on a tls: none listener', async () => {
  const out = await python(`
import smtplib, sys
s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]), timeout=10)
try:
    s.sendmail('py@example.org', ['unknown@example.net'], b'x\\r\\n')
except smtplib.SMTPRecipientsRefused as e:
    print(e.recipients['unknown@example.net'][0])
print(s.sendmail('py@example.org', ['ok@example.net', 'unknown2@example.net'], b'Subject: x\\r\\n\\r\\nbody\\r\\n'))
s.quit()
`, plain.port);
  const lines = out.trim().split('\n');
  assert.equal(lines[0], '550');
  assert.match(lines[1]!, /unknown2@example\.net.*550/);
  assert.deepEqual(plain.sink.messages.at(-1)!.envelope.recipients.map((r) => r.address), ['ok@example.net']);
});
