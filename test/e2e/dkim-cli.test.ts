/**
 * `postline dkim keygen` and `postline dkim check` (src/cli/dkim.ts), the real CLI against a real
 * DNS server on loopback (delivery.dns.servers): keygen writes a 0600 key into dataDir/dkim/ and
 * prints the record; check exits 0 when the published record is ours, 1 when it differs or is missing.
 * And a running server takes new keys on SIGHUP (a key file that cannot be loaded keeps the old ones).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PostlineProcess, runCli } from '../helpers/postline-process.js';
import { SmtpSink } from '../helpers/smtp-sink.js';
import { RawSmtp } from '../helpers/raw-smtp.js';
import { waitFor } from '../helpers/net.js';
import { startDnsServer, type DnsServerHandle } from '../helpers/dns-server.js';
import { generateKey, recordValue, splitTxt } from '../../src/dkim/keys.js';

const cleanups: Array<() => Promise<void> | void> = [];
after(async () => { for (const c of cleanups.reverse()) await Promise.resolve(c()).catch(() => {}); });

const dir = mkdtempSync(join(tmpdir(), 'postline-dkim-cli-'));
cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
const configFile = join(dir, 'postline.yaml');

/** Writes the configuration (JSON is YAML) with these name servers and keys. */
function writeConfig(servers: string[], keys: object[] = []): void {
  writeFileSync(configFile, JSON.stringify({ dataDir: join(dir, 'var'), delivery: { dns: { servers, timeoutMs: 1000, tries: 1 } }, dkim: { keys } }));
}
const cli = (args: string[]) => runCli([...args, '--config', configFile], '', {}, { cleanEnv: true });

async function dns(records: Record<string, string>): Promise<DnsServerHandle> {
  const h = await startDnsServer(Object.fromEntries(Object.entries(records).map(([n, v]) => [n, { txt: [splitTxt(v)] }])));
  cleanups.push(() => h.close());
  return h;
}

/** The `name:` and `value:` lines of keygen's output. */
function printed(stdout: string): { name: string; value: string; zone: string } {
  const line = (k: string) => new RegExp(`^${k}:\\s+(.*)$`, 'm').exec(stdout)?.[1] ?? '';
  return { name: line('name'), value: line('value'), zone: line('zone') };
}

test('keygen writes 0600 keys and prints the record; check matches it over DNS (exit 0), and says so when it differs or is missing (exit 1)', async () => {
  writeConfig([]);
  const rsa = await cli(['dkim', 'keygen', 'Example.TEST', 'sel1']);
  assert.equal(rsa.code, 0, rsa.stderr);
  const keyFile = join(dir, 'var', 'dkim', 'example.test', 'sel1.pem');
  assert.equal(statSync(keyFile).mode & 0o777, 0o600);
  const r = printed(rsa.stdout);
  assert.equal(r.name, 'sel1._domainkey.example.test');
  assert.match(r.value, /^v=DKIM1; k=rsa; p=[A-Za-z0-9+/=]{300,}$/);
  // RSA-2048: the zone line holds the value as several strings of at most 255 bytes.
  const strings = [...r.zone.matchAll(/"([^"]*)"/g)].map((m) => m[1]!);
  assert.ok(strings.length >= 2 && strings.every((s) => s.length <= 255) && strings.join('') === r.value, r.zone);
  assert.ok(rsa.stdout.includes(`privateKey: ${JSON.stringify(keyFile)}`), rsa.stdout);

  const ed = await cli(['dkim', 'keygen', 'example.test', 'sel2', '--algorithm', 'ed25519']);
  assert.equal(ed.code, 0, ed.stderr);
  const e = printed(ed.stdout);
  assert.match(e.value, /^v=DKIM1; k=ed25519; p=[A-Za-z0-9+/]{43}=$/);

  const again = await cli(['dkim', 'keygen', 'example.test', 'sel1']);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /exists; use --force/);
  const badAlg = await cli(['dkim', 'keygen', 'example.test', 'sel3', '--algorithm', 'dsa']);
  assert.equal(badAlg.code, 1);
  assert.match(badAlg.stderr, /--algorithm must be rsa or ed25519/);

  // Published as printed: both match (the files keygen wrote are found without any configuration).
  const good = await dns({ [r.name]: r.value, [e.name]: e.value });
  writeConfig([good.server]);
  const ok = await cli(['dkim', 'check', 'example.test']);
  assert.equal(ok.code, 0, ok.stdout + ok.stderr);
  assert.match(ok.stdout, /sel1\._domainkey\.example\.test \(rsa-sha256\): ok/);
  assert.match(ok.stdout, /sel2\._domainkey\.example\.test \(ed25519-sha256\): ok/);
  assert.ok(good.queries.includes('sel1._domainkey.example.test TXT'));

  // Configured keys (a path relative to the configuration file) are what check compares; --selector narrows it.
  writeConfig([good.server], [{ domain: 'example.test', selector: 'sel1', algorithm: 'rsa-sha256', privateKey: 'var/dkim/example.test/sel1.pem' }]);
  const one = await cli(['dkim', 'check', 'example.test', '--selector', 'sel1']);
  assert.equal(one.code, 0, one.stdout + one.stderr);
  assert.doesNotMatch(one.stdout, /sel2/);

  // A different key published, and a missing record: exit 1 with the reason.
  const other = recordValue(generateKey('rsa-sha256', 1024).key, 'rsa-sha256');
  const wrong = await dns({ [r.name]: other });
  writeConfig([wrong.server]);
  const bad = await cli(['dkim', 'check', 'example.test']);
  assert.equal(bad.code, 1);
  assert.match(bad.stdout, /sel1\._domainkey\.example\.test \(rsa-sha256\): MISMATCH: p= is a different public key/);
  assert.match(bad.stdout, /sel2\._domainkey\.example\.test \(ed25519-sha256\): MISMATCH: no TXT record published/);

  const none = await cli(['dkim', 'check', 'nokeys.test']);
  assert.equal(none.code, 1);
  assert.match(none.stderr, /no DKIM key for nokeys\.test/);
});

