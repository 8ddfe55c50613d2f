/**
 * XCLIENT and XFORWARD end to end (issue 12; postfix.org XCLIENT_README, XFORWARD_README): a real
 * Postline in this process (the abuse rig: trusted networks narrowed to 127.0.0.1/32), swaks
 * `--xclient-*` and raw sockets. Offered only to policy.xclientNetworks / xforwardNetworks; 550,
 * 503 and 501 answers; a new 220 and EHLO again; every check (access list, connection limits and
 * rates, blocklists, relay authorization) re-run on the new address; LOGIN authenticates; the
 * Received field and the events name the new client; XFORWARD reaches the events only, for one
 * transaction.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { RawSmtp } from '../helpers/raw-smtp.js';
import { startRig, type Rig } from '../helpers/abuse-rig.js';
import type { StoredEvent } from '../../src/events/record.js';

const rigs: Rig[] = [];
after(async () => { for (const r of rigs) await r.close().catch(() => {}); });

const hasSwaks = spawnSync('sh', ['-c', 'command -v swaks']).status === 0;

const zones = {
  '2.0.0.127.bl.test': { a: ['127.0.0.2'] }, // the self-test entry
  '99.2.0.192.bl.test': { a: ['127.0.0.2'] }, // 192.0.2.99 is listed
};

const policy = {
  xclientNetworks: ['127.0.0.1/32'],
  xforwardNetworks: ['127.0.0.1/32'],
  accessList: [{ network: '192.0.2.66/32', action: 'reject' }],
  dnsbl: { zones: [{ zone: 'bl.test', weight: 1 }], threshold: 1, timeoutMs: 1500 },
};

let shared: Rig | undefined;
async function rig(): Promise<Rig> {
  if (!shared) {
    shared = await startRig(zones, { policy });
    rigs.push(shared);
  }
  return shared;
}

/** Runs swaks without blocking this process (the server runs in it), bounded to 60 s. */
function swaks(args: string[]): Promise<{ status: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn('swaks', ['--timeout', '20', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const t = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { out += d.toString(); });
    child.on('close', (status) => { clearTimeout(t); resolve({ status, out }); });
  });
}

async function received(r: Rig, e: StoredEvent): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of r.running.store.openBody(e.queueId!)) chunks.push(c as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  return /(?:^|\r\n)(Received:[^]*?)(?=\r\n\S)/.exec(text)![1]!; // ours: only our Authentication-Results is above it
}

async function receivedEvent(r: Rig, subject: string): Promise<StoredEvent> {
  for (let i = 0; i < 50; i++) {
    const evs = await r.events();
    for (const e of evs.filter((x) => x.type === 'message.received' && x.origin?.kind === 'smtp')) { // not a DSN quoting it
      const chunks: Buffer[] = [];
      try {
        for await (const c of r.running.store.openBody(e.queueId!)) chunks.push(c as Buffer);
      } catch {
        continue; // gone already (a relayed message to an unresolvable domain bounced)
      }
      if (Buffer.concat(chunks).toString('utf8').includes(`Subject: ${subject}`)) return e;
    }
  }
  throw new Error(`no message with subject ${subject}`);
}

