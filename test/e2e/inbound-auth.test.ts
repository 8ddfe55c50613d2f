/**
 * End to end: inbound verification on an mx listener of the real `postline serve`, over real SMTP
 * sessions from a client that is neither authenticated nor trusted (relay.trustedNetworks empty),
 * with every record served by a real DNS server on loopback:
 * - SPF pass / fail / softfail / neutral / none / temperror / permerror for MAIL FROM, and the HELO
 *   identity (RFC 7208);
 * - DMARC (RFC 7489) pass (SPF- or DKIM-aligned) and fail with p=none, quarantine (the
 *   X-Postline-Quarantine field), reject (550 5.7.1 with auth.dmarc.reject), pct=0 (the next less
 *   strict policy), sp= for a subdomain;
 * - a forged Authentication-Results claiming our authserv-id removed, another one kept (RFC 8601 5);
 * - a DNS server that never answers: temperror within auth.timeoutMs, and the mail is accepted;
 * - ARC (RFC 8617): a forwarded message sealed (i=1, cv=none), its seal verified by mailauth at the
 *   next hop, and the sealed message received again: arc=pass and a second set (i=2, cv=pass);
 * - the results in the message.received event and its log line.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { authenticate, dkimSign } from 'mailauth';
import { PostlineProcess } from '../helpers/postline-process.js';
import { RawSmtp } from '../helpers/raw-smtp.js';
import { waitFor } from '../helpers/net.js';
import { startCapturePeer, type CapturePeer } from '../helpers/capture-peer.js';
import { startDnsServer, type DnsServerHandle, type Zones } from '../helpers/dns-server.js';
import { createResolver } from '../../src/dns/resolver.js';
import { generateKey, recordValue, splitTxt } from '../../src/dkim/keys.js';
import type { AuthOutcome, StoredEvent } from '../../src/events/record.js';

const ID = 'mx.postline.test';
const spf = (v: string) => ({ txt: [[v]] });
const dmarc = (v: string) => ({ txt: [[v]] });
const dkimKey = generateKey('rsa-sha256', 2048);
const arcKey = generateKey('rsa-sha256', 2048);
const zones: Zones = {
  'pass.test': spf('v=spf1 ip4:127.0.0.1 -all'),
  'fail.test': spf('v=spf1 -all'),
  'soft.test': spf('v=spf1 ~all'),
  'neutral.test': spf('v=spf1 ?all'),
  'none.test': { a: ['192.0.2.1'] },
  'temp.test': { servfail: true },
  'perm.test': spf('v=spf1 ip4:127.0.0.1 bogus:x -all'),
  'helo.test': spf('v=spf1 ip4:127.0.0.1 -all'),
  'badhelo.test': spf('v=spf1 -all'),
  '_dmarc.pass.test': dmarc('v=DMARC1; p=reject'),
  '_dmarc.fail.test': dmarc('v=DMARC1; p=none'),
  'quar.test': spf('v=spf1 -all'),
  '_dmarc.quar.test': dmarc('v=DMARC1; p=quarantine'),
  'rej.test': spf('v=spf1 -all'),
  '_dmarc.rej.test': dmarc('v=DMARC1; p=reject'),
  'pct.test': spf('v=spf1 -all'),
  '_dmarc.pct.test': dmarc('v=DMARC1; p=reject; pct=0'),
  'sub.org.test': spf('v=spf1 -all'),
  '_dmarc.org.test': dmarc('v=DMARC1; p=reject; sp=none'),
  'signed.test': spf('v=spf1 -all'),
  '_dmarc.signed.test': dmarc('v=DMARC1; p=reject'),
  'k1._domainkey.signed.test': { txt: [splitTxt(recordValue(dkimKey.key, 'rsa-sha256'))] },
  'arc._domainkey.seal.test': { txt: [splitTxt(recordValue(arcKey.key, 'rsa-sha256'))] },
  'slow.test': { drop: true },
  '_dmarc.slow.test': { drop: true },
};

let dns: DnsServerHandle;
let peer: CapturePeer;
let pl: PostlineProcess;
let keyDir: string;

before(async () => {
  keyDir = mkdtempSync(join(tmpdir(), 'postline-arc-'));
  writeFileSync(join(keyDir, 'arc.pem'), arcKey.pem, { mode: 0o600 });
  dns = await startDnsServer(zones);
  peer = await startCapturePeer();
  pl = new PostlineProcess({
    config: {
      relay: { trustedNetworks: [], localDomains: ['rcpt.test', 'fwd.test'] },
      delivery: {
        routes: [
          { domain: 'rcpt.test', host: '127.0.0.1', port: peer.port, tls: 'none' },
          { domain: 'fwd.test', host: '127.0.0.1', port: peer.port, tls: 'none', arcSeal: true },
        ],
        dns: { servers: [dns.server], timeoutMs: 500, tries: 1 },
        retry: { initialMs: 60_000, maxMs: 60_000, jitter: 0 }, scanIntervalMs: 100,
      },
      auth: { dmarc: { reject: true }, timeoutMs: 1500, dns: { servers: [dns.server], timeoutMs: 400, tries: 1 } },
      arc: { domain: 'seal.test', selector: 'arc', privateKey: join(keyDir, 'arc.pem'), sealRelayed: false },
    },
  });
  await pl.start();
});

after(async () => {
  await pl?.cleanup();
  await peer?.close();
  await dns?.close();
  if (keyDir) rmSync(keyDir, { recursive: true, force: true });
});

function message(from: string, extra = '', subject = 'test'): Buffer {
  return Buffer.from(`${extra}From: <${from}>\r\nTo: <bob@rcpt.test>\r\nSubject: ${subject}\r\nDate: Thu, 03 Dec 2026 10:00:00 +0000\r\nMessage-ID: <${Math.random().toString(36).slice(2)}@x.test>\r\n\r\nHello.\r\n`, 'latin1');
}

/** One SMTP transaction. @returns the final reply and the queue ID (from "queued as"). */
async function send(mailFrom: string, data: Buffer, opts: { helo?: string; rcpt?: string } = {}): Promise<{ code: number; text: string; queueId?: string }> {
  const { c } = await RawSmtp.open(pl.port());
  try {
    await c.ehlo(opts.helo ?? 'helo.test');
    const r = await c.send(mailFrom, [opts.rcpt ?? 'bob@rcpt.test'], data);
    const final = r.final ?? r.data ?? r.mail;
    const text = final.text;
    return { code: final.code, text, ...(/queued as (\S+)/.exec(text) ? { queueId: /queued as (\S+)/.exec(text)![1] } : {}) };
  } finally {
    await c.quit();
  }
}

