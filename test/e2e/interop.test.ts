/**
 * Interop with real clients (swaks, Python smtplib, nodemailer) over plain SMTP, STARTTLS and implicit
 * TLS, with AUTH, through the real `postline serve` process, relayed to Postfix's smtp-sink.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import nodemailer from 'nodemailer';
import { PostlineProcess } from '../helpers/postline-process.js';
import { SmtpSink } from '../helpers/smtp-sink.js';
import { waitFor } from '../helpers/net.js';

let sink: SmtpSink;
let pl: PostlineProcess;
const USER = 'alice@example.test';
const PASS = 'correct horse battery staple';

before(async () => {
  sink = await new SmtpSink().start();
  pl = new PostlineProcess({
    listeners: [
      { name: 'mx', role: 'mx', tls: 'starttls' },
      { name: 'submission', role: 'submission', tls: 'starttls' },
      { name: 'smtps', role: 'submission', tls: 'implicit' },
    ],
    config: {
      relay: { trustedNetworks: ['127.0.0.0/8'], localDomains: ['example.test'] },
      delivery: { relayhost: { host: '127.0.0.1', port: sink.port, tls: 'none' }, retry: { initialMs: 500, maxMs: 2000 } },
    },
  });
  await pl.writeConfig();
  const add = await pl.cli(['user', 'add', USER], PASS + '\n');
  assert.equal(add.code, 0, add.stderr);
  await pl.start();
});

after(async () => {
  await pl?.cleanup();
  await sink?.cleanup();
});

/** Waits until the sink holds a message whose recipient args mention `rcpt`; returns it. */
async function arrived(rcpt: string) {
  return waitFor(`a message for ${rcpt} at the sink`, () => sink.messages().find((m) => m.rcptArgs.some((r) => r.includes(rcpt))), 30_000);
}

function swaks(args: string[]): { status: number | null; out: string } {
  const r = spawnSync('swaks', ['--hide-all', '--timeout', '20', ...args], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

test('swaks: plain SMTP on the mx listener (trusted network)', async () => {
  const r = swaks(['--server', `127.0.0.1:${pl.port('mx')}`, '--from', 'sender@example.org', '--to', 'swaks-plain@remote.test', '--header', 'Subject: swaks plain']);
  assert.equal(r.status, 0, r.out);
  const m = await arrived('swaks-plain@remote.test');
  assert.match(m.data.toString(), /Subject: swaks plain/);
  assert.match(m.data.toString(), /^Received: from /);
});

test('swaks: STARTTLS + AUTH PLAIN on submission', async () => {
  const r = swaks(['--server', `127.0.0.1:${pl.port('submission')}`, '--tls', '--auth', 'PLAIN', '--auth-user', USER, '--auth-password', PASS, '--from', USER, '--to', 'swaks-tls@remote.test']);
  assert.equal(r.status, 0, r.out);
  const m = await arrived('swaks-tls@remote.test');
  assert.match(m.data.toString(), /with ESMTPSA/);
});

test('swaks: implicit TLS + AUTH LOGIN on smtps', async () => {
  const r = swaks(['--server', `127.0.0.1:${pl.port('smtps')}`, '--tlsc', '--auth', 'LOGIN', '--auth-user', USER, '--auth-password', PASS, '--from', USER, '--to', 'swaks-tlsc@remote.test']);
  assert.equal(r.status, 0, r.out);
  await arrived('swaks-tlsc@remote.test');
});

test('swaks: wrong password is refused with 535 and nothing is queued', () => {
  const r = swaks(['--server', `127.0.0.1:${pl.port('submission')}`, '--tls', '--auth', 'PLAIN', '--auth-user', USER, '--auth-password', 'wrong', '--from', USER, '--to', 'never@remote.test']);
  assert.notEqual(r.status, 0);
});

function python(code: string): { status: number | null; out: string } {
  const r = spawnSync('python3', ['-c', code], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

test('Python smtplib: plain, STARTTLS + login, SMTP_SSL + login', async () => {
  const msg = (to: string) => `From: ${USER}\\r\\nTo: ${to}\\r\\nSubject: smtplib\\r\\n\\r\\nHello from smtplib.\\r\\n`;
  const code = `
import smtplib, ssl
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP('127.0.0.1', ${pl.port('mx')}, timeout=20); s.sendmail('x@example.org', ['py-plain@remote.test'], "${msg('py-plain@remote.test')}"); s.quit()
s = smtplib.SMTP('127.0.0.1', ${pl.port('submission')}, timeout=20); s.starttls(context=ctx); s.login('${USER}', '${PASS}')
s.sendmail('${USER}', ['py-tls@remote.test'], "${msg('py-tls@remote.test')}"); s.quit()
s = smtplib.SMTP_SSL('127.0.0.1', ${pl.port('smtps')}, context=ctx, timeout=20); s.login('${USER}', '${PASS}')
s.sendmail('${USER}', ['py-ssl@remote.test'], "${msg('py-ssl@remote.test')}"); s.quit()
try:
    s = smtplib.SMTP('127.0.0.1', ${pl.port('submission')}, timeout=20); s.starttls(context=ctx); s.login('${USER}', 'bad')
    print('LOGIN-ACCEPTED')
except smtplib.SMTPAuthenticationError as e:
    print('AUTH-REFUSED', e.smtp_code)
`;
  const r = python(code);
  assert.equal(r.status, 0, r.out);
  assert.match(r.out, /AUTH-REFUSED 535/);
  for (const to of ['py-plain@remote.test', 'py-tls@remote.test', 'py-ssl@remote.test']) await arrived(to);
});

test('nodemailer: plain, STARTTLS + AUTH, implicit TLS + AUTH', async () => {
  const tls = { rejectUnauthorized: false };
  const variants = [
    { to: 'nm-plain@remote.test', opts: { host: '127.0.0.1', port: pl.port('mx'), secure: false, ignoreTLS: true } },
    { to: 'nm-starttls@remote.test', opts: { host: '127.0.0.1', port: pl.port('submission'), secure: false, requireTLS: true, auth: { user: USER, pass: PASS }, tls } },
    { to: 'nm-smtps@remote.test', opts: { host: '127.0.0.1', port: pl.port('smtps'), secure: true, auth: { user: USER, pass: PASS }, tls } },
  ];
  for (const v of variants) {
    const t = nodemailer.createTransport(v.opts);
    try {
      const info = await t.sendMail({ from: USER, to: v.to, subject: `nodemailer ${v.to}`, text: 'Hello from nodemailer.\n.leading dot line\n' });
      assert.match(info.response, /^250 2\.0\.0 OK queued as [0-9A-Z]{18}/);
    } finally {
      t.close();
    }
    const m = await arrived(v.to);
    assert.match(m.data.toString(), /\n\.leading dot line\n/);
  }
});

test('nodemailer: submission refuses a sender the user does not own', async () => {
  const t = nodemailer.createTransport({ host: '127.0.0.1', port: pl.port('submission'), secure: false, requireTLS: true, auth: { user: USER, pass: PASS }, tls: { rejectUnauthorized: false } });
  try {
    await assert.rejects(t.sendMail({ from: 'ceo@example.test', to: 'x@remote.test', subject: 'spoof', text: 'no' }), (e: { responseCode?: number }) => e.responseCode === 553);
  } finally {
    t.close();
  }
});
