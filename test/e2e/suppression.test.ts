/**
 * The suppression list end to end (issue 10 section 4), through the real `postline serve` process:
 * an authenticated submission listener (swaks and a raw SMTP client), Postfix's smtp-sink as the
 * good next hop and a scripted SMTP server on loopback that answers 550 5.1.1 for one address and
 * 452 for another domain until told otherwise. Covered: 550 5.7.1 at RCPT (address and whole
 * domain; trusted clients too; inbound mail for a local domain never); drop mode after a SIGHUP
 * (accepted, recipient.dropped, nothing delivered); the API's status "suppressed" (nothing queued
 * when every recipient is); a hard bounce suppressing the next message; expiries in a row making a
 * soft-bounce entry that a later delivery clears; the CLI's add/list/remove/export/import while
 * the server runs and with it stopped; /api/v1/suppressions paging, filters and errors.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PostlineProcess } from '../helpers/postline-process.js';
import { SmtpSink, SMTP_SINK } from '../helpers/smtp-sink.js';
import { startSmtpPeer, type SmtpPeer } from '../helpers/smtp-peer.js';
import { RawSmtp, type Reply } from '../helpers/raw-smtp.js';
import { waitFor } from '../helpers/net.js';
import type { StoredEvent } from '../../src/events/record.js';
import type { Suppression } from '../../src/suppression/types.js';
import { controlRequest } from '../../src/control/client.js';

const USER = 'alice@shop.test';
const PASS = 'correct horse';
const HAVE_SWAKS = spawnSync('swaks', ['--version'], { encoding: 'utf8' }).status === 0;
const skip = !SMTP_SINK ? 'smtp-sink not installed' : false;

let sink: SmtpSink;
let peer: SmtpPeer;
let pl: PostlineProcess;
let key = '';
let readKey = '';
/** The scripted next hop accepts soft.test recipients once this is true. */
let softAccept = false;

