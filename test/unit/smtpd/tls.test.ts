/** loadOrCreateTls: self-signed material created once in dataDir/tls (0600) and reused; configured files read. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { createRequire } from 'node:module';
import { readdirSync } from 'node:fs';
import { silentLogger } from '../../../src/core/log.js';
import { ConfigError } from '../../../src/core/errors.js';
import { loadOrCreateTls, missingSelfSignedNames, selfSignedNames } from '../../../src/smtpd/tls.js';
import { testConfig } from './helpers.js';

test('creates a self-signed pair for the hostname once, mode 0600, and reuses it', () => {
  const config = testConfig();
  const first = loadOrCreateTls(config, silentLogger());
  const cert = new X509Certificate(first.cert);
  assert.match(cert.subject, /CN=mx\.test/);
  assert.ok(cert.checkHost('mx.test'));
  for (const f of ['cert.pem', 'key.pem']) assert.equal(statSync(join(config.dataDir, 'tls', f)).mode & 0o777, 0o600);
  const again = loadOrCreateTls(config, silentLogger());
  assert.deepEqual(again, first);
});

test('reads configured cert and key files; one without the other is a ConfigError', () => {
  const made = loadOrCreateTls(testConfig(), silentLogger());
  const config = testConfig();
  const certPath = join(config.dataDir, 'c.pem');
  const keyPath = join(config.dataDir, 'k.pem');
  writeFileSync(certPath, made.cert);
  writeFileSync(keyPath, made.key);
  const loaded = loadOrCreateTls({ ...config, tls: { cert: certPath, key: keyPath } }, silentLogger());
  assert.deepEqual(loaded, made);
  assert.throws(() => loadOrCreateTls({ ...config, tls: { cert: certPath } }, silentLogger()), ConfigError);
  assert.throws(() => loadOrCreateTls({ ...config, tls: { cert: certPath, key: join(config.dataDir, 'missing') } }, silentLogger()), ConfigError);
});

/** A certificate made with the openssl command: self-signed, or signed by a CA made on the spot. */
function opensslCert(dir: string, san: string, signed = false): { cert: string; key: string } {
  mkdirSync(dir, { recursive: true });
  const key = join(dir, 'o-key.pem');
  const cert = join(dir, 'o-cert.pem');
  if (!signed) {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=mx.test', '-addext', `subjectAltName=${san}`], { stdio: 'ignore' });
  } else {
    const caKey = join(dir, 'ca-key.pem');
    const caCert = join(dir, 'ca-cert.pem');
    const csr = join(dir, 'o.csr');
    const ext = join(dir, 'ext.cnf');
    writeFileSync(ext, `subjectAltName=${san}\n`);
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', caKey, '-out', caCert, '-days', '2', '-subj', '/CN=Test CA'], { stdio: 'ignore' });
    execFileSync('openssl', ['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', csr, '-subj', '/CN=mx.test'], { stdio: 'ignore' });
    execFileSync('openssl', ['x509', '-req', '-in', csr, '-CA', caCert, '-CAkey', caKey, '-CAcreateserial', '-out', cert, '-days', '2', '-extfile', ext], { stdio: 'ignore' });
  }
  return { cert: readFileSync(cert, 'utf8'), key: readFileSync(key, 'utf8') };
}

