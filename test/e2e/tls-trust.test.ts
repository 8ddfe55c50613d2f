/**
 * The self-signed certificate made on first start works for real clients that verify it (issue
 * 15 item 9): with dataDir/tls/cert.pem as their CA and verification on, nodemailer, Python's
 * smtplib, msmtp (GnuTLS), curl and swaks send over STARTTLS to 127.0.0.1 and to `localhost`.
 * Real `postline serve`, real clients, a capturing next hop.
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import { PostlineProcess } from '../helpers/postline-process.js';
import { startCapturePeer, type CapturePeer } from '../helpers/capture-peer.js';
import { waitFor } from '../helpers/net.js';

const cleanups: Array<() => Promise<void>> = [];
after(async () => { for (const c of cleanups.reverse()) await c().catch(() => {}); });

let peer: CapturePeer;
let pl: PostlineProcess;
let ca: string;

before(async () => {
  peer = await startCapturePeer();
  cleanups.push(() => peer.close());
  pl = new PostlineProcess({
    listeners: [{ name: 'mx', role: 'mx', tls: 'starttls' }],
    config: { delivery: { relayhost: { host: '127.0.0.1', port: peer.port, tls: 'none' }, retry: { initialMs: 60_000 } } },
  });
  cleanups.push(() => pl.cleanup());
  await pl.start();
  ca = join(pl.dir, 'var', 'tls', 'cert.pem');
});

const has = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

/** Runs a command with stdin, bounded to 30 s. */
function run(cmd: string, args: string[], input = ''): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], cwd: pl.dir });
    let out = '';
    const t = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { out += d.toString(); });
    child.on('close', (code) => { clearTimeout(t); resolve({ code: code ?? -1, out }); });
    child.stdin.end(input);
  });
}

async function arrived(tag: string): Promise<void> {
  await waitFor(`"${tag}" at the next hop`, () => peer.messages.some((m) => m.data.toString('latin1').includes(tag)), 20_000, 50);
}

const message = (tag: string): string => `From: alice@origin.test\r\nTo: bob@remote.test\r\nSubject: ${tag}\r\n\r\nhello\r\n`;

for (const host of ['127.0.0.1', 'localhost']) {
  test(`nodemailer verifies the generated certificate at ${host}`, async () => {
    const tag = `nodemailer-${host}`;
    const t = nodemailer.createTransport({ host, port: pl.port(), secure: false, requireTLS: true, tls: { ca: readFileSync(ca, 'utf8') } });
    try {
      await t.sendMail({ from: 'alice@origin.test', to: 'bob@remote.test', subject: tag, text: 'hello' });
    } finally {
      t.close();
    }
    await arrived(tag);
  });

  test(`python3 smtplib verifies the generated certificate at ${host}`, async () => {
    const tag = `smtplib-${host}`;
    const script = [
      'import smtplib, ssl, sys',
      'ctx = ssl.create_default_context(cafile=sys.argv[3])',
      's = smtplib.SMTP(sys.argv[1], int(sys.argv[2]), timeout=20)',
      's.starttls(context=ctx)',
      's.sendmail("alice@origin.test", ["bob@remote.test"], sys.stdin.read())',
      's.quit()',
    ].join('\n');
    const r = await run('python3', ['-c', script, host, String(pl.port()), ca], message(tag));
    assert.equal(r.code, 0, r.out);
    await arrived(tag);
  });

  test(`msmtp (GnuTLS) verifies the generated certificate at ${host}`, { skip: !has('msmtp') && 'msmtp not installed' }, async () => {
    const tag = `msmtp-${host}`;
    const r = await run('msmtp', [`--host=${host}`, `--port=${pl.port()}`, '--tls=on', '--tls-starttls=on', `--tls-trust-file=${ca}`,
      '--auth=off', '--from=alice@origin.test', '--', 'bob@remote.test'], message(tag));
    assert.equal(r.code, 0, r.out);
    await arrived(tag);
  });

  test(`curl verifies the generated certificate at ${host}`, { skip: !has('curl') && 'curl not installed' }, async () => {
    const tag = `curl-${host}`;
    const file = join(pl.dir, `${tag}.eml`);
    writeFileSync(file, message(tag));
    const r = await run('curl', ['-sS', '--url', `smtp://${host}:${pl.port()}`, '--ssl-reqd', '--cacert', ca,
      '--mail-from', 'alice@origin.test', '--mail-rcpt', 'bob@remote.test', '-T', file]);
    assert.equal(r.code, 0, r.out);
    await arrived(tag);
  });
}

test('swaks --tls-verify with the generated certificate as CA', { skip: !has('swaks') && 'swaks not installed' }, async () => {
  const tag = 'swaks-verified';
  const r = await run('swaks', ['--server', `127.0.0.1:${pl.port()}`, '--tls', '--tls-verify', '--tls-ca-path', ca,
    '--from', 'alice@origin.test', '--to', 'bob@remote.test', '--header', `Subject: ${tag}`]);
  assert.equal(r.code, 0, r.out);
  await arrived(tag);
});
