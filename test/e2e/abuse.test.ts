/**
 * Abuse checks end to end (issue 12): a real Postline in this process, clients bound to 127.0.0.2
 * and up (trusted networks narrowed to 127.0.0.1/32), DNS lists served by a real DNS server on a
 * loopback port. Blocklists at RCPT and at connect (RFC 5782, RFC 5321 3.1), zone self-test,
 * lookup timeouts, rates per client and per network, exempt networks, the static access list,
 * pregreet, and the rejection events and metrics that say which check refused.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { RawSmtp } from '../helpers/raw-smtp.js';
import { startRig, type Rig } from '../helpers/abuse-rig.js';
import { parsePromText } from '../helpers/prom-text.js';

const rigs: Rig[] = [];
after(async () => { for (const r of rigs) await r.close().catch(() => {}); });

const listedZones = {
  '2.0.0.127.bl.test': { a: ['127.0.0.2'] },
  '3.0.0.127.bl.test': { a: ['127.0.0.2'] }, // client 127.0.0.3 is listed
  '5.0.0.127.bl.test': { a: ['127.0.0.2'] }, // 127.0.0.5 is listed but trusted in one rig
  '6.0.0.127.bl.test': { drop: true }, // the list never answers for 127.0.0.6
  '7.0.0.127.bl.test': { a: ['127.255.255.254'] }, // the list refuses the query
  // liar.test lists everything (127.0.0.1 too): its self-test fails, so it is disabled
  '2.0.0.127.liar.test': { a: ['127.0.0.2'] }, '1.0.0.127.liar.test': { a: ['127.0.0.2'] }, '4.0.0.127.liar.test': { a: ['127.0.0.2'] },
};

async function open(port: number, from: string): Promise<{ c: RawSmtp; greeting: { code: number; text: string } }> {
  return RawSmtp.open(port, { localAddress: from });
}

test('blocklist at RCPT: 554 5.7.1 per recipient naming the zone; postmaster@ and abuse@ accepted; timeouts, refused queries and a disabled zone do not list', async () => {
  const rig = await startRig(listedZones, {
    relay: { trustedNetworks: ['127.0.0.1/32', '127.0.0.5/32'], localDomains: [{ domain: 'local.test', recipients: ['known', 'postmaster', 'abuse'] }] },
    policy: { dnsbl: { zones: [{ zone: 'bl.test', weight: 1 }, { zone: 'liar.test', weight: 1 }], threshold: 1, timeoutMs: 1500 } },
  });
  rigs.push(rig);
  assert.match(rig.log(), /dnsbl zone failed its self-test: disabled/);
  assert.match(rig.log(), /"zone":"liar.test"/);

  const { c, greeting } = await open(rig.mx, '127.0.0.3');
  assert.equal(greeting.code, 220);
  await c.ehlo();
  assert.equal((await c.cmd('MAIL FROM:<spam@spam.example>')).code, 250);
  const r1 = await c.cmd('RCPT TO:<known@local.test>');
  assert.equal(r1.text, '554 5.7.1 Service unavailable; Client host [127.0.0.3] blocked using bl.test');
  assert.equal((await c.cmd('RCPT TO:<postmaster@local.test>')).code, 250);
  assert.equal((await c.cmd('RCPT TO:<abuse@local.test>')).code, 250);
  assert.equal((await c.cmd('RCPT TO:<Postmaster>')).code, 250);
  await c.quit();

  // authenticated sessions are not checked against the lists
  const a = await open(rig.mx, '127.0.0.3');
  await a.c.ehlo();
  assert.equal((await a.c.authPlain('alice', (await import('../helpers/abuse-rig.js')).PASSWORD)).code, 235);
  await a.c.cmd('MAIL FROM:<alice@local.test>');
  assert.equal((await a.c.cmd('RCPT TO:<known@local.test>')).code, 250);
  await a.c.quit();

  for (const [from, why] of [['127.0.0.4', 'listed only by the disabled zone'], ['127.0.0.5', 'trusted'], ['127.0.0.7', 'the list refused the query'], ['127.0.0.8', 'not listed']] as const) {
    const s = await open(rig.mx, from);
    await s.c.ehlo();
    await s.c.cmd('MAIL FROM:<x@example.org>');
    assert.equal((await s.c.cmd('RCPT TO:<known@local.test>')).code, 250, `${from}: ${why}`);
    await s.c.quit();
  }
  // a list that never answers: not listed, and the RCPT is answered within the wait bound
  const slow = await open(rig.mx, '127.0.0.6');
  await slow.c.ehlo();
  await slow.c.cmd('MAIL FROM:<x@example.org>');
  const t0 = Date.now();
  assert.equal((await slow.c.cmd('RCPT TO:<known@local.test>')).code, 250);
  assert.ok(Date.now() - t0 < 2000, `answered in ${Date.now() - t0} ms`);
  await slow.c.quit();

  const evs = (await rig.events()).filter((e) => e.type === 'message.rejected');
  const bl = evs.filter((e) => e.check === 'dnsbl:bl.test');
  assert.equal(bl.length, 1);
  assert.equal(bl[0]!.reason, 'rcpt');
  assert.equal(bl[0]!.recipient, 'known@local.test');
  assert.match(bl[0]!.reply!, /^554 5\.7\.1 .*blocked using bl\.test/);
  const m = parsePromText(await rig.running.metrics!.render());
  assert.equal(m.value('postline_policy_refusals_total', { check: 'dnsbl:bl.test', stage: 'rcpt' }), 1);
  assert.equal(m.value('postline_dnsbl_zone_enabled', { zone: 'bl.test' }), 1);
  assert.equal(m.value('postline_dnsbl_zone_enabled', { zone: 'liar.test' }), 0);
  console.log('FIGURE blocklist refusals by zone:', m.samples.filter((x) => x.name === 'postline_policy_refusals_total').map((x) => `${x.labels.check}/${x.labels.stage}=${x.value}`).join(', '));
});

test('blocklist at connect: 554 instead of 220, then only QUIT (RFC 5321 3.1); the access list rejects and permits before everything', async () => {
  const rig = await startRig(listedZones, {
    policy: {
      dnsbl: { zones: [{ zone: 'bl.test', weight: 1 }], action: 'connect' },
      accessList: [{ network: '127.0.0.9/32', action: 'reject' }, { network: '127.0.0.3/32', action: 'permit' }, { network: '127.0.0.0/24', action: 'permit' }],
    },
  });
  rigs.push(rig);
  // 127.0.0.3 is permitted by the access list before the list is asked: accepted
  const p = await open(rig.mx, '127.0.0.3');
  assert.equal(p.greeting.code, 220);
  await p.c.quit();
  await rig.close();
  rigs.pop();

  const rig2 = await startRig(listedZones, { policy: { dnsbl: { zones: [{ zone: 'bl.test', weight: 1 }], action: 'connect' }, accessList: [{ network: '127.0.0.9/32', action: 'reject' }] } });
  rigs.push(rig2);
  const { c, greeting } = await open(rig2.mx, '127.0.0.3');
  assert.equal(greeting.text, '554 5.7.1 Service unavailable; Client host [127.0.0.3] blocked using bl.test');
  assert.match((await c.cmd('EHLO client.test')).text, /^503 5\.5\.1/);
  assert.match((await c.cmd('MAIL FROM:<a@b.example>')).text, /^503 5\.5\.1/);
  assert.equal((await c.cmd('QUIT')).code, 221);
  c.destroy();
  const denied = await open(rig2.mx, '127.0.0.9');
  assert.match(denied.greeting.text, /^554 5\.7\.1 .*blocked by local policy/);
  assert.equal((await denied.c.cmd('QUIT')).code, 221);
  denied.c.destroy();
  const ok = await open(rig2.mx, '127.0.0.8');
  assert.equal(ok.greeting.code, 220);
  await ok.c.quit();
  // the submission listener (role submission) never consults the lists
  const sub = await open(rig2.sub, '127.0.0.3');
  assert.equal(sub.greeting.code, 220);
  await sub.c.quit();
  const evs = (await rig2.events()).filter((e) => e.type === 'message.rejected' && e.reason === 'connect');
  assert.deepEqual(evs.map((e) => e.check).sort(), ['access', 'dnsbl:bl.test']);
});

test('rates per client and per network: 421 4.7.0 at connect, 450 4.7.1 at MAIL, 452 4.7.1 at RCPT, never 5xx; exempt networks', async () => {
  const rig = await startRig({}, {
    limits: {
      perClient: { connectionsPerMinute: 3, messagesPerMinute: 2, recipientsPerMinute: 4, unknownRecipientsPerMinute: 2, perNetwork: { connectionsPerMinute: 8 } },
      exemptNetworks: ['127.0.0.9/32'],
    },
  });
  rigs.push(rig);
  const conns = [];
  for (let i = 0; i < 3; i++) {
    const s = await open(rig.mx, '127.0.0.2');
    assert.equal(s.greeting.code, 220);
    conns.push(s.c);
  }
  const fourth = await open(rig.mx, '127.0.0.2');
  assert.equal(fourth.greeting.text, '421 4.7.0 Error: too many connections from [127.0.0.2], try again later');
  fourth.c.destroy();
  // MAIL: the third message within a minute gets 450 4.7.1
  const c = conns[0]!;
  await c.ehlo();
  assert.equal((await c.cmd('MAIL FROM:<a@example.org>')).code, 250);
  assert.equal((await c.cmd('RSET')).code, 250);
  assert.equal((await c.cmd('MAIL FROM:<a@example.org>')).code, 250);
  await c.cmd('RSET');
  assert.equal((await c.cmd('MAIL FROM:<a@example.org>')).text, '450 4.7.1 Error: too many messages from [127.0.0.2], slow down');
  // RCPT (another address): unknown recipients (directory harvest) then recipients
  const d = await open(rig.mx, '127.0.0.3');
  await d.c.ehlo();
  await d.c.cmd('MAIL FROM:<b@example.org>');
  assert.equal((await d.c.cmd('RCPT TO:<nobody1@local.test>')).code, 550);
  assert.equal((await d.c.cmd('RCPT TO:<nobody2@local.test>')).code, 550);
  assert.equal((await d.c.cmd('RCPT TO:<known@local.test>')).text, '452 4.7.1 Error: too many unknown recipients from [127.0.0.3], slow down');
  await d.c.quit();
  const e = await open(rig.mx, '127.0.0.4');
  await e.c.ehlo();
  await e.c.cmd('MAIL FROM:<b@example.org>');
  for (let i = 0; i < 4; i++) assert.equal((await e.c.cmd('RCPT TO:<known@local.test>')).code, 250);
  assert.equal((await e.c.cmd('RCPT TO:<known@local.test>')).text, '452 4.7.1 Error: too many recipients from [127.0.0.4], slow down');
  await e.c.quit();
  // per network (/24): 3 + 1 + 1 + 1 = 6 so far (the refused one counts); two more fit, then 421
  const n1 = await open(rig.mx, '127.0.0.5'); const n2 = await open(rig.mx, '127.0.0.6');
  assert.equal(n1.greeting.code, 220); assert.equal(n2.greeting.code, 220);
  const n3 = await open(rig.mx, '127.0.0.7');
  assert.match(n3.greeting.text, /^421 4\.7\.0/);
  // exempt: no limit at all
  for (let i = 0; i < 5; i++) {
    const x = await open(rig.mx, '127.0.0.9');
    assert.equal(x.greeting.code, 220);
    await x.c.quit();
  }
  for (const s of [...conns, n1.c, n2.c, n3.c]) s.destroy();
  const evs = (await rig.events()).filter((ev) => ev.type === 'message.rejected');
  const checks = evs.map((ev) => `${ev.reason}:${ev.check}`);
  for (const want of ['connect:rate:connectionsPerMinute', 'mail:rate:messagesPerMinute', 'rcpt:rate:unknownRecipientsPerMinute', 'rcpt:rate:recipientsPerMinute', 'connect:rate:perNetwork.connectionsPerMinute']) {
    assert.ok(checks.includes(want), `${want} in ${checks.join(', ')}`);
  }
  assert.ok(evs.filter((ev) => ev.check?.startsWith('rate:')).every((ev) => ev.reply!.startsWith('4')), 'rates never answer 5xx');
});

test('pregreet: a client that talks before the final greeting line gets 554 and only QUIT; a patient one proceeds', async () => {
  const rig = await startRig({}, { timeouts: { greetPauseMs: 400 } });
  rigs.push(rig);
  const { connect } = await import('node:net');
  const sock = connect({ host: '127.0.0.1', port: rig.mx, localAddress: '127.0.0.2' });
  let got = '';
  sock.on('data', (d) => { got += d.toString('latin1'); });
  await new Promise<void>((r) => sock.once('connect', () => r()));
  sock.write('EHLO early.example\r\n'); // at once, before the banner is complete
  const deadline = Date.now() + 5000;
  while (!/\r\n554 /.test(got) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.match(got, /^220-mx\.postline\.test ESMTP Postline\r\n554 5\.5\.1 /);
  sock.write('MAIL FROM:<a@b.example>\r\nQUIT\r\n');
  while (!/221 /.test(got) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.match(got, /503 5\.5\.1[^\r]*\r\n221 /, 'the early EHLO is not answered; then only QUIT');
  sock.destroy();
  const t0 = Date.now();
  const ok = await open(rig.mx, '127.0.0.3');
  assert.equal(ok.greeting.code, 220);
  assert.ok(Date.now() - t0 >= 350, 'the greeting pause applies');
  assert.equal((await ok.c.ehlo()).code, 250);
  await ok.c.quit();
  const trusted = Date.now();
  const tr = await open(rig.mx, '127.0.0.1');
  assert.equal(tr.greeting.code, 220);
  assert.ok(Date.now() - trusted < 300, 'trusted clients get no pause');
  await tr.c.quit();
  const evs = (await rig.events()).filter((e) => e.type === 'message.rejected');
  assert.deepEqual(evs.map((e) => `${e.reason}:${e.check}`), ['connect:pregreet']);
});

test('error tarpit: after softErrorLimit errors each error reply waits errorSleepMs; trusted clients are not slowed', async () => {
  const rig = await startRig({}, { limits: { softErrorLimit: 2, errorSleepMs: 300 } });
  rigs.push(rig);
  const times = async (from: string): Promise<number[]> => {
    const { c } = await open(rig.mx, from);
    const out: number[] = [];
    for (let i = 0; i < 4; i++) {
      const t0 = Date.now();
      assert.equal((await c.cmd('BOGUS')).code, 500);
      out.push(Date.now() - t0);
    }
    await c.quit();
    return out;
  };
  const untrusted = await times('127.0.0.2');
  assert.ok(untrusted[0]! < 250 && untrusted[1]! < 250, `first errors at once: ${untrusted}`);
  assert.ok(untrusted[2]! >= 280 && untrusted[3]! >= 280, `then each waits: ${untrusted}`);
  const trusted = await times('127.0.0.1');
  assert.ok(trusted.every((ms) => ms < 250), `trusted: ${trusted}`);
});

test('SIGHUP-style reload: new rates, exempt networks and lists apply to new connections', async () => {
  const rig = await startRig(listedZones, {});
  rigs.push(rig);
  const first = await open(rig.mx, '127.0.0.3');
  await first.c.ehlo();
  await first.c.cmd('MAIL FROM:<a@example.org>');
  assert.equal((await first.c.cmd('RCPT TO:<known@local.test>')).code, 250, 'no lists configured yet');
  await first.c.quit();
  const { validateConfig } = await import('../../src/config/load.js');
  const fresh = validateConfig({
    ...JSON.parse(JSON.stringify(rig.running.config)),
    policy: { dnsbl: { zones: [{ zone: 'bl.test', weight: 1 }] } },
    limits: { ...rig.running.config.limits, perClient: { connectionsPerMinute: 2 } }, // the first connection counted too
  });
  const res = rig.running.reload(fresh);
  assert.ok(res.applied.includes('policy.dnsbl') && res.applied.includes('limits.perClient'), res.applied.join(','));
  const again = await open(rig.mx, '127.0.0.3');
  await again.c.ehlo();
  await again.c.cmd('MAIL FROM:<a@example.org>');
  assert.equal((await again.c.cmd('RCPT TO:<known@local.test>')).code, 554);
  const third = await open(rig.mx, '127.0.0.3');
  assert.match(third.greeting.text, /^421 4\.7\.0/);
  third.c.destroy();
  await again.c.quit();
});

test('IPv6 client: nibble-name lookup in an ipv6 zone, self-tested with ::FFFF:7F00:2 / ::FFFF:7F00:1', async () => {
  const { reversedName } = await import('../../src/policy/ip.js');
  const rig = await startRig({
    '2.0.0.127.six.test': { a: ['127.0.0.2'] },
    [reversedName('::ffff:7f00:2', 'six.test')!]: { a: ['127.0.0.2'] },
    [reversedName('::1', 'six.test')!]: { a: ['127.0.0.2'] },
  }, {
    listeners: [
      { name: 'mx', address: '::1', port: 0, role: 'mx', tls: 'none' },
      { name: 'sub', address: '127.0.0.1', port: 0, role: 'submission', tls: 'none', allowPlaintextAuth: true },
    ],
    policy: { dnsbl: { zones: [{ zone: 'six.test', weight: 1, ipv6: true }] } },
  });
  rigs.push(rig);
  assert.equal(rig.running.config.policy.dnsbl.zones[0]!.ipv6, true);
  assert.doesNotMatch(rig.log(), /dnsbl zone failed its self-test/);
  const { c } = await RawSmtp.open(rig.mx, { host: '::1' });
  await c.ehlo();
  await c.cmd('MAIL FROM:<a@example.org>');
  assert.equal((await c.cmd('RCPT TO:<known@local.test>')).text, '554 5.7.1 Service unavailable; Client host [::1] blocked using six.test');
  await c.quit();
});