test('offered only to policy.xclientNetworks; 550 5.7.0 for others, 503 in a transaction, 501 for bad syntax', async () => {
  const r = await rig();
  const { c } = await RawSmtp.open(r.mx);
  await c.ehlo();
  assert.ok(c.ehloLines.includes('XCLIENT NAME ADDR PORT PROTO HELO LOGIN DESTADDR DESTPORT'), c.ehloLines.join('|'));
  assert.ok(c.ehloLines.includes('XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE'));
  assert.equal((await c.cmd('XCLIENT')).text, '501 5.5.4 Syntax error in parameters: XCLIENT needs attribute=value ...');
  assert.match((await c.cmd('XCLIENT FOO=bar')).text, /^501 5\.5\.4 .*bad XCLIENT attribute name: FOO/);
  assert.match((await c.cmd('XCLIENT ADDR=2001:db8::1')).text, /^501 5\.5\.4 .*ADDR syntax/);
  assert.equal((await c.cmd('MAIL FROM:<a@example.org>')).code, 250);
  assert.equal((await c.cmd('XCLIENT ADDR=192.0.2.1')).text, '503 5.5.1 Error: MAIL transaction in progress');
  assert.equal((await c.cmd('XFORWARD ADDR=192.0.2.1')).text, '503 5.5.1 Error: MAIL transaction in progress');
  await c.cmd('RSET');
  assert.equal((await c.cmd('XCLIENT ADDR=192.0.2.1')).text, '220 mx.postline.test ESMTP Postline');
  assert.match((await c.cmd('MAIL FROM:<a@example.org>')).text, /^503 5\.5\.1 .*EHLO or HELO first/, 'the session starts over');
  await c.quit();

  const other = await RawSmtp.open(r.mx, { localAddress: '127.0.0.2' });
  await other.c.ehlo();
  assert.ok(!other.c.ehloLines.some((l) => l.startsWith('XCLIENT') || l.startsWith('XFORWARD')), 'not offered');
  assert.equal((await other.c.cmd('XCLIENT ADDR=192.0.2.1')).text, '550 5.7.0 Error: insufficient authorization');
  assert.equal((await other.c.cmd('XFORWARD ADDR=192.0.2.1')).text, '550 5.7.0 Error: insufficient authorization');
  await other.c.quit();
  const evs = (await r.events()).filter((e) => e.type === 'message.rejected' && e.check === 'xclient');
  assert.equal(evs.length, 1);
  assert.equal(evs[0]!.origin?.clientAddress, '127.0.0.2');
});

test('success: a new 220, EHLO again; relay authorization, Received field and events see the new client', async () => {
  const r = await rig();
  const { c } = await RawSmtp.open(r.mx);
  await c.ehlo('filter.example');
  assert.equal((await c.cmd('MAIL FROM:<a@example.org>')).code, 250);
  assert.equal((await c.cmd('RCPT TO:<x@remote.example>')).code, 250, '127.0.0.1 is trusted: may relay');
  await c.cmd('RSET');
  const g = await c.cmd('XCLIENT NAME=Client.Example ADDR=192.0.2.10 PORT=4444 HELO=helo.example PROTO=SMTP');
  assert.equal(g.text, '220 mx.postline.test ESMTP Postline');
  await c.ehlo('filter.example');
  assert.ok(!c.ehloLines.some((l) => l.startsWith('XCLIENT')), '192.0.2.10 may not use XCLIENT');
  assert.equal((await c.cmd('MAIL FROM:<a@example.org>')).code, 250);
  assert.equal((await c.cmd('RCPT TO:<x@remote.example>')).text, '554 5.7.1 Relay access denied', 'relay authorization re-run on 192.0.2.10');
  const sent = await c.send('a@example.org', ['known@local.test'], Buffer.from('Subject: xclient-raw\r\n\r\nhello\r\n'));
  assert.equal(sent.final?.code, 250);
  await c.quit();
  const e = await receivedEvent(r, 'xclient-raw');
  assert.equal(e.origin?.clientAddress, '192.0.2.10');
  assert.equal(e.origin?.clientName, 'helo.example', 'the XCLIENT HELO is kept over the EHLO that followed');
  assert.equal(e.origin?.clientHost, 'client.example');
  assert.equal(e.origin?.proxyAddress, '127.0.0.1');
  const rec = await received(r, e);
  assert.match(rec, /^Received: from helo\.example \(client\.example \[192\.0\.2\.10\]\)\r\n\tby mx\.postline\.test \(Postline\) with SMTP id /, rec);
});

test('the access list and the blocklist run on the new address', async () => {
  const r = await rig();
  const a = await RawSmtp.open(r.mx);
  await a.c.ehlo();
  assert.equal((await a.c.cmd('XCLIENT ADDR=192.0.2.66')).text, '554 5.7.1 Service unavailable; Client host [192.0.2.66] blocked by local policy');
  assert.match((await a.c.cmd('EHLO x.example')).text, /^503 5\.5\.1/, 'then only QUIT');
  assert.equal((await a.c.cmd('QUIT')).code, 221);
  a.c.destroy();
  const b = await RawSmtp.open(r.mx);
  await b.c.ehlo();
  assert.equal((await b.c.cmd('XCLIENT ADDR=192.0.2.99')).code, 220);
  await b.c.ehlo();
  await b.c.cmd('MAIL FROM:<a@example.org>');
  assert.equal((await b.c.cmd('RCPT TO:<known@local.test>')).text, '554 5.7.1 Service unavailable; Client host [192.0.2.99] blocked using bl.test');
  assert.equal((await b.c.cmd('RCPT TO:<abuse@local.test>')).code, 250);
  await b.c.quit();
  const rej = (await r.events()).filter((e) => e.type === 'message.rejected' && ['192.0.2.66', '192.0.2.99'].includes(e.origin?.clientAddress ?? ''));
  assert.deepEqual(rej.map((e) => `${e.reason}:${e.check}:${e.origin?.clientAddress}`).sort(), ['connect:access:192.0.2.66', 'rcpt:dnsbl:bl.test:192.0.2.99']);
});

