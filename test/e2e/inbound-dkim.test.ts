/**
 * End to end: DKIM verification of real signed messages on an mx listener of the real `postline
 * serve`, each sent in a real SMTP session by an untrusted client, key records (TXT) served by a
 * real DNS server on loopback. The result of every signature is asserted (from the
 * message.received event; comments from the delivered Authentication-Results):
 *
 * - ../shared/corpus/dkim as it is. The keys we have (corpus keys/: Gmail's 20120113 and the
 *   RFC 8463 football.example.com pair) make their real signatures pass: relaxed RSA, Ed25519.
 *   Every other signature's key is gone from the Internet (our server answers NXDOMAIN): never
 *   pass, "neutral" (no key, or a body hash that no longer matches); a signature mailauth cannot use
 *   (the pre-RFC c=nowsp of the SpamAssassin "nice_dkim" vectors) is permerror. Every signature of a
 *   message is reported.
 * - Those passing messages tampered with: a body byte (body hash), a signed header field (bad
 *   signature), a key record that is broken, missing, or whose lookup fails (temperror).
 * - Every corpus DKIM message, and messages with the byte 0xA0 in signed header fields (latin1
 *   NBSP; UTF-8 "à", "Р"), signed again by dkimpy (an independent signer, relaxed and simple
 *   canonicalization in turn): our verification must pass each one. mailauth 4.13 alone fails the
 *   0xA0 ones (src/auth/mailauth.ts); skipped without python3-dkim.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PostlineProcess } from '../helpers/postline-process.js';
import { RawSmtp } from '../helpers/raw-smtp.js';
import { waitFor } from '../helpers/net.js';
import { corpusAvailable, loadCorpus, CORPUS_DIR, type CorpusMessage } from '../helpers/corpus.js';
import { startCapturePeer, type CapturePeer } from '../helpers/capture-peer.js';
import { startDnsServer, type DnsServerHandle, type Zones } from '../helpers/dns-server.js';
import { dkimpyPython, signWithDkimpy } from '../helpers/dkim-verify.js';
import { generateKey, recordValue, splitTxt } from '../../src/dkim/keys.js';
import type { AuthOutcome, StoredEvent } from '../../src/events/record.js';

const available = corpusAvailable();
if (!available) console.log(`corpus not found at ${CORPUS_DIR}: inbound DKIM test skipped`);
const python = dkimpyPython();
if (!python) console.log('python3-dkim not installed: the dkimpy re-signing part of the inbound DKIM test is skipped');

let dns: DnsServerHandle;
let peer: CapturePeer;
let pl: PostlineProcess;
const pyKey = generateKey('rsa-sha256', 2048);

/** Messages whose original signatures verify with the keys we have. */
const KNOWN = ['dkim/mimekit--dkim_gmail.eml', 'dkim/mimekit--dkim_multipart-no-end-boundary.eml', 'dkim/mimekit--dkim_related.eml', 'dkim/mimekit--dkim_rfc8463-example.eml'];

function zones(): Zones {
  const z: Zones = {};
  const gmail = readFileSync(join(CORPUS_DIR, 'dkim', 'keys', 'mimekit--gmail.com_s20120113.pub'), 'utf8').replace(/-----[^-]+-----|\s/g, '');
  z['20120113._domainkey.gmail.com'] = { txt: [splitTxt(`v=DKIM1; k=rsa; p=${gmail}`)] };
  const zone = readFileSync(join(CORPUS_DIR, 'dkim', 'keys', 'rfc8463-football.example.com.zone'), 'utf8');
  for (const m of zone.matchAll(/^(\S+)\.\s+IN\s+TXT\s+"([^"]+)"/gm)) z[m[1]!] = { txt: [splitTxt(m[2]!)] };
  z['broken._domainkey.gmail.com'] = { txt: [['v=DKIM1; k=rsa; p=bm90IGEga2V5']] };
  z['sf._domainkey.gmail.com'] = { servfail: true };
  z['py._domainkey.corpus.test'] = { txt: [splitTxt(recordValue(pyKey.key, 'rsa-sha256'))] };
  return z;
}

before(async () => {
  if (!available) return;
  dns = await startDnsServer(zones());
  peer = await startCapturePeer();
  pl = new PostlineProcess({
    config: {
      relay: { trustedNetworks: [], localDomains: ['rcpt.test'] },
      limits: { minFreeBytes: 0, maxMessageSize: 64 * 1024 * 1024 },
      delivery: {
        routes: [{ domain: 'rcpt.test', host: '127.0.0.1', port: peer.port, tls: 'none' }],
        dns: { servers: [dns.server], timeoutMs: 500, tries: 1 },
        retry: { initialMs: 60_000, maxMs: 60_000, jitter: 0 }, scanIntervalMs: 100,
      },
      auth: { timeoutMs: 3000, dns: { servers: [dns.server], timeoutMs: 500, tries: 1 } },
      log: { level: 'warn', format: 'json' },
    },
  });
  await pl.start();
});