test('the self-signed certificate names localhost, the hostname and the listeners: IPs as iPAddress SANs', () => {
  const config = testConfig();
  config.listeners.push({ ...config.listeners[0]!, name: 'lan', address: '192.0.2.10' }, { ...config.listeners[0]!, name: 'any', address: '0.0.0.0' },
    { ...config.listeners[0]!, name: 'any6', address: '::' }, { ...config.listeners[0]!, name: 'v6', address: '2001:db8::25' });
  try {
    assert.deepEqual(selfSignedNames(config), { dns: ['mx.test', 'localhost'], ips: ['127.0.0.1', '::1', '192.0.2.10', '2001:db8::25'] });
    const cert = new X509Certificate(loadOrCreateTls(config, silentLogger()).cert);
    for (const n of ['mx.test', 'localhost']) assert.equal(cert.checkHost(n, { subject: 'never' }), n);
    for (const ip of ['127.0.0.1', '::1', '192.0.2.10', '2001:db8::25']) assert.equal(cert.checkIP(ip), ip);
    assert.equal(cert.checkIP('0.0.0.0'), undefined, 'no wildcard address');
    assert.doesNotMatch(cert.subjectAltName ?? '', /DNS:(127\.0\.0\.1|::1)/, 'addresses are not DNS names');
    assert.deepEqual(missingSelfSignedNames(cert.toString(), selfSignedNames(config)), [], 'judged as ours, complete');
  } finally {
    rmSync(config.dataDir, { recursive: true, force: true });
  }
});

/** What the first Postline versions made (selfsigned package: CN only, CA:FALSE, SAN = DNS:host, 3650 days). */
function olderPostlineCert(host: string): { cert: string; key: string } {
  const mod = createRequire(import.meta.url).resolve('selfsigned');
  const script = `const [mod, host] = process.argv.slice(1);
    require(mod).generate([{ name: 'commonName', value: host }], { keySize: 2048, algorithm: 'sha256',
      notAfterDate: new Date(Date.now() + 3650 * 86400000),
      extensions: [{ name: 'basicConstraints', cA: false }, { name: 'subjectAltName', altNames: [{ type: 2, value: host }] }] })
      .then((p) => process.stdout.write(JSON.stringify({ cert: p.cert, key: p.private })));`;
  return JSON.parse(execFileSync(process.execPath, ['-e', script, mod, host], { encoding: 'utf8', timeout: 60_000 })) as { cert: string; key: string };
}

test('an older self-signed certificate without those names is made again, the old pair kept as *.old', () => {
  const config = testConfig();
  try {
    const dir = join(config.dataDir, 'tls');
    const old = olderPostlineCert('mx.test'); // what older versions made: the hostname only
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'cert.pem'), old.cert);
    writeFileSync(join(dir, 'key.pem'), old.key);
    assert.deepEqual(missingSelfSignedNames(old.cert, selfSignedNames(config)), ['localhost', '127.0.0.1', '::1']);
    const now = loadOrCreateTls(config, silentLogger());
    assert.notEqual(now.cert, old.cert);
    assert.equal(new X509Certificate(now.cert).checkHost('localhost', { subject: 'never' }), 'localhost');
    assert.equal(readFileSync(join(dir, 'cert.pem.old'), 'utf8'), old.cert);
    assert.equal(readFileSync(join(dir, 'key.pem.old'), 'utf8'), old.key);
    assert.deepEqual(loadOrCreateTls(config, silentLogger()), now, 'then reused');
  } finally {
    rmSync(config.dataDir, { recursive: true, force: true });
  }
});

test('a configured tls.cert, or a CA-signed certificate in dataDir/tls, is never replaced', () => {
  const config = testConfig();
  try {
    const mine = opensslCert(join(config.dataDir, 'mine'), 'DNS:mx.test');
    const certPath = join(config.dataDir, 'mine', 'o-cert.pem');
    const keyPath = join(config.dataDir, 'mine', 'o-key.pem');
    assert.deepEqual(loadOrCreateTls({ ...config, tls: { cert: certPath, key: keyPath } }, silentLogger()), mine);
    assert.equal(readFileSync(certPath, 'utf8'), mine.cert);
    assert.ok(!existsSync(join(config.dataDir, 'tls')), 'nothing generated');
    const signed = opensslCert(join(config.dataDir, 'ca'), 'DNS:mx.test', true);
    assert.equal(missingSelfSignedNames(signed.cert, selfSignedNames(config)), undefined, 'not ours: not judged');
    const dir = join(config.dataDir, 'tls');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'cert.pem'), signed.cert);
    writeFileSync(join(dir, 'key.pem'), signed.key);
    assert.deepEqual(loadOrCreateTls(config, silentLogger()), signed);
    assert.ok(!existsSync(join(dir, 'cert.pem.old')));
  } finally {
    rmSync(config.dataDir, { recursive: true, force: true });
  }
});