test('connection limits and rates: counted under the new address, the XCLIENT client no longer counted', async () => {
  const r = await startRig({}, { policy: { xclientNetworks: ['127.0.0.1/32'] }, limits: { maxConnectionsPerIp: 2, perClient: { connectionsPerMinute: 3 } } });
  rigs.push(r);
  const open: RawSmtp[] = [];
  for (let i = 0; i < 2; i++) {
    const s = await RawSmtp.open(r.mx);
    await s.c.ehlo();
    assert.equal((await s.c.cmd('XCLIENT ADDR=192.0.2.50')).code, 220);
    open.push(s.c);
  }
  // 127.0.0.1 has no connection counted now: a third one is accepted, but 192.0.2.50 is full
  const third = await RawSmtp.open(r.mx);
  assert.equal(third.greeting.code, 220);
  await third.c.ehlo();
  assert.equal((await third.c.cmd('XCLIENT ADDR=192.0.2.50')).text, '421 4.7.0 Too many connections, try again later');
  await assert.rejects(third.c.read(2000), /closed/);
  // the per-client rate counts XCLIENT starts of 192.0.2.51 as connections (3 a minute)
  for (let i = 0; i < 3; i++) {
    const s = await RawSmtp.open(r.mx);
    await s.c.ehlo();
    assert.equal((await s.c.cmd('XCLIENT ADDR=192.0.2.51')).code, 220);
    await s.c.quit();
  }
  const fourth = await RawSmtp.open(r.mx);
  await fourth.c.ehlo();
  assert.equal((await fourth.c.cmd('XCLIENT ADDR=192.0.2.51')).text, '421 4.7.0 Error: too many connections from [192.0.2.51], try again later');
  fourth.c.destroy();
  for (const c of open) await c.quit();
});

test('LOGIN makes the session authenticated (submission), AUTH is no longer offered', async () => {
  const r = await rig();
  const { c } = await RawSmtp.open(r.sub);
  await c.ehlo();
  assert.equal((await c.cmd('MAIL FROM:<alice@local.test>')).code, 530);
  assert.equal((await c.cmd('XCLIENT LOGIN=alice ADDR=192.0.2.20 NAME=[UNAVAILABLE]')).code, 220);
  await c.ehlo();
  assert.ok(!c.ehloLines.some((l) => l.startsWith('AUTH')), c.ehloLines.join('|'));
  const sent = await c.send('alice@local.test', ['bob@remote.example', 'known@local.test'], Buffer.from('Subject: xclient-login\r\n\r\nhi\r\n'));
  assert.equal(sent.mail.code, 250);
  assert.equal(sent.rcpts[0]!.code, 250, 'authenticated: may relay');
  assert.equal(sent.final?.code, 250);
  await c.quit();
  const e = await receivedEvent(r, 'xclient-login');
  assert.equal(e.origin?.authUser, 'alice');
  assert.equal(e.origin?.clientAddress, '192.0.2.20');
  assert.match(await received(r, e), /^Received: from client\.test \(\[192\.0\.2\.20\]\)\r\n\tby mx\.postline\.test \(Postline\) with ESMTPA id /);
});