async function received(queueId: string): Promise<AuthOutcome> {
  const e = await waitFor(`message.received of ${queueId}`, async () => {
    const r = await pl.cli(['events', '--json', '--queue-id', queueId, '--type', 'message.received']);
    return r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as StoredEvent).find((x) => x.auth);
  }, 10_000, 100);
  return e.auth!;
}

async function delivered(subject: string, to?: string): Promise<Buffer> {
  const m = await waitFor(`delivery of "${subject}"`, () => peer.messages.find((x) => x.data.toString('latin1').includes(`Subject: ${subject}\r\n`) && (!to || x.recipients.includes(to))), 15_000, 50);
  return m.data;
}

/** Our Authentication-Results field (unfolded), from a delivered message. */
function ourResults(data: Buffer): string[] {
  const head = data.toString('latin1').split('\r\n\r\n')[0]!.replace(/\r\n[ \t]+/g, ' ');
  return head.split('\r\n').filter((l) => /^Authentication-Results:\s*mx\.postline\.test;/i.test(l));
}

test('SPF of MAIL FROM: pass, fail, softfail, neutral, none, temperror, permerror; and of HELO', async () => {
  const cases: [string, string][] = [
    ['a@pass.test', 'pass'], ['a@fail.test', 'fail'], ['a@soft.test', 'softfail'], ['a@neutral.test', 'neutral'],
    ['a@none.test', 'none'], ['a@temp.test', 'temperror'], ['a@perm.test', 'permerror'],
  ];
  for (const [from, want] of cases) {
    const subject = `spf ${from}`;
    const r = await send(from, message(from, '', subject));
    assert.equal(r.code, 250, `${from}: ${r.text}`);
    const auth = await received(r.queueId!);
    assert.equal(auth.spf, want, from);
    assert.equal(auth.spfDomain, from.split('@')[1]);
    assert.equal(auth.spfHelo, 'pass', 'EHLO helo.test is permitted');
    const ar = ourResults(await delivered(subject));
    assert.equal(ar.length, 1);
    assert.match(ar[0]!, new RegExp(`spf=${want} .*smtp\\.mailfrom=${from.replace('.', '\\.')}`));
    assert.match(ar[0]!, /spf=pass .*smtp\.helo=helo\.test/);
  }
  const r = await send('a@pass.test', message('a@pass.test', '', 'spf helo fail'), { helo: 'badhelo.test' });
  assert.equal(r.code, 250, r.text);
  assert.equal((await received(r.queueId!)).spfHelo, 'fail');
  const lit = await send('', message('a@fail.test', '', 'spf null sender literal'), { helo: '[127.0.0.1]' });
  assert.equal(lit.code, 250, lit.text);
  const auth = await received(lit.queueId!);
  assert.equal(auth.spfHelo, 'none', 'an address literal has no SPF');
  assert.equal(auth.spf, 'none', 'null sender: postmaster@HELO, which is a literal');
});