async function call(path: string, init: RequestInit & { json?: unknown; token?: string } = {}): Promise<{ status: number; body: any }> {
  const headers = new Headers(init.headers);
  if (init.token !== '') headers.set('authorization', `Bearer ${init.token ?? key}`);
  if (init.json !== undefined) headers.set('content-type', 'application/json');
  const res = await fetch(`http://127.0.0.1:${pl.httpPort}${path}`, {
    ...init, headers, ...(init.json !== undefined ? { body: JSON.stringify(init.json) } : {}), signal: AbortSignal.timeout(20_000),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

const cli = async (...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> => pl.cli(args);
const ok = async (...args: string[]): Promise<string> => {
  const r = await cli(...args);
  assert.equal(r.code, 0, `postline ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
};
const listed = async (...args: string[]): Promise<Suppression[]> => (JSON.parse(await ok('suppression', 'list', '--json', '--limit', '1000', ...args)) as { items: Suppression[] }).items;
const events = async (type: string): Promise<StoredEvent[]> => (await ok('events', '--json', '--type', type)).split('\n').filter(Boolean).map((l) => JSON.parse(l) as StoredEvent);

/** One authenticated submission transaction. */
async function submit(rcpts: string[], subject: string): Promise<{ rcpts: Reply[]; final?: Reply; data?: Reply; queueId?: string }> {
  const { c } = await RawSmtp.open(pl.port('sub'));
  try {
    await c.ehlo();
    assert.equal((await c.authPlain(USER, PASS)).code, 235);
    const r = await c.send(USER, rcpts, Buffer.from(`From: ${USER}\r\nTo: list@shop.test\r\nSubject: ${subject}\r\n\r\nhello\r\n`));
    return { ...r, ...(r.final ? { queueId: /queued as (\S+)/.exec(r.final.text)?.[1] } : {}) };
  } finally {
    await c.quit();
  }
}

const atSink = (subject: string) => sink.messages().filter((m) => m.data.toString().includes(`Subject: ${subject}`));

before(async () => {
  if (skip) return;
  sink = await new SmtpSink().start();
  peer = await startSmtpPeer({
    reply: (cmd) => {
      if (/^RCPT TO:<gone@bounce\.test>/i.test(cmd)) return '550 5.1.1 <gone@bounce.test>: Recipient address rejected: user unknown';
      if (/^RCPT TO:<[^>]*@soft\.test>/i.test(cmd) && !softAccept) return '452 4.2.2 mailbox full, try again later';
      return undefined;
    },
  });
  const route = (domain: string, port: number) => ({ domain, host: '127.0.0.1', port, tls: 'none' });
  pl = new PostlineProcess({
    http: true,
    listeners: [{ name: 'mx', role: 'mx', tls: 'none' }, { name: 'sub', role: 'submission', tls: 'none', allowPlaintextAuth: true }],
    config: {
      relay: { trustedNetworks: ['127.0.0.1/32'], localDomains: ['local.test'] },
      suppression: { softBounceLimit: 2 },
      delivery: {
        routes: [...['sink.test', 'shop.test', 'app.test', 'local.test', 'blockdom.test'].map((d) => route(d, sink.port)), route('bounce.test', peer.port), route('soft.test', peer.port)],
        retry: { initialMs: 300, maxMs: 300, jitter: 0 },
        maxQueueLifetimeMs: 2500,
        scanIntervalMs: 100,
      },
    },
  });
  await pl.writeConfig();
  const add = await pl.cli(['user', 'add', USER], PASS + '\n');
  assert.equal(add.code, 0, add.stderr);
  await pl.start();
  key = (await ok('apikey', 'create', 'supp', '--scope', 'send,read,admin', '--domain', 'app.test')).trimEnd().split('\n').at(-1)!;
  readKey = (await ok('apikey', 'create', 'reader', '--scope', 'read')).trimEnd().split('\n').at(-1)!;
});

after(async () => {
  await pl?.cleanup();
  await sink?.cleanup();
  await peer?.close();
});

test('SMTP: a suppressed recipient gets 550 5.7.1 at RCPT (address, whole domain, trusted clients), the others are delivered; inbound mail for a local domain is never checked', { skip }, async () => {
  assert.match(await ok('suppression', 'add', 'Blocked@Sink.test'), /^blocked@sink\.test: suppressed for every sender \(manual\)/);
  await ok('suppression', 'add', '*@blockdom.test', '--reason', 'complaint');
  await ok('suppression', 'add', 'x@local.test');
  if (HAVE_SWAKS) {
    const v = spawnSync('swaks', ['--timeout', '20', '--server', `127.0.0.1:${pl.port('sub')}`, '--auth', 'PLAIN', '--auth-user', USER, '--auth-password', PASS,
      '--from', USER, '--to', 'blocked@sink.test', '--header', 'Subject: swaks suppressed'], { encoding: 'utf8', timeout: 60_000 });
    assert.notEqual(v.status, 0, 'swaks sees the refusal');
    assert.match(v.stdout + v.stderr, /<\*\*\s*550 5\.7\.1 <blocked@sink\.test>: recipient is on the suppression list \(manual\)/);
  }
  const r = await submit(['blocked@sink.test', 'someone@BLOCKDOM.test', 'fine@sink.test'], 'smtp-reject');
  assert.equal(r.rcpts[0]!.text, '550 5.7.1 <blocked@sink.test>: recipient is on the suppression list (manual)');
  assert.equal(r.rcpts[1]!.text, '550 5.7.1 <someone@BLOCKDOM.test>: recipient is on the suppression list (complaint)', 'a whole domain, any case');
  assert.equal(r.rcpts[2]!.code, 250);
  assert.equal(r.final?.code, 250, r.final?.text);
  const got = await waitFor('the allowed recipient at the sink', () => atSink('smtp-reject')[0], 20_000);
  assert.deepEqual(got.rcptArgs.map((a) => a.replace(/^.*<|>.*$/g, '')), ['fine@sink.test']);
  // A trusted client relaying on the mx listener is checked too; an untrusted one sending to a local domain is not.
  const trusted = await RawSmtp.open(pl.port('mx'));
  await trusted.c.ehlo();
  await trusted.c.cmd('MAIL FROM:<app@shop.test>');
  assert.equal((await trusted.c.cmd('RCPT TO:<blocked@sink.test>')).code, 550);
  await trusted.c.quit();
  const inbound = await RawSmtp.open(pl.port('mx'), { localAddress: '127.0.0.2' });
  await inbound.c.ehlo();
  await inbound.c.cmd('MAIL FROM:<someone@elsewhere.test>');
  assert.equal((await inbound.c.cmd('RCPT TO:<x@local.test>')).code, 250, 'inbound mail for our own domain');
  await inbound.c.quit();
  const rejected = await waitFor('the rejection events', async () => {
    const evs = (await events('message.rejected')).filter((e) => e.check === 'suppression');
    return evs.length >= 3 ? evs : undefined;
  }, 10_000, 200);
  assert.ok(rejected.some((e) => e.recipient === 'blocked@sink.test' && e.reason === 'rcpt' && e.mailFrom === USER));
});

test('SMTP drop mode (SIGHUP): the recipient is accepted and dropped with recipient.dropped, never delivered', { skip }, async () => {
  pl.configOverride = { suppression: { softBounceLimit: 2, mode: 'drop' } };
  await pl.writeConfig();
  pl.signal('SIGHUP');
  await waitFor('the reload', () => pl.logs().find((l) => l.msg === 'configuration reloaded' && JSON.stringify(l.applied).includes('suppression.mode')), 10_000);
  try {
    const only = await submit(['blocked@sink.test'], 'drop-only');
    assert.equal(only.rcpts[0]!.code, 250);
    assert.equal(only.final?.code, 250, only.final?.text);
    const qid = only.queueId!;
    const mixed = await submit(['blocked@sink.test', 'kept@sink.test'], 'drop-mixed');
    assert.deepEqual(mixed.rcpts.map((x) => x.code), [250, 250]);
    const m = await waitFor('the mixed message at the sink', () => atSink('drop-mixed')[0], 20_000);
    assert.deepEqual(m.rcptArgs.map((a) => a.replace(/^.*<|>.*$/g, '')), ['kept@sink.test']);
    const dropped = await waitFor('the dropped events', async () => {
      const evs = (await events('recipient.dropped')).filter((e) => e.recipient === 'blocked@sink.test');
      return evs.length >= 2 ? evs : undefined;
    }, 10_000, 200);
    const mine = dropped.find((e) => e.queueId === qid)!;
    assert.equal(mine.reason, 'manual');
    assert.equal(mine.match, 'blocked@sink.test');
    assert.equal(mine.scope, '*');
    assert.equal(mine.mailFrom, USER);
    assert.equal(atSink('drop-only').length, 0, 'the dropped message was never delivered');
    assert.equal((await events('message.received')).filter((e) => e.queueId === qid).length, 0, 'nor queued');
    const st = await call(`/api/v1/messages/${qid}`);
    assert.equal(st.status, 200, JSON.stringify(st.body));
    assert.deepEqual(st.body.recipients.map((x: { address: string; status: string }) => [x.address, x.status]), [['blocked@sink.test', 'suppressed']]);
  } finally {
    pl.configOverride = { suppression: { softBounceLimit: 2 } };
    await pl.writeConfig();
    pl.signal('SIGHUP');
    await waitFor('the reload back', () => pl.logs().filter((l) => l.msg === 'configuration reloaded').length >= 2, 10_000);
  }
  assert.equal((await submit(['blocked@sink.test'], 'reject-again')).rcpts[0]!.code, 550);
});

test('API: a suppressed recipient gets status "suppressed" and is not queued; when every one is, nothing is', { skip }, async () => {
  const r = await call('/api/v1/messages', { method: 'POST', json: { from: 'news@app.test', to: ['blocked@sink.test', 'api-ok@sink.test'], subject: 'api-supp', text: 'hi' } });
  assert.equal(r.status, 202, JSON.stringify(r.body));
  assert.deepEqual(r.body.recipients[0], { address: 'blocked@sink.test', status: 'suppressed', reason: 'manual' });
  assert.equal(r.body.recipients[1].status, 'queued');
  const got = await waitFor('the queued recipient at the sink', () => atSink('api-supp')[0], 20_000);
  assert.deepEqual(got.rcptArgs.map((a) => a.replace(/^.*<|>.*$/g, '')), ['api-ok@sink.test']);
  const before = (await events('message.received')).length;
  const all = await call('/api/v1/messages', { method: 'POST', json: { from: 'news@app.test', to: ['blocked@sink.test'], cc: ['who@blockdom.test'], subject: 'api-all', text: 'hi' } });
  assert.equal(all.status, 202, JSON.stringify(all.body));
  assert.deepEqual(all.body.recipients.map((x: { status: string; queueId?: string }) => [x.status, x.queueId]), [['suppressed', undefined], ['suppressed', undefined]]);
  const raw = await call('/api/v1/messages/raw', { method: 'POST', json: { mailFrom: 'news@app.test', rcptTo: ['Blocked@sink.test'], raw: Buffer.from('Subject: raw\r\n\r\nx\r\n').toString('base64') } });
  assert.equal(raw.status, 202);
  assert.equal(raw.body.recipients[0].status, 'suppressed');
  await new Promise((res) => setTimeout(res, 300));
  assert.equal((await events('message.received')).length, before, 'nothing was queued');
  assert.equal(atSink('api-all').length, 0);
});

test('a hard bounce from the receiver (550 5.1.1) suppresses the recipient for that sender domain: the next RCPT is refused', { skip }, async () => {
  const first = await submit(['gone@bounce.test'], 'hard-1');
  assert.equal(first.final?.code, 250);
  const entry = await waitFor('the hard-bounce entry', async () => (await listed('--scope', 'shop.test')).find((e) => e.address === 'gone@bounce.test'), 20_000, 200);
  assert.equal(entry.reason, 'hard-bounce');
  assert.match(entry.description ?? '', /550 5\.1\.1/);
  assert.match(entry.source, /^\d+$/, 'the id of the bounce event');
  const bounce = (await events('recipient.bounced')).find((e) => e.id === Number(entry.source));
  assert.equal(bounce?.recipient, 'gone@bounce.test');
  const suppressedEv = (await events('recipient.suppressed')).find((e) => e.recipient === 'gone@bounce.test');
  assert.equal(suppressedEv?.scope, 'shop.test');
  assert.equal(suppressedEv?.reason, 'hard-bounce');
  const again = await submit(['gone@bounce.test'], 'hard-2');
  assert.equal(again.rcpts[0]!.text, '550 5.7.1 <gone@bounce.test>: recipient is on the suppression list (hard-bounce)');
  // Another sender domain is not bound by shop.test's entry.
  const api = await call('/api/v1/messages', { method: 'POST', json: { from: 'news@app.test', to: ['gone@bounce.test'], subject: 'hard-api', text: 'x' } });
  assert.equal(api.body.recipients[0].status, 'queued');
});

test('expiries in a row make a soft-bounce entry (softBounceLimit 2); a later successful delivery clears it', { skip }, async () => {
  // A message held before the address is suppressed: released later, it is the successful delivery.
  // Held over the control socket at once (a CLI process could start after its lifetime ran out).
  const held = await submit(['later@soft.test'], 'soft-held');
  assert.equal(held.final?.code, 250);
  const h = await controlRequest(join(pl.dir, 'var', 'control.sock'), { op: 'hold', id: held.queueId! }, 5000);
  assert.equal(h.ok, true, JSON.stringify(h));
  for (const n of [1, 2]) assert.equal((await submit(['later@soft.test'], `soft-${n}`)).final?.code, 250);
  const entry = await waitFor('the soft-bounce entry', async () => (await listed('--scope', 'shop.test', '--reason', 'soft-bounce')).find((e) => e.address === 'later@soft.test'), 30_000, 200);
  assert.match(entry.source, /^\d+$/);
  assert.equal((await events('recipient.expired')).filter((e) => e.recipient === 'later@soft.test').length, 2);
  assert.equal((await submit(['later@soft.test'], 'soft-3')).rcpts[0]!.text, '550 5.7.1 <later@soft.test>: recipient is on the suppression list (soft-bounce)');
  softAccept = true;
  await ok('queue', 'release', held.queueId!);
  await waitFor('the held message at the next hop', () => peer.messages().find((m) => m.data.toString().includes('Subject: soft-held')), 20_000);
  await waitFor('the entry cleared by the delivery', async () => !(await listed('--scope', 'shop.test')).some((e) => e.address === 'later@soft.test'), 20_000, 200);
  const removed = (await events('suppression.removed')).find((e) => e.recipient === 'later@soft.test')!;
  assert.equal(removed.reason, 'soft-bounce');
  const delivered = (await events('recipient.delivered')).find((e) => e.queueId === held.queueId);
  assert.equal(removed.source, String(delivered?.id), 'cleared by that delivery');
  assert.equal((await submit(['later@soft.test'], 'soft-4')).rcpts[0]!.code, 250, 'mail to it is sent again');
});

test('CLI: add, list, export (csv, json), remove, import round trip while the server runs', { skip }, async () => {
  assert.match(await ok('suppression', 'add', 'Fbl@Example.NET', '--scope', 'Shop.Test', '--reason', 'complaint', '--description', 'feedback loop report', '--for', '30d'), /fbl@example\.net: suppressed for shop\.test \(complaint\) until /);
  const text = await ok('suppression', 'list', '--scope', 'shop.test', '--reason', 'complaint');
  assert.match(text, /^-Address-/);
  assert.match(text, /fbl@example\.net\s+shop\.test\s+complaint\s+\S+Z\s+\S+Z\s+operator\s+feedback loop report/);
  const csv = await ok('suppression', 'export', '--domain', 'example.net');
  assert.equal(csv.split('\r\n')[0], 'address,scope,reason,description,source,createdAt,expiresAt');
  assert.match(csv.split('\r\n')[1]!, /^fbl@example\.net,shop\.test,complaint,feedback loop report,operator,\S+Z,\S+Z$/);
  const json = JSON.parse(await ok('suppression', 'export', '--format', 'json', '--domain', 'example.net')) as Suppression[];
  assert.deepEqual(json.map((e) => [e.address, e.scope, e.reason]), [['fbl@example.net', 'shop.test', 'complaint']]);
  assert.match(await ok('suppression', 'remove', 'FBL@example.net', '--scope', 'shop.test'), /fbl@example\.net: removed \(was complaint, scope shop\.test\)/);
  const again = await cli('suppression', 'remove', 'fbl@example.net', '--scope', 'shop.test');
  assert.equal(again.code, 1);
  assert.match(again.stderr, /not on the suppression list/);
  // Import the exported CSV back, plus a whole domain and an IDN.
  const file = join(pl.dir, 'import.csv');
  writeFileSync(file, csv + '*@gone.example,*,hard-bounce,,,,\r\n"User@Bücher.Example",shop.test,manual,"says ""stop""",,,\r\n');
  assert.match(await ok('suppression', 'import', file), /imported 3 entries/);
  const after = await listed('--address', '');
  const keys = after.map((e) => `${e.scope} ${e.address} ${e.reason}`);
  for (const k of ['shop.test fbl@example.net complaint', '* *@gone.example hard-bounce', 'shop.test user@xn--bcher-kva.example manual']) assert.ok(keys.includes(k), `${k} in ${keys.join('; ')}`);
  assert.equal(after.find((e) => e.address === 'user@xn--bcher-kva.example')?.description, 'says "stop"');
  assert.equal(after.find((e) => e.address === 'fbl@example.net')?.source, 'import');
  assert.equal((await submit(['anyone@gone.example'], 'imported')).rcpts[0]!.code, 550, 'the running server enforces an import at once');
  // A bad file is refused as a whole, naming the line.
  const bad = join(pl.dir, 'bad.csv');
  writeFileSync(bad, 'address,scope\nok@fine.example,*\nnot-an-address,*\n');
  const r = await cli('suppression', 'import', bad);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /item 1: not an address/);
  assert.equal((await listed('--domain', 'fine.example')).length, 0, 'nothing of it was written');
  const jsonFile = join(pl.dir, 'import.json');
  writeFileSync(jsonFile, JSON.stringify([{ address: 'j@json.example', reason: 'unsubscribe' }]));
  assert.match(await ok('suppression', 'import', jsonFile), /imported 1 entry/);
  assert.equal((await listed('--domain', 'json.example'))[0]?.reason, 'unsubscribe');
});

test('API: /api/v1/suppressions adds a batch, pages by cursor, filters, removes; bad input is a 400 naming the field', { skip }, async () => {
  const batch = Array.from({ length: 25 }, (_, i) => ({ address: `page-${String(i).padStart(2, '0')}@paging.test`, ...(i % 5 === 0 ? { scope: 'app.test', reason: 'unsubscribe' } : {}) }));
  const added = await call('/api/v1/suppressions', { method: 'POST', json: batch });
  assert.equal(added.status, 201, JSON.stringify(added.body));
  assert.equal(added.body.items.length, 25);
  assert.equal(added.body.items[0].source, 'api');
  const one = await call('/api/v1/suppressions', { method: 'POST', json: { address: '*@whole.example', expiresAt: new Date(Date.now() + 3600_000).toISOString(), description: 'whole domain' } });
  assert.equal(one.status, 201);
  assert.equal(one.body.items[0].address, '*@whole.example');
  const seen: string[] = [];
  let after: string | undefined;
  for (let i = 0; i < 10; i++) {
    const p = await call(`/api/v1/suppressions?domain=paging.test&limit=10${after ? `&after=${encodeURIComponent(after)}` : ''}`, { token: readKey });
    assert.equal(p.status, 200, JSON.stringify(p.body));
    seen.push(...p.body.items.map((e: Suppression) => e.address));
    if (!p.body.next) break;
    after = p.body.next;
  }
  assert.equal(seen.length, 25);
  assert.equal(new Set(seen).size, 25);
  assert.deepEqual(seen, [...seen].sort());
  const scoped = await call('/api/v1/suppressions?scope=app.test&reason=unsubscribe', { token: readKey });
  assert.equal(scoped.body.items.length, 5);
  const prefix = await call('/api/v1/suppressions?address=PAGE-1', { token: readKey });
  assert.equal(prefix.body.items.length, 10);
  const del = await call(`/api/v1/suppressions/${encodeURIComponent('page-05@paging.test')}?scope=app.test`, { method: 'DELETE' });
  assert.equal(del.status, 200, JSON.stringify(del.body));
  assert.equal(del.body.removed.reason, 'unsubscribe');
  assert.equal((await call(`/api/v1/suppressions/${encodeURIComponent('page-05@paging.test')}?scope=app.test`, { method: 'DELETE' })).status, 404);
  assert.equal((await call('/api/v1/suppressions/*@whole.example', { method: 'DELETE' })).status, 200, 'a whole domain by its path');
  const removedEv = (await events('suppression.removed')).find((e) => e.recipient === 'page-05@paging.test');
  assert.equal(removedEv?.source, 'api');
  const bad = await call('/api/v1/suppressions', { method: 'POST', json: [{ address: 'ok@paging.test' }, { address: 'nope', reason: 'bogus' }] });
  assert.equal(bad.status, 400);
  assert.deepEqual(bad.body.issues.map((i: { path: string }) => i.path).sort(), ['1.address', '1.reason']);
  assert.equal((await call('/api/v1/suppressions?limit=5000', { token: readKey })).status, 400);
  assert.equal((await call('/api/v1/suppressions?scope=not%20a%20domain', { token: readKey })).status, 400);
  assert.equal((await call('/api/v1/suppressions', { token: '' })).status, 401);
  assert.equal((await call('/api/v1/suppressions', { method: 'POST', json: { address: 'a@b.test' }, token: readKey })).status, 403);
  const doc = await call('/api/openapi.json', { token: '' });
  assert.ok(doc.body.paths['/api/v1/suppressions'].get && doc.body.paths['/api/v1/suppressions'].post);
  assert.ok(doc.body.paths['/api/v1/suppressions/{address}'].delete);
  // What the API added applies to SMTP at once.
  assert.equal((await submit(['page-01@paging.test'], 'api-added')).rcpts[0]!.code, 550);
});

test('CLI with the server stopped: the store is opened directly; the next start enforces what was added', { skip }, async () => {
  await pl.stop();
  assert.ok((await listed()).some((e) => e.address === 'blocked@sink.test'), 'offline list');
  await ok('suppression', 'add', 'offline@sink.test', '--reason', 'manual');
  await ok('suppression', 'remove', 'blocked@sink.test');
  await pl.start();
  const r = await submit(['offline@sink.test', 'blocked@sink.test'], 'after-restart');
  assert.equal(r.rcpts[0]!.code, 550);
  assert.equal(r.rcpts[1]!.code, 250);
});