test('SIGHUP: new dkim keys sign the next message; a key that cannot be loaded keeps the running keys', async () => {
  const sink = await new SmtpSink().start();
  cleanups.push(() => sink.cleanup());
  const keyDir = mkdtempSync(join(tmpdir(), 'postline-dkim-hup-'));
  cleanups.push(() => rmSync(keyDir, { recursive: true, force: true }));
  writeFileSync(join(keyDir, 'k.pem'), generateKey('ed25519-sha256').pem, { mode: 0o600 });
  writeFileSync(join(keyDir, 'broken.pem'), 'not a key\n');
  const pl = new PostlineProcess({ config: { delivery: { relayhost: { host: '127.0.0.1', port: sink.port, tls: 'none' } }, log: { level: 'info', format: 'json' } } });
  cleanups.push(() => pl.cleanup());
  await pl.start();
  const send = async (tag: string): Promise<string> => {
    const { c } = await RawSmtp.open(pl.port());
    await c.ehlo();
    const r = await c.send('a@hup.test', [`${tag}@sink.test`], Buffer.from(`From: a@hup.test\r\nSubject: ${tag}\r\n\r\nhello\r\n`));
    await c.quit();
    assert.equal(r.final?.code, 250);
    const got = await waitFor(`${tag} at the sink`, () => sink.messages().find((m) => m.rcptArgs.some((a) => a.includes(`<${tag}@sink.test>`))), 20_000);
    return got.data.toString('latin1');
  };
  assert.doesNotMatch(await send('before'), /DKIM-Signature/);
  const reloads = () => pl.logs().filter((l) => l.msg === 'configuration reloaded').length;
  pl.configOverride = { dkim: { keys: [{ domain: 'hup.test', selector: 'h1', algorithm: 'ed25519-sha256', privateKey: join(keyDir, 'k.pem') }] } };
  await pl.writeConfig();
  pl.signal('SIGHUP');
  await waitFor('the reload', () => reloads() === 1, 20_000);
  assert.match(await send('after'), /^DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed\/relaxed; d=hup\.test; s=h1;/);
  pl.configOverride = { dkim: { keys: [{ domain: 'hup.test', selector: 'h2', algorithm: 'ed25519-sha256', privateKey: join(keyDir, 'broken.pem') }] } };
  await pl.writeConfig();
  pl.signal('SIGHUP');
  await waitFor('the second reload', () => reloads() === 2, 20_000);
  assert.ok(pl.logs().some((l) => String(l.msg).startsWith('DKIM keys not reloaded')));
  assert.match(await send('broken'), /^DKIM-Signature: [^\r]*s=h1;/, 'still signed with the running key');
});