test('DMARC: pass by SPF, fail with p=none, quarantine, reject (refused), pct=0, sp= for a subdomain', async () => {
  let r = await send('a@pass.test', message('a@pass.test', '', 'dmarc pass'));
  let a = await received(r.queueId!);
  assert.equal(a.dmarc, 'pass');
  assert.equal(a.dmarcPolicy, 'reject');
  assert.match(ourResults(await delivered('dmarc pass'))[0]!, /dmarc=pass .*header\.from=pass\.test/);

  r = await send('a@fail.test', message('a@fail.test', '', 'dmarc none'));
  a = await received(r.queueId!);
  assert.deepEqual([a.dmarc, a.dmarcPolicy, a.dmarcAction], ['fail', 'none', 'none']);
  assert.doesNotMatch((await delivered('dmarc none')).toString('latin1'), /X-Postline-Quarantine/);

  r = await send('a@quar.test', message('a@quar.test', '', 'dmarc quarantine'));
  a = await received(r.queueId!);
  assert.deepEqual([a.dmarc, a.dmarcPolicy, a.dmarcAction], ['fail', 'quarantine', 'quarantine']);
  const q = (await delivered('dmarc quarantine')).toString('latin1');
  assert.match(q, /^X-Postline-Quarantine: dmarc; policy=quarantine; domain=quar\.test\r\n/m);
  assert.match(ourResults(Buffer.from(q, 'latin1'))[0]!, /dmarc=fail \(p=QUARANTINE dis=QUARANTINE\) header\.from=quar\.test/);

  r = await send('a@rej.test', message('a@rej.test', '', 'dmarc reject'));
  assert.equal(r.code, 550);
  assert.match(r.text, /^550 5\.7\.1 .*DMARC.*rej\.test/);
  const rej = await waitFor('the rejection event', async () => {
    const out = await pl.cli(['events', '--json', '--type', 'message.rejected']);
    return out.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as StoredEvent).find((e) => e.mailFrom === 'a@rej.test');
  }, 10_000, 100);
  assert.match(rej.reply ?? '', /^550 5\.7\.1/);
  assert.equal(rej.check, 'dmarc');

  r = await send('a@pct.test', message('a@pct.test', '', 'dmarc pct'));
  assert.equal(r.code, 250, 'pct=0: not sampled, so quarantine instead of reject');
  a = await received(r.queueId!);
  assert.deepEqual([a.dmarcPolicy, a.dmarcAction], ['reject', 'quarantine']);

  r = await send('a@sub.org.test', message('a@sub.org.test', '', 'dmarc sp'));
  assert.equal(r.code, 250, 'sp=none applies to the subdomain');
  a = await received(r.queueId!);
  assert.deepEqual([a.dmarc, a.dmarcPolicy, a.dmarcDomain], ['fail', 'none', 'sub.org.test']);
});

test('DMARC pass by an aligned DKIM signature while SPF fails', async () => {
  const raw = message('a@signed.test', '', 'dmarc dkim');
  const signed = await dkimSign(raw, { signatureData: [{ signingDomain: 'signed.test', selector: 'k1', privateKey: dkimKey.pem }] } as never);
  const r = await send('a@signed.test', Buffer.concat([Buffer.from(signed.signatures), raw]));
  assert.equal(r.code, 250, r.text);
  const a = await received(r.queueId!);
  assert.deepEqual([a.spf, a.dkim, a.dmarc], ['fail', 'pass', 'pass']);
  assert.deepEqual(a.dkimSignatures, [{ domain: 'signed.test', selector: 'k1', result: 'pass' }]);
});