test('swaks --xclient-*: NAME, ADDR, PORT, HELO, PROTO in one and in two XCLIENT commands', { skip: !hasSwaks && 'swaks not installed' }, async () => {
  const r = await rig();
  const one = await swaks(['--server', `127.0.0.1:${r.mx}`, '--from', 'a@example.org', '--to', 'known@local.test', '--header', 'Subject: swaks-xclient-1',
    '--xclient-name', 'mail.client.example', '--xclient-addr', '192.0.2.77', '--xclient-port', '2525', '--xclient-helo', 'helo.client.example', '--xclient-proto', 'ESMTP']);
  assert.equal(one.status, 0, one.out);
  assert.match(one.out, /-> XCLIENT NAME=mail\.client\.example ADDR=192\.0\.2\.77 /);
  assert.match(one.out, /<- {2}220 mx\.postline\.test ESMTP Postline/);
  const e1 = await receivedEvent(r, 'swaks-xclient-1');
  assert.equal(e1.origin?.clientAddress, '192.0.2.77');
  assert.match(await received(r, e1), /^Received: from helo\.client\.example \(mail\.client\.example \[192\.0\.2\.77\]\)\r\n\tby mx\.postline\.test \(Postline\) with ESMTP id /);
  // two commands: HELO first, then NAME and ADDR (the attributes of the first one persist)
  const two = await swaks(['--server', `127.0.0.1:${r.mx}`, '--from', 'a@example.org', '--to', 'known@local.test', '--header', 'Subject: swaks-xclient-2',
    '--xclient-helo', 'first.example', '--xclient-delim', '--xclient-name', 'second.example', '--xclient-addr', 'IPV6:2001:db8::77']);
  assert.equal(two.status, 0, two.out);
  const e2 = await receivedEvent(r, 'swaks-xclient-2');
  assert.equal(e2.origin?.clientAddress, '2001:db8::77');
  assert.match(await received(r, e2), /^Received: from first\.example \(second\.example \[IPv6:2001:db8::77\]\)/);
  // from an address not allowed: swaks fails at XCLIENT (not offered)
  const denied = await swaks(['--server', `127.0.0.1:${r.mx}`, '--local-interface', '127.0.0.3', '--from', 'a@example.org', '--to', 'known@local.test', '--xclient-addr', '192.0.2.78']);
  assert.notEqual(denied.status, 0, denied.out);
});

test('XFORWARD: attributes reach the events for one transaction; Received and checks keep the real client', async () => {
  const r = await rig();
  const { c } = await RawSmtp.open(r.mx);
  await c.ehlo('filter.example');
  assert.equal((await c.cmd('XFORWARD NAME=up.example ADDR=IPV6:2001:DB8::9 PORT=1234 PROTO=ESMTP')).code, 250);
  assert.equal((await c.cmd('XFORWARD HELO=up-helo.example IDENT=ABC123 SOURCE=remote PORT=[UNAVAILABLE]')).code, 250);
  assert.match((await c.cmd('XFORWARD ADDR=a;b')).text, /^501 5\.5\.4 /);
  const first = await c.send('a@example.org', ['x@remote.example', 'known@local.test'], Buffer.from('Subject: xforward-1\r\n\r\n1\r\n'));
  assert.equal(first.rcpts[0]!.code, 250, 'relay decided on the real client (127.0.0.1, trusted)');
  assert.equal(first.final?.code, 250);
  const second = await c.send('a@example.org', ['known@local.test'], Buffer.from('Subject: xforward-2\r\n\r\n2\r\n'));
  assert.equal(second.final?.code, 250);
  assert.equal((await c.cmd('XFORWARD ADDR=192.0.2.8')).code, 250);
  assert.equal((await c.cmd('RSET')).code, 250);
  const third = await c.send('a@example.org', ['known@local.test'], Buffer.from('Subject: xforward-3\r\n\r\n3\r\n'));
  assert.equal(third.final?.code, 250);
  await c.quit();
  const e1 = await receivedEvent(r, 'xforward-1');
  assert.deepEqual(e1.origin?.forwarded, { name: 'up.example', addr: '2001:db8::9', proto: 'ESMTP', helo: 'up-helo.example', ident: 'ABC123', source: 'REMOTE' });
  assert.equal(e1.origin?.clientAddress, '127.0.0.1');
  assert.match(await received(r, e1), /^Received: from filter\.example \(\[127\.0\.0\.1\]\)/, 'Received names the real client, as Postfix does');
  assert.equal((await receivedEvent(r, 'xforward-2')).origin?.forwarded, undefined, 'gone after the transaction');
  assert.equal((await receivedEvent(r, 'xforward-3')).origin?.forwarded, undefined, 'gone after RSET');
  assert.match(r.log(), /"origClient":"up\.example\[2001:db8::9\]","origQueueId":"ABC123"/);
});