after(async () => {
  await pl?.cleanup();
  await peer?.close();
  await dns?.close();
});

/** Sends each message in one session; @returns the queue ID of each (undefined when refused). */
async function sendAll(msgs: readonly { data: Buffer; eightBit: boolean; smtputf8: boolean }[]): Promise<(string | undefined)[]> {
  const { c } = await RawSmtp.open(pl.port());
  const ids: (string | undefined)[] = [];
  try {
    await c.ehlo('sender.test');
    for (const m of msgs) {
      const params = [m.eightBit ? 'BODY=8BITMIME' : '', m.smtputf8 ? 'SMTPUTF8' : ''].filter(Boolean).join(' ');
      const r = await c.send('corpus@sender.test', ['bob@rcpt.test'], m.data, params);
      ids.push(/queued as (\S+)/.exec(r.final?.text ?? '')?.[1]);
    }
  } finally {
    await c.quit();
  }
  return ids;
}

/** The verification results by queue ID (one CLI call). */
async function results(ids: readonly (string | undefined)[]): Promise<Map<string, AuthOutcome>> {
  const want = ids.filter((x): x is string => !!x);
  return waitFor('the message.received events', async () => {
    const r = await pl.cli(['events', '--json', '--type', 'message.received', '-n', '5000']);
    const m = new Map(r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as StoredEvent).filter((e) => e.auth).map((e) => [e.queueId!, e.auth!]));
    return want.every((id) => m.has(id)) ? m : undefined;
  }, 20_000, 200);
}

/** Our Authentication-Results (unfolded) of the delivered copy of `queueId`. */
async function deliveredResults(queueId: string): Promise<string> {
  const m = await waitFor(`delivery of ${queueId}`, () => peer.messages.find((x) => x.data.toString('latin1').includes(` id ${queueId}\r\n`)), 20_000, 50);
  const head = m.data.toString('latin1').split('\r\n\r\n')[0]!.replace(/\r\n[ \t]+/g, ' ');
  return head.split('\r\n').find((l) => l.startsWith('Authentication-Results: mx.postline.test;')) ?? '';
}

function signatureFields(data: Buffer): number {
  const end = data.indexOf('\r\n\r\n');
  const head = end < 0 ? data.toString('latin1') : data.subarray(0, end).toString('latin1');
  return head.split('\r\n').filter((l) => /^dkim-signature\s*:/i.test(l)).length;
}

const dkimCorpus = (): CorpusMessage[] => loadCorpus().filter((m) => m.name.startsWith('dkim/') && !m.name.startsWith('dkim/vectors/') && m.name.endsWith('.eml'));

test('corpus DKIM messages as they are: known keys pass, every other signature reported and never pass', { skip: !available }, async () => {
  const msgs = dkimCorpus();
  assert.ok(msgs.length >= 80, `${msgs.length} messages`);
  const ids = await sendAll(msgs);
  const res = await results(ids);
  let checked = 0;
  msgs.forEach((m, i) => {
    const id = ids[i];
    assert.ok(id, `${m.name} was accepted`);
    const a = res.get(id)!;
    const sigs = a.dkimSignatures ?? [];
    const fields = signatureFields(m.data);
    assert.equal(sigs.length, fields, `${m.name}: every signature reported (${JSON.stringify(sigs)})`);
    if (KNOWN.includes(m.name)) {
      assert.ok(sigs.length > 0 && sigs.every((s) => s.result === 'pass'), `${m.name}: ${JSON.stringify(sigs)}`);
      assert.equal(a.dkim, 'pass');
    } else {
      assert.ok(sigs.every((s) => ['neutral', 'permerror', 'policy'].includes(s.result)), `${m.name}: ${JSON.stringify(sigs)}`);
      assert.equal(a.dkim, sigs.length ? sigs[0]!.result : 'none', m.name);
    }
    if (/nice_dkim_(BasicTest|MIMEnowsp|MultipleSig|Simple)_/.test(m.name) && /c=nowsp/.test(m.data.toString('latin1'))) {
      assert.ok(sigs.some((s) => s.result === 'permerror'), `${m.name}: c=nowsp is permerror`);
    }
    checked++;
  });
  assert.equal(checked, msgs.length);
  const ed = res.get(ids[msgs.findIndex((m) => m.name === 'dkim/mimekit--dkim_rfc8463-example.eml')]!)!;
  assert.deepEqual(ed.dkimSignatures?.map((s) => s.selector).sort(), ['brisbane', 'test'], 'Ed25519 and RSA');
});