test('a self-signed certificate the user made (not by Postline) in dataDir/tls is never replaced, even without those names', () => {
  const config = testConfig();
  try {
    const mine = opensslCert(join(config.dataDir, 'work'), 'DNS:mail.example.com');
    const dir = join(config.dataDir, 'tls');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'cert.pem'), mine.cert);
    writeFileSync(join(dir, 'key.pem'), mine.key);
    assert.equal(missingSelfSignedNames(mine.cert, selfSignedNames(config)), undefined, 'not ours: not judged');
    assert.deepEqual(loadOrCreateTls(config, silentLogger()), mine);
    assert.deepEqual(readdirSync(dir).sort(), ['cert.pem', 'key.pem']);
  } finally {
    rmSync(config.dataDir, { recursive: true, force: true });
  }
});

test('a cert.pem or key.pem alone, or a damaged pair, is moved aside (never overwritten, nor an earlier *.old)', () => {
  const config = testConfig();
  try {
    const dir = join(config.dataDir, 'tls');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'cert.pem'), 'my certificate, its key elsewhere');
    loadOrCreateTls(config, silentLogger());
    assert.equal(readFileSync(join(dir, 'cert.pem.old'), 'utf8'), 'my certificate, its key elsewhere');
    rmSync(join(dir, 'cert.pem'));
    writeFileSync(join(dir, 'key.pem'), 'garbage');
    loadOrCreateTls(config, silentLogger());
    assert.equal(readFileSync(join(dir, 'cert.pem.old'), 'utf8'), 'my certificate, its key elsewhere', 'the earlier *.old is kept');
    const kept = readdirSync(dir).filter((f) => f.startsWith('key.pem.old')).map((f) => readFileSync(join(dir, f), 'utf8'));
    assert.ok(kept.includes('garbage'), 'the lone key.pem was moved aside');
    writeFileSync(join(dir, 'cert.pem'), 'damaged');
    loadOrCreateTls(config, silentLogger());
    const certs = readdirSync(dir).filter((f) => f.startsWith('cert.pem.old')).map((f) => readFileSync(join(dir, f), 'utf8'));
    assert.ok(certs.includes('damaged') && certs.includes('my certificate, its key elsewhere'), JSON.stringify(readdirSync(dir)));
  } finally {
    rmSync(config.dataDir, { recursive: true, force: true });
  }
});

test('a key that is damaged or belongs to another certificate is found at load, not at each STARTTLS', () => {
  const config = testConfig();
  try {
    const a = opensslCert(join(config.dataDir, 'a'), 'DNS:mx.test');
    const b = opensslCert(join(config.dataDir, 'b'), 'DNS:mx.test');
    const keyB = join(config.dataDir, 'b', 'o-key.pem');
    const certA = join(config.dataDir, 'a', 'o-cert.pem');
    assert.throws(() => loadOrCreateTls({ ...config, tls: { cert: certA, key: keyB } }, silentLogger()), ConfigError, 'configured, mismatched');
    const dir = join(config.dataDir, 'tls');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'cert.pem'), a.cert); // someone else's certificate: an error, never replaced
    writeFileSync(join(dir, 'key.pem'), b.key);
    assert.throws(() => loadOrCreateTls(config, silentLogger()), ConfigError);
    assert.equal(readFileSync(join(dir, 'cert.pem'), 'utf8'), a.cert);
    rmSync(dir, { recursive: true });
    const ours = loadOrCreateTls(config, silentLogger()); // Postline's own with a damaged key: made again
    writeFileSync(join(dir, 'key.pem'), 'garbage');
    const again = loadOrCreateTls(config, silentLogger());
    assert.notEqual(again.cert, ours.cert);
    assert.equal(readFileSync(join(dir, 'key.pem.old'), 'utf8'), 'garbage');
  } finally {
    rmSync(config.dataDir, { recursive: true, force: true });
  }
});
