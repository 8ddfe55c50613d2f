/**
 * Tracking and unsubscribe end to end, through the real `postline serve`: a message sent with the
 * API asking for tracking reaches Postfix's smtp-sink once per recipient with its own rewritten
 * links and open pixel, List-Unsubscribe / List-Unsubscribe-Post / Feedback-ID, and a DKIM
 * signature that an independent verifier accepts (dkimpy, Debian's python3-dkim, with the key
 * record from a loopback DNS server; mailauth too) and whose h= names the added fields. Then curl
 * (a real HTTP client) fetches the pixel twice (recipient.opened, first then repeat), follows a
 * tracked link to a landing page on loopback (302 to the original, recipient.clicked), is refused a
 * tampered link (400, no Location), loads the unsubscribe page (nothing recorded) and POSTs the
 * one-click body (recipient.unsubscribed with the sender domain as scope); swaks sends mail to the
 * other recipient's mailto: address, which the internal `unsubscribe` consumer turns into its
 * recipient.unsubscribed (source mailto), and a forged one records nothing.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PostlineProcess } from '../helpers/postline-process.js';
import { SmtpSink, SMTP_SINK } from '../helpers/smtp-sink.js';
import { waitFor } from '../helpers/net.js';
import { startDnsServer, type DnsServerHandle } from '../helpers/dns-server.js';
import { dkimpyPython, verifyWithDkimpy, verifyWithMailauth } from '../helpers/dkim-verify.js';
import { createResolver } from '../../src/dns/resolver.js';
import { generateKey, recordName, recordValue, splitTxt } from '../../src/dkim/keys.js';

const python = dkimpyPython();
const CURL = '/usr/bin/curl';
const BROWSER = 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0';

let sink: SmtpSink;
let dns: DnsServerHandle;
let pl: PostlineProcess;
let landing: Server;
let landingUrl = '';
let keyDir = '';
let key = '';
const records: Record<string, string> = {};

/** Runs curl; resolves with its stdout (bounded to 20 s). */
function curl(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(CURL, ['-sS', '--max-time', '15', ...args], { timeout: 20_000, encoding: 'latin1' }, (err, stdout, stderr) => (err ? reject(new Error(`${err.message} ${stderr}`)) : resolve(stdout)));
  });
}

