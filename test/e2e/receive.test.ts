/**
 * Receiving with real clients through the real `postline serve` (issue 15 items 5, 8, 10): curl
 * uploading an LF-only text file (stored and relayed with CRLF), TLS details in the Received field,
 * curl on submission without TLS (530 5.7.0 Must issue a STARTTLS command first), and the
 * `authentication failed` log line. Relayed to a capturing peer on loopback.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PostlineProcess } from '../helpers/postline-process.js';
import { startCapturePeer, type CapturePeer } from '../helpers/capture-peer.js';
import { waitFor } from '../helpers/net.js';

let peer: CapturePeer;
let pl: PostlineProcess;

before(async () => {
  peer = await startCapturePeer();
  pl = new PostlineProcess({
    listeners: [
      { name: 'mx', role: 'mx', tls: 'starttls' },
      { name: 'submission', role: 'submission', tls: 'starttls' },
    ],
    config: {
      relay: { trustedNetworks: ['127.0.0.0/8'], localDomains: ['example.test'] },
      delivery: { relayhost: { host: '127.0.0.1', port: peer.port, tls: 'none' }, retry: { initialMs: 500, maxMs: 2000 } },
    },
  });
  await pl.start();
});

after(async () => {
  await pl?.cleanup();
  await peer?.close();
});

function curl(args: string[]): { status: number | null; out: string } {
  const r = spawnSync('curl', ['-sS', '-v', '--max-time', '20', ...args], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

async function relayed(rcpt: string) {
  return waitFor(`a message for ${rcpt} at the peer`, () => peer.messages.find((m) => m.recipients.some((r) => r.includes(rcpt))), 30_000);
}

/** The message after our Received field (which may be folded). */
function afterReceived(data: Buffer): string {
  return data.toString('latin1').replace(/^Received:[^\r]*\r\n(?:[ \t][^\r]*\r\n)*/, '');
}

const LF_TEXT = 'From: a@example.test\nTo: curl@remote.test\nSubject: curl with LF line endings\n\nline one\n\nline three, the last\n';

test('curl -T of an LF-only text file: accepted (no "Weird server reply"), relayed with CRLF lines', async () => {
  const file = join(pl.dir, 'lf.txt');
  writeFileSync(file, LF_TEXT);
  const r = curl(['-T', file, `smtp://127.0.0.1:${pl.port('mx')}`, '--mail-from', 'a@example.test', '--mail-rcpt', 'curl@remote.test']);
  assert.equal(r.status, 0, r.out);
  assert.match(r.out, /< 250 2\.0\.0 OK queued as /);
  const m = await relayed('curl@remote.test');
  const body = afterReceived(m.data);
  assert.ok(!/(^|[^\r])\n/.test(body), `no bare LF: ${JSON.stringify(body)}`);
  // curl ends a body that does not end in CRLF with CRLF "." CRLF: one empty line more
  assert.equal(body, LF_TEXT.replace(/\n/g, '\r\n') + '\r\n');
});

test('curl over STARTTLS: the Received field records the TLS version and cipher; with ESMTPS', async () => {
  const file = join(pl.dir, 'tls.txt');
  writeFileSync(file, 'Subject: curl tls\r\n\r\nhello\r\n');
  const r = curl(['--ssl-reqd', '-k', '-T', file, `smtp://127.0.0.1:${pl.port('mx')}`, '--mail-from', 'a@example.test', '--mail-rcpt', 'curl-tls@remote.test']);
  assert.equal(r.status, 0, r.out);
  const m = await relayed('curl-tls@remote.test');
  const received = /^Received:[^\r]*\r\n(?:[ \t][^\r]*\r\n)*/.exec(m.data.toString('latin1'))![0];
  assert.match(received, /\r\n\t\(using TLSv1\.[23] with cipher [A-Z0-9_-]+ \(\d+\/\d+ bits\)\)\r\n\tby mx\.postline\.test \(Postline\) with ESMTPS id /);
  assert.match(received, /\r\n\ttls TLS_[A-Z0-9_]+; /);
});

test('curl on submission without TLS sees 530 5.7.0 Must issue a STARTTLS command first', () => {
  const r = curl(['-T', '/dev/null', `smtp://127.0.0.1:${pl.port('submission')}`, '--mail-from', 'a@example.test', '--mail-rcpt', 'x@remote.test']);
  assert.notEqual(r.status, 0);
  assert.match(r.out, /< 530 5\.7\.0 Must issue a STARTTLS command first/);
});

test('a failed AUTH (swaks) is logged at warn with client IP, port, listener and user; fail2ban regex matches', async () => {
  const r = spawnSync('swaks', ['--hide-all', '--timeout', '20', '--server', `127.0.0.1:${pl.port('submission')}`, '--tls', '--auth', 'PLAIN',
    '--auth-user', 'nobody@example.test', '--auth-password', 'wrong', '--from', 'nobody@example.test', '--to', 'x@remote.test'], { encoding: 'utf8', timeout: 60_000 });
  assert.notEqual(r.status, 0);
  const line = await waitFor('the authentication failed line', () => pl.output.split('\n').find((l) => l.includes('"authentication failed"')), 10_000);
  const f = JSON.parse(line) as Record<string, unknown>;
  assert.equal(f.level, 40);
  assert.equal(f.client, '127.0.0.1');
  assert.equal(typeof f.port, 'number');
  assert.equal(f.listener, 'submission');
  assert.equal(f.user, 'nobody@example.test');
  // the README's fail2ban failregex, with <HOST> expanded
  assert.equal(/"client":"(?<host>[0-9a-fA-F.:]+)".*"msg":"authentication failed"/.exec(line)?.groups?.host, '127.0.0.1');
  const start = pl.output.split('\n').find((l) => l.includes('"session start"'))!;
  assert.equal(start.split('"listener"').length - 1, 1, start);
});