test('tampered copies of passing messages: body, signed header, broken, missing and failing key records', { skip: !available }, async () => {
  const base = dkimCorpus().find((m) => m.name === 'dkim/mimekit--dkim_gmail.eml')!;
  const text = base.data.toString('latin1');
  const bodyAt = text.indexOf('\r\n\r\n') + 4;
  const variants: { what: string; data: string; result: string; comment: RegExp }[] = [
    { what: 'body', data: text.slice(0, bodyAt) + text.slice(bodyAt).replace(/[a-z]/, 'X'), result: 'neutral', comment: /body hash did not verify/ },
    { what: 'header', data: text.replace(/^Subject: (.*)$/m, 'Subject: $1!'), result: 'fail', comment: /bad signature/ },
    { what: 'broken key', data: text.replace(/\bs=20120113;/, 's=broken;'), result: 'neutral', comment: /unknown key type|invalid public key/ },
    { what: 'no key', data: text.replace(/\bs=20120113;/, 's=gone;'), result: 'neutral', comment: /no key/ },
    { what: 'key lookup fails', data: text.replace(/\bs=20120113;/, 's=sf;'), result: 'temperror', comment: /DNS/ },
  ];
  for (const v of variants) assert.notEqual(v.data, text, v.what);
  const ids = await sendAll(variants.map((v) => ({ data: Buffer.from(v.data, 'latin1'), eightBit: base.eightBit, smtputf8: base.smtputf8 })));
  const res = await results(ids);
  for (let i = 0; i < variants.length; i++) {
    const v = variants[i]!;
    const a = res.get(ids[i]!)!;
    assert.equal(a.dkimSignatures?.[0]?.result, v.result, v.what);
    assert.match(await deliveredResults(ids[i]!), new RegExp(`dkim=${v.result} \\((?:${v.comment.source})`), v.what);
  }
});

test('re-signed by dkimpy (relaxed and simple), 0xA0 in signed header fields included: every signature passes', { skip: !available || !python }, async () => {
  const extra: CorpusMessage[] = [
    ['Subject: Caf\xe9\xa0au lait \xa0', false],
    ['Subject: =?utf-8?q?x?= Voil\xc3\xa0', true],
    ['From: "\xd0\xa0\xd0\xbe\xd0\xbc\xd0\xb0\xc3\xa0" <roma@corpus.test>', true],
  ].map(([field, utf8], i) => {
    const hasFrom = (field as string).startsWith('From:');
    const data = Buffer.from(`${hasFrom ? '' : 'From: <a@corpus.test>\r\n'}${field}\r\nTo: <bob@rcpt.test>\r\n${hasFrom ? 'Subject: nbsp\r\n' : ''}Date: Thu, 03 Dec 2026 10:00:00 +0000\r\nMessage-ID: <nbsp${i}@corpus.test>\r\n\r\nbody\r\n`, 'latin1');
    return { name: `synthetic-${i}`, data, eightBit: true, smtputf8: utf8 as boolean };
  });
  const others = loadCorpus().filter((m) => m.name === 'smtputf8/spamassassin--nice_unicode1.eml');
  const msgs = [...dkimCorpus(), ...others, ...extra];
  const sigs = await signWithDkimpy(python!, msgs.map((m) => m.data), { domain: 'corpus.test', selector: 'py', keyPem: pyKey.pem, canon: ['relaxed/relaxed', 'simple/simple'] });
  const signed = msgs.flatMap((m, i) => (sigs[i] ? [{ ...m, data: Buffer.concat([sigs[i]!, m.data]), canon: i % 2 ? 'simple' : 'relaxed' }] : []));
  assert.ok(signed.length >= msgs.length - 5, `dkimpy signed ${signed.length} of ${msgs.length}`);
  const nbsp = signed.filter((m) => m.data.subarray(0, m.data.indexOf('\r\n\r\n')).includes(0xa0));
  assert.ok(nbsp.filter((m) => m.canon === 'relaxed').length >= 2, 'relaxed signatures over header fields holding 0xA0');
  const ids = await sendAll(signed);
  const res = await results(ids);
  signed.forEach((m, i) => {
    assert.ok(ids[i], `${m.name} accepted`);
    const ours = res.get(ids[i]!)!.dkimSignatures?.find((s) => s.domain === 'corpus.test');
    assert.equal(ours?.result, 'pass', `${m.name} (${m.canon}): ${JSON.stringify(res.get(ids[i]!)!.dkimSignatures)}`);
  });
});
