/**
 * TLS policy and SNI certificates end to end (issue 12): the real `postline serve` with
 * `tls.certificates` (an RSA and an ECDSA pair for mx.postline.test, an RSA pair for
 * *.other.test), probed with `openssl s_client` and node's TLS client. Submission and smtps take
 * TLS 1.2+ with ECDHE AEAD suites only (static RSA and CBC refused); mx keeps the wider list;
 * TLS 1.0 on a listener with `minVersion: TLSv1` and `@SECLEVEL=0`; the certificate served by
 * name, key type and default; every certificate file read again on SIGHUP.
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect as tlsConnect, type ConnectionOptions, type PeerCertificate } from 'node:tls';
import { PostlineProcess } from '../helpers/postline-process.js';
import { RawSmtp } from '../helpers/raw-smtp.js';
import { waitFor } from '../helpers/net.js';

const hasOpenssl = spawnSync('sh', ['-c', 'command -v openssl']).status === 0;
let pl: PostlineProcess;

/** Makes a self-signed pair NAME.crt / NAME.key in the test directory (RSA 2048 or ECDSA P-256). */
function makeCert(name: string, cn: string, kind: 'rsa' | 'ec', org: string = kind): void {
  const key = kind === 'rsa' ? ['-newkey', 'rsa:2048'] : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'];
  const r = spawnSync('openssl', ['req', '-x509', ...key, '-nodes', '-days', '30', '-keyout', join(pl.dir, `${name}.key`), '-out', join(pl.dir, `${name}.crt`),
    '-subj', `/CN=${cn}/O=${org}`, '-addext', `subjectAltName=DNS:${cn}`], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
}

before(async () => {
  if (!hasOpenssl) return;
  pl = new PostlineProcess({
    listeners: [
      { name: 'mx', role: 'mx', tls: 'starttls' },
      { name: 'submission', role: 'submission', tls: 'starttls' },
      { name: 'smtps', role: 'submission', tls: 'implicit' },
      { name: 'legacy', role: 'mx', tls: 'starttls', tlsPolicy: { minVersion: 'TLSv1', ciphers: 'HIGH:!aNULL:@SECLEVEL=0' } },
    ],
    config: {
      tls: {
        certificates: [
          { servername: 'mx.postline.test', cert: 'rsa.crt', key: 'rsa.key' },
          { servername: 'mx.postline.test', cert: 'ec.crt', key: 'ec.key' },
          { servername: '*.other.test', cert: 'other.crt', key: 'other.key' },
        ],
      },
    },
  });
  makeCert('rsa', 'mx.postline.test', 'rsa');
  makeCert('ec', 'mx.postline.test', 'ec');
  makeCert('other', 'other.test', 'rsa', 'first');
  await pl.start();
});
after(async () => { await pl?.cleanup(); });

/** openssl s_client -brief: handshake result, protocol, suite, peer subject. Bounded to 20 s. */
function probe(port: number, args: readonly string[]): Promise<{ ok: boolean; protocol?: string; cipher?: string; peer?: string; out: string }> {
  return new Promise((resolve) => {
    const child = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-brief', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    const t = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { out += d.toString(); });
    child.on('close', (code) => {
      clearTimeout(t);
      resolve({
        ok: code === 0 && out.includes('CONNECTION ESTABLISHED'), out,
        protocol: /Protocol version: (\S+)/.exec(out)?.[1], cipher: /Ciphersuite: (\S+)/.exec(out)?.[1], peer: /Peer certificate: (.+)/.exec(out)?.[1]?.trim(),
      });
    });
    child.stdin.end();
  });
}

/** The certificate node's TLS client gets from the implicit-TLS listener. */
function peerCert(opts: Partial<ConnectionOptions>): Promise<PeerCertificate> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port: pl.port('smtps'), rejectUnauthorized: false, ...opts }, () => {
      const c = s.getPeerCertificate();
      s.destroy();
      resolve(c);
    });
    s.once('error', reject);
  });
}

const skip = !hasOpenssl && 'openssl not installed';
const STARTTLS = ['-starttls', 'smtp'];

