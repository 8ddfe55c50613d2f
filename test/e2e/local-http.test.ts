/**
 * The http transport (inbound parse) end to end (issue 10 section 1): a real `postline serve` with
 * local routes to a real node:http receiver on 127.0.0.1, mail sent over SMTP.
 *
 * - a route `hooks.test` whose receiver fails once (503), then takes the message: deferred, then
 *   delivered on the retry; the JSON checked (envelope, headers, HTML and attachments against
 *   mailparser run on the sent bytes; our Authentication-Results from inbound verification, with
 *   SPF from a loopback DNS server, on top, a forged one claiming our authserv-id gone, another
 *   kept) and the Standard Webhooks signature verified by an HMAC computed in the test;
 * - a route with bounceOn4xx whose receiver answers 422: bounced 5.0.0 with the status;
 * - a route URL on loopback without local.http.allowPrivate stops the start naming the key.
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { simpleParser } from 'mailparser';
import { PostlineProcess, runCli } from '../helpers/postline-process.js';
import { RawSmtp } from '../helpers/raw-smtp.js';
import { waitFor } from '../helpers/net.js';
import { CORPUS_DIR, corpusAvailable, toCrlf } from '../helpers/corpus.js';
import { InboundReceiver, verifySignature } from '../helpers/inbound-receiver.js';
import { startDnsServer, type DnsServerHandle } from '../helpers/dns-server.js';
import type { InboundPayload } from '../../src/local/inbound-parse.js';

const cleanups: Array<() => Promise<void>> = [];
after(async () => { for (const c of cleanups.reverse()) await c().catch(() => {}); });

const SECRET = `whsec_${randomBytes(32).toString('base64')}`;
let pl: PostlineProcess;
let rx: InboundReceiver;
let dns: DnsServerHandle;

before(async () => {
  rx = await new InboundReceiver().listen();
  cleanups.push(() => rx.close());
  // Inbound verification runs for untrusted clients on the mx listener: SPF of origin.test from a loopback DNS server.
  dns = await startDnsServer({ 'origin.test': { txt: [['v=spf1 ip4:127.0.0.1 -all']] } });
  cleanups.push(() => dns.close());
  pl = new PostlineProcess({});
  pl.configOverride = {
    relay: { trustedNetworks: [] },
    auth: { timeoutMs: 1500, dns: { servers: [dns.server], timeoutMs: 400, tries: 1 } },
    delivery: { retry: { initialMs: 300, maxMs: 600, jitter: 0 }, scanIntervalMs: 100 },
    local: {
      routes: [
        { match: 'hooks.test', transport: 'http', target: rx.url('/inbound') },
        { match: 'strict.test', transport: 'http', target: rx.url('/strict'), bounceOn4xx: true },
      ],
      http: { secret: SECRET, allowPrivate: true, timeoutMs: 5000 },
    },
  };
  cleanups.push(() => pl.cleanup());
  await pl.start();
});

async function send(from: string, rcpts: string[], data: Buffer) {
  const { c } = await RawSmtp.open(pl.port());
  try {
    await c.ehlo();
    return await c.send(from, rcpts, data, /[\x80-\xff]/.test(data.toString('latin1')) ? 'BODY=8BITMIME' : '');
  } finally {
    await c.quit().catch(() => {});
  }
}

async function events(id: string): Promise<Array<{ type: string; recipient?: string; dsn?: string; reply?: string; bounceClass?: string }>> {
  const out = (await pl.cli(['events', '--json', '--queue-id', id])).stdout.trim();
  return out ? out.split('\n').map((l) => JSON.parse(l)) : [];
}

test('a receiver that fails once (503) and then takes it: deferred, delivered on the retry; the payload and its signature', { skip: !corpusAvailable() && 'no corpus' }, async () => {
  const forged = 'Authentication-Results: mx.postline.test; spf=pass; dkim=pass; dmarc=pass\r\nAuthentication-Results: relay.other.example; spf=fail\r\n';
  const data = Buffer.concat([Buffer.from(forged), toCrlf(readFileSync(join(CORPUS_DIR, 'mime', 'mailpit--mixed-attachment.eml')))]);
  rx.script({ status: 503, text: 'try later' }, { status: 200, text: 'thanks' });
  const r = await send('alice@origin.test', ['Bob@Hooks.test', 'carol@hooks.test'], data);
  assert.equal(r.final?.code, 250, r.final?.text);
  const id = /queued as (\S+)/.exec(r.final!.text)![1]!;
  await waitFor('two requests at the receiver', () => rx.requests.filter((q) => q.path === '/inbound').length >= 2, 20_000);
  const evs = await waitFor('the delivered events', async () => {
    const e = await events(id);
    return e.filter((x) => x.type === 'recipient.delivered').length === 2 ? e : undefined;
  }, 20_000, 200);
  const deferred = evs.filter((e) => e.type === 'recipient.deferred');
  assert.equal(deferred.length, 2, 'both recipients deferred by the one failed POST');
  assert.equal(deferred[0]!.dsn, '4.0.0');
  assert.match(deferred[0]!.reply!, /^451 4\.0\.0 127\.0\.0\.1:\d+ answered HTTP 503: try later$/);
  assert.equal(deferred[0]!.bounceClass, 'TransientFailure', 'the class of the reply (scheduler/round.ts classifies what agents leave open)');
  await waitFor('the queue to empty', async () => (await pl.cli(['queue', 'list', '--json'])).stdout.trim() === '[]', 20_000, 200);

  const reqs = rx.requests.filter((q) => q.path === '/inbound');
  assert.equal(reqs.length, 2, 'one POST per attempt for both recipients');
  for (const q of reqs) {
    assert.ok(verifySignature(SECRET, q.headers, q.body), 'the Standard Webhooks signature, checked by the test\'s own HMAC');
    assert.equal(q.headers['webhook-id'], `${id}.0.1`);
  }
  const p = reqs[1]!.json as InboundPayload;
  assert.equal(p.queueId, id);
  assert.deepEqual(p.envelope, { mailFrom: 'alice@origin.test', rcptTo: ['Bob@Hooks.test', 'carol@hooks.test'] });
  const ref = await simpleParser(data, { keepCidLinks: true, skipHtmlToText: true, skipTextToHtml: true });
  assert.equal(p.subject, ref.subject);
  assert.equal(p.html, ref.html);
  assert.deepEqual(p.attachments.map((a) => [a.filename, a.contentType, a.size, a.contentId]), ref.attachments.map((a) => [a.filename, a.contentType, a.size, a.cid ?? null]));
  p.attachments.forEach((a, i) => assert.ok(Buffer.from(a.content, 'base64').equals(ref.attachments[i]!.content)));
  assert.deepEqual(p.headers.slice(0, 3).map((h) => h.name), ['Authentication-Results', 'Received', 'Authentication-Results'], 'ours on top, the forged one claiming our authserv-id removed');
  assert.equal(p.authenticationResults.length, 2);
  assert.match(p.authenticationResults[0]!, /^mx\.postline\.test;.*spf=pass/);
  assert.equal(p.authenticationResults[1], 'relay.other.example; spf=fail');
  assert.deepEqual(p.auth, { authservId: 'mx.postline.test', spf: 'pass', dkim: 'none', dmarc: 'none' });
  assert.ok(p.size > data.length, 'the stored message: our fields on top of what was sent');
});

test('bounceOn4xx: a 422 bounces the recipient with 5.0.0 and the status', async () => {
  rx.script({ status: 422, text: 'unknown mailbox' });
  const r = await send('', ['nobody@strict.test'], Buffer.from('Subject: strict\r\n\r\nhi\r\n'));
  assert.equal(r.final?.code, 250, r.final?.text);
  const id = /queued as (\S+)/.exec(r.final!.text)![1]!;
  const bounced = await waitFor('the bounce event', async () => (await events(id)).find((e) => e.type === 'recipient.bounced'), 20_000, 200);
  assert.equal(bounced.dsn, '5.0.0');
  assert.match(bounced.reply!, /^550 5\.0\.0 127\.0\.0\.1:\d+ answered HTTP 422: unknown mailbox$/);
  assert.equal(bounced.bounceClass, 'InvalidRecipient', 'the receiver\'s text classified like an SMTP reply');
  assert.equal(rx.requests.filter((q) => q.path === '/strict').length, 1, 'not retried');
});

test('a route URL on loopback without local.http.allowPrivate stops the start naming the key', async () => {
  const file = join(pl.dir, 'private.yaml');
  writeFileSync(file, [
    'listeners: [{ name: mx, address: 127.0.0.1, port: 1 }]',
    `dataDir: ${join(pl.dir, 'private-var')}`,
    'local:',
    '  routes:',
    '    - { match: hooks.test, transport: http, target: "http://127.0.0.1:9/inbound" }',
  ].join('\n'));
  const check = await runCli(['config', '--config', file]);
  assert.equal(check.code, 2, 'a configuration error');
  assert.match(check.stderr, /local\.routes\.0\.target: 127\.0\.0\.1 is a loopback address \(set local\.http\.allowPrivate: true to allow it\)/);
});