test('a forged Authentication-Results with our authserv-id is removed; another one is kept', async () => {
  const forged = `Authentication-Results: ${ID}; spf=pass smtp.mailfrom=a@fail.test; dmarc=pass\r\n` +
    `Authentication-Results: (comment) MX.Postline.Test; dkim=pass\r\n` +
    `Authentication-Results: other.example; dkim=pass header.d=x.test\r\n`;
  const r = await send('a@fail.test', message('a@fail.test', forged, 'forged'));
  assert.equal(r.code, 250);
  const data = (await delivered('forged')).toString('latin1');
  const ours = ourResults(Buffer.from(data, 'latin1'));
  assert.equal(ours.length, 1, 'only ours claims our id');
  assert.match(ours[0]!, /spf=fail/);
  assert.doesNotMatch(data, /MX\.Postline\.Test; dkim=pass/);
  assert.match(data, /\r\nAuthentication-Results: other\.example; dkim=pass header\.d=x\.test\r\n/);
  assert.ok(data.indexOf(ours[0]!.slice(0, 40)) < data.indexOf('Received:'), 'ours is on top');
});

test('a DNS server that never answers: temperror, and the mail is accepted in time', async () => {
  const t0 = Date.now();
  const r = await send('a@slow.test', message('a@slow.test', '', 'slow dns'));
  assert.equal(r.code, 250, r.text);
  assert.ok(Date.now() - t0 < 6000, `took ${Date.now() - t0} ms`);
  const a = await received(r.queueId!);
  assert.equal(a.spf, 'temperror');
  assert.equal(a.dmarc, 'temperror');
  assert.match(ourResults(await delivered('slow dns'))[0]!, /spf=temperror/);
});

test('ARC: a forwarded message is sealed, the seal verifies at the next hop, and a second hop adds i=2 cv=pass', async () => {
  const resolver = createResolver({ servers: [dns.server], timeoutMs: 1000, tries: 1 });
  const mailauthResolver = async (name: string, type: string): Promise<any> => {
    try {
      return type === 'TXT' ? await resolver.resolveTxt!(name) : type === 'A' ? await resolver.resolve4(name) : [];
    } catch (err) {
      throw Object.assign(new Error(String(err)), { code: 'ENOTFOUND' });
    }
  };
  let r = await send('a@pass.test', message('a@pass.test', '', 'arc hop 1'), { rcpt: 'carol@fwd.test' });
  assert.equal(r.code, 250);
  assert.equal((await received(r.queueId!)).arcSealed, true);
  const first = await delivered('arc hop 1', 'carol@fwd.test');
  assert.match(first.toString('latin1'), /^ARC-Seal: i=1; a=rsa-sha256; t=\d+; cv=none; d=seal\.test; s=arc;/m);
  const check = await authenticate(first, { ip: '127.0.0.1', helo: 'helo.test', sender: 'a@pass.test', mta: 'next.test', resolver: mailauthResolver, disableBimi: true });
  assert.equal(check.arc && check.arc.status.result, 'pass');

  // The sealed message comes in again (a second forwarder): the chain passes and grows.
  r = await send('a@pass.test', first, { rcpt: 'dave@fwd.test' });
  assert.equal(r.code, 250);
  const a = await received(r.queueId!);
  assert.deepEqual([a.arc, a.arcChain, a.arcSealed], ['pass', 1, true]);
  const second = await delivered('arc hop 1', 'dave@fwd.test');
  assert.match(second.toString('latin1'), /^ARC-Seal: i=2; a=rsa-sha256; t=\d+; cv=pass; d=seal\.test; s=arc;/m);
  const check2 = await authenticate(second, { ip: '127.0.0.1', helo: 'helo.test', sender: 'a@pass.test', mta: 'next.test', resolver: mailauthResolver, disableBimi: true });
  assert.equal(check2.arc && check2.arc.status.result, 'pass');
  // Plain relaying (no arcSeal route, sealRelayed false): no seal.
  r = await send('a@pass.test', message('a@pass.test', '', 'arc not forwarded'));
  assert.equal((await received(r.queueId!)).arcSealed, undefined);
  assert.doesNotMatch((await delivered('arc not forwarded')).toString('latin1'), /ARC-Seal/);
});

test('the results are on the message.received log line and in `postline events`', async () => {
  const r = await send('a@pass.test', message('a@pass.test', '', 'log line'));
  const summary = /auth=\(spf=pass helo=pass dkim=none dmarc=pass arc=none\)/;
  await waitFor('the log line', () => pl.output.split('\n').some((l) => l.includes(r.queueId!) && summary.test(l)), 10_000, 100);
  assert.match((await pl.cli(['events', '--queue-id', r.queueId!, '--type', 'message.received'])).stdout, summary);
});