async function api(path: string, init: RequestInit & { json?: unknown } = {}): Promise<{ status: number; body: any }> {
  const headers = new Headers(init.headers);
  headers.set('authorization', `Bearer ${key}`);
  if (init.json !== undefined) headers.set('content-type', 'application/json');
  const res = await fetch(`http://127.0.0.1:${pl.httpPort}${path}`, { ...init, headers, ...(init.json !== undefined ? { body: JSON.stringify(init.json) } : {}), signal: AbortSignal.timeout(20_000) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

async function events(type: string, n: number): Promise<any[]> {
  return waitFor(`${n} ${type} events`, async () => {
    const r = await api(`/api/v1/events?type=${type}&limit=100`);
    return r.body.events.length >= n ? r.body.events : undefined;
  }, 20_000, 100);
}

const skip = (!SMTP_SINK && 'smtp-sink not installed') || (!python && 'python3-dkim not installed');

before(async () => {
  if (skip) return;
  landing = createServer((req, res) => { res.writeHead(200, { 'content-type': 'text/plain' }); res.end(`landed ${req.url}`); });
  await new Promise<void>((r) => landing.listen(0, '127.0.0.1', r));
  landingUrl = `http://127.0.0.1:${(landing.address() as { port: number }).port}/landing?src=mail&x=1`;
  keyDir = mkdtempSync(join(tmpdir(), 'postline-track-keys-'));
  const rsa = generateKey('rsa-sha256', 2048);
  writeFileSync(join(keyDir, 'rsa.pem'), rsa.pem, { mode: 0o600 });
  records[recordName('tr', 'app.test')] = recordValue(rsa.key, 'rsa-sha256');
  dns = await startDnsServer({ [recordName('tr', 'app.test')]: { txt: [splitTxt(records[recordName('tr', 'app.test')]!)] } });
  sink = await new SmtpSink().start();
  pl = new PostlineProcess({
    http: true,
    config: {
      dkim: { keys: [{ domain: 'app.test', selector: 'tr', algorithm: 'rsa-sha256', privateKey: join(keyDir, 'rsa.pem') }] },
      tracking: { enabled: true },
      unsubscribe: { enabled: true, apiKeys: ['e2e'], mailtoDomain: 'unsub.app.test' },
      feedbackId: { enabled: true, fields: ['tag:campaign', 'metadata:customer'], senderId: 'e2etest' },
      delivery: { routes: [{ domain: 'sink.test', host: '127.0.0.1', port: sink.port, tls: 'none' }], retry: { initialMs: 60_000, maxMs: 60_000, jitter: 0 }, scanIntervalMs: 100 },
      // Mail to the mailto: unsubscribe address goes to the internal `unsubscribe` consumer.
      local: { routes: [{ match: 'unsub.app.test', transport: 'internal', target: 'unsubscribe' }] },
    },
  });
  await pl.start();
  const made = await pl.cli(['apikey', 'create', 'e2e', '--scope', 'send,read', '--domain', 'app.test']);
  assert.equal(made.code, 0, made.stderr);
  key = made.stdout.trimEnd().split('\n').at(-1)!;
});

after(async () => {
  await pl?.cleanup();
  await sink?.cleanup();
  await dns?.close();
  await new Promise<void>((r) => (landing ? landing.close(() => r()) : r()));
  if (keyDir) rmSync(keyDir, { recursive: true, force: true });
});

const lfToCrlf = (b: Buffer): Buffer => Buffer.from(b.toString('latin1').replace(/\n/g, '\r\n'), 'latin1');
const unqp = (s: string): string => Buffer.from(s.replace(/=\r\n/g, '').replace(/=([0-9A-F]{2})/g, (_m, h: string) => String.fromCharCode(parseInt(h, 16))), 'latin1').toString('utf8');

test('tracked API mail: per-recipient links and pixel, list headers, DKIM verified by dkimpy; curl follows the pixel, a link and the unsubscribe URL', { skip }, async () => {
  const html = `<html><body><p>Hello <a href="${landingUrl.replace(/&/g, '&amp;')}">our offer</a>, <a href="mailto:help@app.test">help</a>, <a href="#top">top</a>.</p></body></html>`;
  const sent = await api('/api/v1/messages', {
    method: 'POST',
    json: {
      from: 'News <news@app.test>', to: ['one@sink.test', 'two@sink.test'], subject: 'Tracked', text: `Plain: ${landingUrl}`, html,
      tags: ['campaign:spring'], metadata: { customer: 'acme' }, tracking: { opens: true, clicks: true },
    },
  });
  assert.equal(sent.status, 202, JSON.stringify(sent.body));
  const queueIds = new Map<string, string>(sent.body.recipients.map((r: { address: string; queueId: string }) => [r.address, r.queueId]));
  const got = await waitFor('two deliveries at the sink', () => (sink.messages().length >= 2 ? sink.messages() : undefined), 30_000, 100);
  const byRcpt = new Map(got.map((m) => [/<([^>]*)>/.exec(m.rcptArgs[0]!)![1]!, lfToCrlf(m.data)]));
  const base = `http://127.0.0.1:${pl.httpPort}`;
  const tokens = new Map<string, { click: string; open: string; unsub: string }>();
  for (const rcpt of ['one@sink.test', 'two@sink.test']) {
    const msg = byRcpt.get(rcpt)!;
    const text = msg.toString('latin1');
    const head = text.slice(0, text.indexOf('\r\n\r\n'));
    const body = unqp(text);
    const click = new RegExp(`<a href="${base}/t/c/([A-Za-z0-9_-]+)">our offer</a>`).exec(body)?.[1];
    const open = new RegExp(`<img src="${base}/t/o/([A-Za-z0-9_-]+)" width="1" height="1" alt=""></body>`).exec(body)?.[1];
    const unsub = new RegExp(`List-Unsubscribe: <${base}/u/([A-Za-z0-9_-]+)>,\\r\\n <mailto:unsubscribe\\+([A-Za-z0-9_-]+)@unsub\\.app\\.test>`).exec(head);
    assert.ok(click && open && unsub, `${rcpt}: tracked links, pixel and List-Unsubscribe\n${text.slice(0, 3000)}`);
    assert.equal(unsub[1], unsub[2], 'the same token in both URIs');
    assert.match(body, /href="mailto:help@app\.test"/);
    assert.match(body, /href="#top"/);
    assert.ok(text.includes(`Plain: ${landingUrl}`), 'the text part as written');
    assert.match(head, /\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n/);
    assert.match(head, /\r\nFeedback-ID: spring:acme:e2etest\r\n/);
    const h = /h=([^;]+);/.exec(head.replace(/\r\n[ \t]+/g, ''))![1]!.toLowerCase().split(':');
    for (const f of ['list-unsubscribe', 'list-unsubscribe-post', 'feedback-id']) assert.ok(h.includes(f), `${f} in h=`);
    tokens.set(rcpt, { click, open, unsub: unsub[1]! });
  }
  assert.notEqual(tokens.get('one@sink.test')!.click, tokens.get('two@sink.test')!.click, 'each recipient has its own links');

  const py = await verifyWithDkimpy(python!, [...byRcpt.values()], records);
  assert.deepEqual(py.map((v) => ('error' in v ? v.error : v.map((s) => `${s.d}/${s.s}/${s.ok}`).join(' '))), ['app.test/tr/true', 'app.test/tr/true'], 'dkimpy verifies both');
  const resolver = createResolver({ servers: [dns.server], timeoutMs: 2000, tries: 2 });
  for (const m of byRcpt.values()) assert.deepEqual((await verifyWithMailauth(m, resolver)).map((r) => r.result), ['pass']);

  // The pixel, twice: the first open, then a repeat.
  const one = tokens.get('one@sink.test')!;
  const pixel = await curl(['-A', BROWSER, '-D', '-', '-o', '/dev/null', `${base}/t/o/${one.open}`]);
  assert.match(pixel, /^HTTP\/1\.1 200/);
  assert.match(pixel, /content-type: image\/gif/i);
  assert.match(pixel, /content-length: 43/i);
  assert.match(pixel, /cache-control: no-store/i);
  await curl(['-A', BROWSER, '-o', '/dev/null', `${base}/t/o/${one.open}`]);
  const opens = await events('recipient.opened', 2);
  assert.deepEqual(opens.map((e) => [e.queueId, e.recipient, e.first, e.userAgent, e.clientAddress]), [
    [queueIds.get('one@sink.test'), 'one@sink.test', true, BROWSER, '127.0.0.1'],
    [queueIds.get('one@sink.test'), 'one@sink.test', false, BROWSER, '127.0.0.1'],
  ]);
  assert.deepEqual([opens[0].tags, opens[0].metadata], [['campaign:spring'], { customer: 'acme' }]);

  // A link: 302 to the original, which curl follows to the landing page.
  const redirect = await curl(['-A', BROWSER, '-o', '/dev/null', '-w', '%{http_code} %{redirect_url}', `${base}/t/c/${one.click}`]);
  assert.equal(redirect, `302 ${landingUrl}`);
  assert.equal(await curl(['-A', BROWSER, '-L', `${base}/t/c/${one.click}`]), 'landed /landing?src=mail&x=1');
  const clicks = await events('recipient.clicked', 2);
  assert.deepEqual(clicks.map((e) => [e.recipient, e.url, e.first]), [['one@sink.test', landingUrl, true], ['one@sink.test', landingUrl, false]]);

  // A tampered link: 400 with a reason, never a redirect.
  const t = one.click;
  const tampered = t.slice(0, 30) + (t[30] === 'A' ? 'B' : 'A') + t.slice(31);
  const refused = await curl(['-A', BROWSER, '-D', '-', `${base}/t/c/${tampered}`]);
  assert.match(refused, /^HTTP\/1\.1 400/);
  assert.doesNotMatch(refused, /^location:/im);
  assert.match(refused, /ERR_API_BAD_TOKEN/);

  // Unsubscribe: the page changes nothing; the one-click POST records the event.
  const page = await curl(['-A', BROWSER, `${base}/u/${one.unsub}`]);
  assert.match(page, /<form method="post">/);
  await new Promise((r) => setTimeout(r, 1200));
  assert.equal((await api('/api/v1/events?type=recipient.unsubscribed')).body.events.length, 0, 'GET recorded nothing');
  const post = await curl(['-A', BROWSER, '-w', ' %{http_code}', '-d', 'List-Unsubscribe=One-Click', `${base}/u/${one.unsub}`]);
  assert.match(post, /"unsubscribed":true.* 200$/);
  const un = await events('recipient.unsubscribed', 1);
  assert.deepEqual([un[0].queueId, un[0].recipient, un[0].scope, un[0].source], [queueIds.get('one@sink.test'), 'one@sink.test', 'app.test', 'one-click']);

  // The mailto: address, by mail (swaks, a real SMTP client), and a forged one.
  const two = tokens.get('two@sink.test')!;
  const forged = two.unsub.slice(0, 10) + (two.unsub[10] === 'A' ? 'B' : 'A') + two.unsub.slice(11);
  for (const token of [forged, two.unsub]) {
    const out = await new Promise<string>((resolve, reject) => execFile('swaks', ['--server', `127.0.0.1:${pl.port()}`, '--from', 'unsub-robot@mail.example', '--to', `unsubscribe+${token}@unsub.app.test`, '--h-Subject', 'unsubscribe', '--body', 'unsubscribe'], { timeout: 30_000 }, (err, stdout) => (err ? reject(err) : resolve(stdout))));
    assert.match(out, /<- {2}250 /);
  }
  const both = await events('recipient.unsubscribed', 2);
  assert.equal(both.length, 2, 'the forged address recorded nothing');
  assert.deepEqual([both[1].queueId, both[1].recipient, both[1].scope, both[1].source], [queueIds.get('two@sink.test'), 'two@sink.test', 'app.test', 'mailto']);
  await new Promise((r) => setTimeout(r, 1000));
  assert.equal((await api('/api/v1/events?type=recipient.unsubscribed')).body.events.length, 2);
});