test('submission and smtps: static RSA and CBC suites refused, ECDHE AEAD accepted, TLS 1.1 refused', { skip }, async () => {
  for (const [name, extra] of [['submission', STARTTLS], ['smtps', []]] as const) {
    const port = pl.port(name);
    for (const suite of ['AES128-SHA', 'AES256-GCM-SHA384', 'ECDHE-RSA-AES128-SHA', 'ECDHE-RSA-AES256-SHA384']) {
      const r = await probe(port, [...extra, '-tls1_2', '-cipher', suite]);
      assert.equal(r.ok, false, `${name} ${suite}: ${r.out}`);
    }
    const good = await probe(port, [...extra, '-tls1_2', '-cipher', 'ECDHE-RSA-AES128-GCM-SHA256']);
    assert.ok(good.ok, good.out);
    assert.equal(good.cipher, 'ECDHE-RSA-AES128-GCM-SHA256');
    const old = await probe(port, [...extra, '-tls1_1', '-cipher', 'DEFAULT:@SECLEVEL=0']);
    assert.equal(old.ok, false, `${name} TLS 1.1: ${old.out}`);
    const t13 = await probe(port, extra);
    assert.equal(t13.protocol, 'TLSv1.3');
  }
});

test('mx keeps the wider list (static RSA AES128-SHA accepted); TLS 1.0 with minVersion TLSv1 and @SECLEVEL=0', { skip }, async () => {
  const r = await probe(pl.port('mx'), [...STARTTLS, '-tls1_2', '-cipher', 'AES128-SHA']);
  assert.ok(r.ok, r.out);
  assert.equal(r.cipher, 'AES128-SHA');
  const no10 = await probe(pl.port('mx'), [...STARTTLS, '-tls1', '-cipher', 'DEFAULT:@SECLEVEL=0']);
  assert.equal(no10.ok, false, 'TLS 1.0 is off by default on mx too');
  const t10 = await probe(pl.port('legacy'), [...STARTTLS, '-tls1', '-cipher', 'DEFAULT:@SECLEVEL=0']);
  assert.ok(t10.ok, t10.out);
  assert.equal(t10.protocol, 'TLSv1');
});

test('SNI: the certificate by name (exact, wildcard), the first as default; RSA and ECDSA side by side', { skip }, async () => {
  const port = pl.port('smtps');
  assert.match((await probe(port, ['-servername', 'a.other.test'])).peer ?? '', /CN = other\.test/);
  assert.match((await probe(port, ['-servername', 'unknown.example'])).peer ?? '', /CN = mx\.postline\.test/);
  assert.match((await probe(port, ['-noservername'])).peer ?? '', /CN = mx\.postline\.test/);
  assert.match((await probe(pl.port('mx'), [...STARTTLS, '-servername', 'b.other.test'])).peer ?? '', /CN = other\.test/, 'STARTTLS too');
  const ecdsa = await peerCert({ servername: 'mx.postline.test', sigalgs: 'ECDSA+SHA256' });
  assert.equal(ecdsa.subject.O, 'ec');
  assert.equal(ecdsa.asn1Curve, 'prime256v1');
  const rsa = await peerCert({ servername: 'mx.postline.test', sigalgs: 'RSA-PSS+SHA256:RSA+SHA256' });
  assert.equal(rsa.subject.O, 'rsa');
  const noSni = await peerCert({ sigalgs: 'RSA-PSS+SHA256:RSA+SHA256' }); // an IP host sends no SNI
  assert.equal(noSni.subject.CN, 'mx.postline.test');
  const wild = await peerCert({ servername: 'x.other.test', sigalgs: 'ECDSA+SHA256:RSA-PSS+SHA256' });
  assert.equal(wild.subject.CN, 'other.test', 'a name with only an RSA pair gets it even when the client prefers ECDSA');
});

test('SIGHUP reads every certificate file again; an open session carries on', { skip }, async () => {
  const open = await RawSmtp.open(pl.port('mx'));
  await open.c.ehlo();
  const before = await peerCert({ servername: 'a.other.test' });
  assert.equal(before.subject.O, 'first');
  makeCert('other', 'other.test', 'rsa', 'second');
  makeCert('ec', 'mx.postline.test', 'ec', 'ec-renewed');
  pl.signal('SIGHUP');
  await waitFor('the reload', () => pl.output.includes('configuration reloaded'), 10_000);
  const afterOther = await peerCert({ servername: 'a.other.test' });
  assert.equal(afterOther.subject.O, 'second');
  assert.notEqual(afterOther.fingerprint256, before.fingerprint256);
  assert.equal((await peerCert({ servername: 'mx.postline.test', sigalgs: 'ECDSA+SHA256' })).subject.O, 'ec-renewed');
  assert.equal((await open.c.cmd('NOOP')).code, 250, 'the session opened before the reload is still served');
  await open.c.quit();
  assert.ok(readFileSync(join(pl.dir, 'other.crt'), 'utf8').includes('BEGIN CERTIFICATE'));
});
