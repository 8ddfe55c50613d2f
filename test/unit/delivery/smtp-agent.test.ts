/** SMTP delivery agent and client against a scripted SMTP peer on loopback (RFC 5321, 2920, 3207, 4954, 3461). */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { Readable, Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { generate } from 'selfsigned';
import { configSchema } from '../../../src/config/schema.js';
import { silentLogger } from '../../../src/core/log.js';
import { SmtpDeliveryAgent } from '../../../src/delivery/smtp-agent.js';
import type { DeliveryRequest, RecipientResult } from '../../../src/delivery/types.js';
import type { SmtpNextHop as NextHop } from '../../../src/routing/types.js';
import type { Resolver } from '../../../src/dns/types.js';
import { startSmtpPeer, DEFAULT_EXTENSIONS, type PeerScript, type SmtpPeer } from '../../helpers/smtp-peer.js';
import { startDnsServer, type DnsServerHandle } from '../../helpers/dns-server.js';
import { createResolver } from '../../../src/dns/resolver.js';

let tlsPair: { key: string; cert: string };
let dns: DnsServerHandle;
let resolver: Resolver;

before(async () => {
  const pems = await generate([{ name: 'commonName', value: 'peer.test' }], { keySize: 2048 });
  tlsPair = { key: pems.private, cert: pems.cert };
  dns = await startDnsServer({
    'two.test': { mx: [{ exchange: 'mx1.two.test', priority: 10 }, { exchange: 'mx2.two.test', priority: 20 }] },
    'mx1.two.test': { a: ['127.0.0.1'] },
    'mx2.two.test': { a: ['127.0.0.1'] },
    'self.test': { mx: [{ exchange: 'me.self.test', priority: 10 }] },
    'me.self.test': { a: ['127.0.0.1'] },
    'nullmx.test': { mx: [{ exchange: '', priority: 0 }] },
    'broken.test': { servfail: true },
    'down.test': { mx: [{ exchange: 'dead.down.test', priority: 10 }, { exchange: 'live.down.test', priority: 20 }] },
    'dead.down.test': { a: ['127.0.0.2'] }, // the peers listen on 127.0.0.1 only: connection refused
    'live.down.test': { a: ['127.0.0.1'] },
  });
  resolver = createResolver({ servers: [dns.server], timeoutMs: 1000, tries: 1 });
});
after(async () => { await dns.close(); });

type DeliveryOver = Record<string, unknown>;

/** A pino logger at `level` that keeps every JSON line it writes. */
function captureLogger(level = 'info'): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const dest = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) if (l.trim()) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { logger: pino({ level, base: undefined }, dest), lines };
}

function makeAgent(delivery: DeliveryOver = {}, ownPort = 1, logger: Logger = silentLogger()): SmtpDeliveryAgent {
  const config = configSchema.parse({
    hostname: 'client.test',
    listeners: [{ name: 'mx', port: ownPort }],
    delivery: { tls: 'none', connectTimeoutMs: 2000, commandTimeoutMs: 2000, dataDoneTimeoutMs: 2000, transactionTimeoutMs: 10000, idleTimeoutMs: 2000, ...delivery },
  });
  return new SmtpDeliveryAgent({ config, resolver, logger, ownListeners: [{ address: '127.0.0.1', port: ownPort }] });
}

const BODY = 'From: a@src.test\r\nTo: b@dst.test\r\nSubject: hi\r\n\r\nline one\r\n.leading dot\r\n';

function request(nextHop: NextHop, rcpts: string[], extra: Partial<DeliveryRequest> & { body?: string } = {}): DeliveryRequest {
  const body = Buffer.from(extra.body ?? BODY, 'utf8');
  return {
    queueId: 'Q1', mailFrom: 'a@src.test', bodyType: '7BIT', smtputf8: false, size: body.length,
    recipients: rcpts.map((address, idx) => ({ idx, address })),
    nextHop, openBody: () => Readable.from([body]), ...extra,
  };
}

const hostHop = (peer: SmtpPeer, tls: NextHop['tls'] = 'none', auth?: { username: string; password: string }): NextHop =>
  ({ kind: 'host', host: '127.0.0.1', port: peer.port, tls, ...(auth ? { auth } : {}) });

async function withPeer(script: PeerScript, fn: (peer: SmtpPeer) => Promise<void>): Promise<void> {
  const peer = await startSmtpPeer(script);
  try { await fn(peer); } finally { await peer.close(); }
}

async function deliverOnce(peer: SmtpPeer, rcpts: string[], delivery: DeliveryOver = {}, extra: Partial<DeliveryRequest> & { body?: string } = {}, hop?: NextHop): Promise<RecipientResult[]> {
  const agent = makeAgent(delivery);
  try {
    const res = await agent.deliver(request(hop ?? hostHop(peer), rcpts, extra));
    return res.sort((a, b) => a.idx - b.idx);
  } finally {
    await agent.close();
  }
}

test('delivers, dot-stuffs, passes SIZE and DSN parameters, and reports remoteMta', async () => {
  await withPeer({}, async (peer) => {
    const res = await deliverOnce(peer, ['b@dst.test'], {}, {
      recipients: [{ idx: 0, address: 'b@dst.test', notify: ['SUCCESS', 'FAILURE'], orcpt: { addrType: 'rfc822', address: 'b+x=y@dst.test' } }],
      envid: 'env 1', ret: 'HDRS',
    });
    assert.equal(res[0]!.outcome, 'delivered');
    assert.equal(res[0]!.dsnStatus, '2.0.0');
    assert.equal(res[0]!.remoteMta, `127.0.0.1[127.0.0.1]:${peer.port}`);
    assert.equal(res[0]!.relayed, undefined);
    assert.equal(res[0]!.dsnPassedOn, true, 'the hop offers DSN and got NOTIFY: it reports, not us');
    const s = peer.sessions[0]!;
    assert.equal(peer.messages()[0]!.data.toString(), BODY);
    assert.ok(s.commands.includes(`MAIL FROM:<a@src.test> SIZE=${Buffer.byteLength(BODY)} RET=HDRS ENVID=env+201`), s.commands.join('|'));
    assert.ok(s.commands.includes('RCPT TO:<b@dst.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b+2Bx+3Dy@dst.test'));
    assert.ok(s.chunks.some((c) => c.includes('..leading dot')), 'dot-stuffed on the wire');
  });
});

test('pipelining: MAIL and all RCPTs go in one write; without PIPELINING one by one', async () => {
  await withPeer({}, async (peer) => {
    await deliverOnce(peer, ['x@dst.test', 'y@dst.test']);
    assert.ok(peer.sessions[0]!.chunks.some((c) => c.includes('MAIL FROM') && c.includes('RCPT TO:<x@') && c.includes('RCPT TO:<y@')));
  });
  await withPeer({ extensions: ['8BITMIME'] }, async (peer) => {
    await deliverOnce(peer, ['x@dst.test', 'y@dst.test']);
    assert.ok(!peer.sessions[0]!.chunks.some((c) => c.includes('MAIL FROM') && c.includes('RCPT TO')));
    assert.equal(peer.messages().length, 1);
  });
});

test('per-recipient replies: 550 bounces one, the other is delivered', async () => {
  await withPeer({ reply: (c) => (c.startsWith('RCPT TO:<bad@') ? '550 5.1.1 no such user' : undefined) }, async (peer) => {
    const res = await deliverOnce(peer, ['good@dst.test', 'bad@dst.test']);
    assert.equal(res[0]!.outcome, 'delivered');
    assert.deepEqual([res[1]!.outcome, res[1]!.code, res[1]!.dsnStatus, res[1]!.remote], ['bounced', 550, '5.1.1', true]);
    assert.equal(res[1]!.diagnostic, '550 5.1.1 no such user');
    assert.equal(res[1]!.bounceClass, 'InvalidRecipient');
    assert.equal(res[0]!.bounceClass, undefined);
    assert.deepEqual(peer.messages()[0]!.rcpts, ['good@dst.test']);
  });
});

test('451 defers; the next attempt is delivered', async () => {
  let n = 0;
  await withPeer({ reply: (c) => (c.startsWith('RCPT') && n++ === 0 ? '451 4.3.0 try later' : undefined) }, async (peer) => {
    const first = await deliverOnce(peer, ['b@dst.test']);
    assert.deepEqual([first[0]!.outcome, first[0]!.dsnStatus], ['deferred', '4.3.0']);
    const second = await deliverOnce(peer, ['b@dst.test']);
    assert.equal(second[0]!.outcome, 'delivered');
  });
});

test('452 4.5.3 too many recipients: the rest go in another transaction on the same connection', async () => {
  const script: PeerScript = { reply: (c, s) => (c.startsWith('RCPT') && s.rcpts.length >= 2 ? '452 4.5.3 Too many recipients' : undefined) };
  await withPeer(script, async (peer) => {
    const rcpts = ['r0@d.test', 'r1@d.test', 'r2@d.test', 'r3@d.test', 'r4@d.test'];
    const res = await deliverOnce(peer, rcpts);
    assert.ok(res.every((r) => r.outcome === 'delivered'), JSON.stringify(res));
    assert.equal(peer.sessions.length, 1);
    assert.deepEqual(peer.messages().map((m) => m.rcpts.length), [2, 2, 1]);
  });
});

test('recipientsPerTransaction splits recipients into several transactions', async () => {
  await withPeer({}, async (peer) => {
    const res = await deliverOnce(peer, ['a@d.test', 'b@d.test', 'c@d.test'], { recipientsPerTransaction: 2 });
    assert.equal(res.filter((r) => r.outcome === 'delivered').length, 3);
    assert.deepEqual(peer.messages().map((m) => m.rcpts.length), [2, 1]);
  });
});

test('no 8BITMIME: an 8-bit message is downgraded to quoted-printable', async () => {
  const body = 'Subject: t\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nGrüße aus Köln\r\n';
  await withPeer({ extensions: ['PIPELINING', 'SIZE 1000000'] }, async (peer) => {
    const res = await deliverOnce(peer, ['b@d.test'], {}, { body, bodyType: '8BITMIME' });
    assert.equal(res[0]!.outcome, 'delivered');
    const data = peer.messages()[0]!.data.toString('latin1');
    assert.ok(!/[\x80-\xff]/.test(data), 'no 8-bit bytes on the wire');
    assert.match(data, /Content-Transfer-Encoding: quoted-printable/);
    assert.match(data, /Gr=C3=BC=C3=9Fe aus K=C3=B6ln/);
    assert.ok(!peer.sessions[0]!.commands.some((c) => c.includes('BODY=')));
  });
});

test('with 8BITMIME the body goes unchanged with BODY=8BITMIME', async () => {
  const body = 'Subject: t\r\n\r\nGrüße\r\n';
  await withPeer({}, async (peer) => {
    await deliverOnce(peer, ['b@d.test'], {}, { body, bodyType: '8BITMIME' });
    assert.equal(peer.messages()[0]!.data.toString('utf8'), body);
    assert.ok(peer.sessions[0]!.commands.some((c) => c.includes('BODY=8BITMIME')));
  });
});

test('8-bit headers to a server without 8BITMIME bounce 5.6.3', async () => {
  await withPeer({ extensions: ['PIPELINING'] }, async (peer) => {
    const res = await deliverOnce(peer, ['b@d.test'], {}, { body: 'Subject: Grüße\r\n\r\nx\r\n', bodyType: '8BITMIME' });
    assert.deepEqual([res[0]!.outcome, res[0]!.dsnStatus], ['bounced', '5.6.3']);
    assert.equal(peer.messages().length, 0);
  });
});

test('SMTPUTF8 needed but not offered bounces 5.6.7 without MAIL', async () => {
  await withPeer({ extensions: ['PIPELINING', '8BITMIME'] }, async (peer) => {
    const res = await deliverOnce(peer, ['b@d.test'], {}, { smtputf8: true });
    assert.deepEqual([res[0]!.outcome, res[0]!.dsnStatus], ['bounced', '5.6.7']);
    assert.ok(!peer.sessions[0]!.commands.some((c) => c.startsWith('MAIL')));
  });
  await withPeer({}, async (peer) => {
    const res = await deliverOnce(peer, ['b@d.test'], {}, { smtputf8: true });
    assert.equal(res[0]!.outcome, 'delivered');
    assert.ok(peer.sessions[0]!.commands.some((c) => c.startsWith('MAIL') && c.includes('SMTPUTF8')));
  });
});

const NO_UTF8 = ['PIPELINING', '8BITMIME', 'DSN', 'ENHANCEDSTATUSCODES'];

test('issue 15 item 2: ASCII mail flagged SMTPUTF8 goes to a hop without SMTPUTF8, without the parameter', async () => {
  await withPeer({ extensions: NO_UTF8 }, async (peer) => {
    const res = await deliverOnce(peer, ['b@d.test'], {}, { smtputf8: true, utf8Headers: false });
    assert.equal(res[0]!.outcome, 'delivered', res[0]!.diagnostic);
    const mail = peer.sessions[0]!.commands.find((c) => c.startsWith('MAIL'));
    assert.ok(mail && !mail.includes('SMTPUTF8'), mail);
  });
});

test('issue 15 item 2: SMTPUTF8 is needed for a UTF-8 header, sender or recipient of this delivery: 5.6.7 when no host offers it', async () => {
  for (const extra of [
    { utf8Headers: true },
    { mailFrom: 'jörg@src.test', utf8Headers: false },
    { recipients: [{ idx: 0, address: 'b@d.test' }, { idx: 1, address: 'jörg@d.test' }], utf8Headers: false },
  ] as Partial<DeliveryRequest>[]) {
    await withPeer({ extensions: NO_UTF8 }, async (peer) => {
      const res = await deliverOnce(peer, ['b@d.test'], {}, { smtputf8: true, ...extra });
      assert.ok(res.length > 0);
      for (const r of res) assert.deepEqual([r.outcome, r.code, r.dsnStatus, r.remote], ['bounced', 553, '5.6.7', false], JSON.stringify(extra));
      assert.match(res[0]!.diagnostic, /requires SMTPUTF8, but no server was found that supports SMTPUTF8/);
      assert.ok(!peer.sessions[0]!.commands.some((c) => c.startsWith('MAIL')));
    });
  }
});

test('issue 15 item 2: SMTPUTF8 needed and the first MX lacks it: the next MX is tried', async () => {
  const noUtf8Ehlo = ['250-peer.test hello', ...NO_UTF8.slice(0, -1).map((e) => `250-${e}`), `250 ${NO_UTF8[NO_UTF8.length - 1]}`].join('\n');
  await withPeer({ reply: (c, s) => (s.id === 1 && c.startsWith('EHLO') ? noUtf8Ehlo : undefined) }, async (peer) => {
    const res = await deliverOnce(peer, ['jörg@two.test'], { mxPort: peer.port }, { smtputf8: true, utf8Headers: false }, { kind: 'mx', domain: 'two.test', port: peer.port, tls: 'none' });
    assert.equal(res[0]!.outcome, 'delivered', res[0]!.diagnostic);
    assert.equal(res[0]!.remoteMta, `mx2.two.test[127.0.0.1]:${peer.port}`);
    assert.equal(peer.sessions.length, 2);
    assert.ok(peer.sessions[1]!.commands.some((c) => c.startsWith('MAIL') && c.endsWith(' SMTPUTF8')));
  });
  await withPeer({ extensions: NO_UTF8 }, async (peer) => {
    const res = await deliverOnce(peer, ['jörg@two.test'], { mxPort: peer.port }, { smtputf8: true, utf8Headers: false }, { kind: 'mx', domain: 'two.test', port: peer.port, tls: 'none' });
    assert.deepEqual([res[0]!.outcome, res[0]!.dsnStatus], ['bounced', '5.6.7']);
    assert.match(res[0]!.diagnostic, /The last attempted server was mx2\.two\.test/);
    assert.equal(peer.sessions.length, 2, 'both MX hosts were tried');
  });
});

test('issue 15 item 2: a UTF-8 ORCPT is sent as utf-8-addr-xtext (RFC 6533), an ASCII one as rfc822', async () => {
  const recipients = [
    { idx: 0, address: 'b@d.test', orcpt: { addrType: 'utf-8', address: 'jörg+x=y\\z@d.test' } },
    { idx: 1, address: 'c@d.test', orcpt: { addrType: 'utf-8', address: 'c+1@d.test' } },
    { idx: 2, address: 'e@d.test', orcpt: { addrType: 'rfc822', address: 'é@d.test' } },
  ];
  for (const extensions of [undefined, NO_UTF8]) {
    await withPeer(extensions ? { extensions } : {}, async (peer) => {
      const res = await deliverOnce(peer, [], {}, { smtputf8: true, utf8Headers: false, recipients });
      assert.ok(res.every((r) => r.outcome === 'delivered'), JSON.stringify(res));
      const rcpts = peer.sessions[0]!.commands.filter((c) => c.startsWith('RCPT'));
      assert.deepEqual(rcpts, [
        'RCPT TO:<b@d.test> ORCPT=utf-8;j\\x{F6}rg\\x{2B}x\\x{3D}y\\x{5C}z@d.test',
        'RCPT TO:<c@d.test> ORCPT=rfc822;c+2B1@d.test',
        'RCPT TO:<e@d.test> ORCPT=utf-8;\\x{E9}@d.test',
      ]);
    });
  }
});

test('message larger than the server SIZE bounces 5.3.4 without MAIL', async () => {
  await withPeer({ extensions: ['SIZE 10'] }, async (peer) => {
    const res = await deliverOnce(peer, ['b@d.test']);
    assert.deepEqual([res[0]!.outcome, res[0]!.code, res[0]!.dsnStatus, res[0]!.remote], ['bounced', 552, '5.3.4', false]);
    assert.ok(!peer.sessions[0]!.commands.some((c) => c.startsWith('MAIL')));
  });
});

test('connection dropped after DATA is deferred 4.4.2', async () => {
  await withPeer({ dataReply: () => 'DROP' }, async (peer) => {
    const res = await deliverOnce(peer, ['b@d.test']);
    assert.deepEqual([res[0]!.outcome, res[0]!.dsnStatus], ['deferred', '4.4.2']);
    assert.match(res[0]!.diagnostic, /lost connection/);
  });
});

test('malformed reply is deferred 4.5.0', async () => {
  await withPeer({ reply: (c) => (c.startsWith('RCPT') ? 'this is not smtp' : undefined) }, async (peer) => {
    const res = await deliverOnce(peer, ['b@d.test']);
    assert.deepEqual([res[0]!.outcome, res[0]!.dsnStatus], ['deferred', '4.5.0']);
    assert.match(res[0]!.diagnostic, /malformed reply/);
  });
});

test('server that never answers: greeting and end-of-data timeouts defer', async () => {
  await withPeer({ greeting: 'SILENT' }, async (peer) => {
    const res = await deliverOnce(peer, ['b@d.test'], { commandTimeoutMs: 150 });
    assert.deepEqual([res[0]!.outcome, res[0]!.dsnStatus], ['deferred', '4.4.2']);
    assert.match(res[0]!.diagnostic, /timed out .* initial server greeting/);
  });
  await withPeer({ dataReply: () => 'SILENT' }, async (peer) => {
    const res = await deliverOnce(peer, ['b@d.test'], { dataDoneTimeoutMs: 150 });
    assert.equal(res[0]!.outcome, 'deferred');
    assert.match(res[0]!.diagnostic, /end of data/);
  });
  // Silent from RCPT on (DATA is pipelined with it: a server stuck at RCPT answers nothing after it).
  await withPeer({ reply: (c) => (c.startsWith('RCPT') || c === 'DATA' ? 'SILENT' : undefined) }, async (peer) => {
    const res = await deliverOnce(peer, ['b@d.test'], { transactionTimeoutMs: 150 });
    assert.equal(res[0]!.outcome, 'deferred');
    assert.match(res[0]!.diagnostic, /deadline/);
  });
});

test('connection refused is deferred 4.4.1', async () => {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  const agent = makeAgent();
  const res = await agent.deliver(request({ kind: 'host', host: '127.0.0.1', port, tls: 'none' }, ['b@d.test']));
  await agent.close();
  assert.deepEqual([res[0]!.outcome, res[0]!.dsnStatus, res[0]!.bounceClass], ['deferred', '4.4.1', 'NoAnswerFromHost']);
});

test('issue 15 item 10: a failed connect to an MX host is logged at info with queue ID, host[ip]:port and reason', async () => {
  await withPeer({}, async (peer) => {
    const { logger, lines } = captureLogger('info');
    const agent = makeAgent({ mxPort: peer.port }, 1, logger);
    try {
      const res = await agent.deliver(request({ kind: 'mx', domain: 'down.test', port: peer.port, tls: 'none' }, ['b@down.test']));
      assert.equal(res[0]!.outcome, 'delivered', res[0]!.diagnostic);
    } finally {
      await agent.close();
    }
    const line = lines.find((l) => typeof l.msg === 'string' && l.msg.startsWith('connect to dead.down.test'));
    assert.ok(line, JSON.stringify(lines));
    assert.equal(line.level, 30); // info
    assert.equal(line.queueId, 'Q1');
    assert.equal(line.host, `dead.down.test[127.0.0.2]:${peer.port}`);
    assert.equal(line.msg, `connect to dead.down.test[127.0.0.2]:${peer.port}: Connection refused`);
  });
});

test('issue 15 item 10: a failed set-up (greeting refused) is logged at info', async () => {
  await withPeer({ greeting: '554 5.3.2 not now' }, async (peer) => {
    const { logger, lines } = captureLogger('info');
    const agent = makeAgent({}, 1, logger);
    try {
      const res = await agent.deliver(request(hostHop(peer), ['b@d.test']));
      assert.equal(res[0]!.outcome, 'bounced');
    } finally {
      await agent.close();
    }
    const line = lines.find((l) => l.level === 30 && l.host === `127.0.0.1[127.0.0.1]:${peer.port}` && l.queueId === 'Q1');
    assert.ok(line, JSON.stringify(lines));
    assert.match(String(line.msg), /554 5\.3\.2 not now/);
  });
});

test('EHLO rejected with 5xx falls back to HELO', async () => {
  await withPeer({ reply: (c) => (c.startsWith('EHLO') ? '502 5.5.1 no EHLO' : undefined) }, async (peer) => {
    const res = await deliverOnce(peer, ['b@d.test']);
    assert.equal(res[0]!.outcome, 'delivered');
    assert.ok(peer.sessions[0]!.commands.includes('HELO client.test'));
  });
});

test('STARTTLS with a self-signed certificate, re-EHLO after TLS', async () => {
  await withPeer({ tls: tlsPair }, async (peer) => {
    const res = await deliverOnce(peer, ['b@d.test'], {}, {}, hostHop(peer, 'starttls'));
    assert.equal(res[0]!.outcome, 'delivered', res[0]!.diagnostic);
    const s = peer.sessions[0]!;
    assert.equal(s.tls, true);
    assert.equal(s.commands.filter((c) => c.startsWith('EHLO')).length, 2);
  });
});

test('implicit TLS', async () => {
  await withPeer({ tls: tlsPair, implicitTls: true }, async (peer) => {
    const res = await deliverOnce(peer, ['b@d.test'], {}, {}, hostHop(peer, 'implicit'));
    assert.equal(res[0]!.outcome, 'delivered', res[0]!.diagnostic);
    assert.equal(peer.sessions[0]!.tls, true);
  });
});

test('required TLS not offered defers 4.7.4; opportunistic carries on in plaintext', async () => {
  await withPeer({}, async (peer) => {
    const res = await deliverOnce(peer, ['b@d.test'], {}, {}, hostHop(peer, 'starttls'));
    assert.deepEqual([res[0]!.outcome, res[0]!.dsnStatus], ['deferred', '4.7.4']);
    const ok = await deliverOnce(peer, ['b@d.test'], {}, {}, hostHop(peer, 'opportunistic'));
    assert.equal(ok[0]!.outcome, 'delivered');
  });
});

test('opportunistic TLS whose handshake fails is retried in plaintext', async () => {
  await withPeer({ tls: tlsPair, reply: (c, s) => (c === 'STARTTLS' && s.id === 1 ? '220 2.0.0 go\nDROP' : undefined) }, async (peer) => {
    const res = await deliverOnce(peer, ['b@d.test'], {}, {}, hostHop(peer, 'opportunistic'));
    assert.equal(res[0]!.outcome, 'delivered', res[0]!.diagnostic);
    assert.equal(peer.sessions.length, 2);
    assert.equal(peer.sessions[1]!.tls, false);
    assert.ok(!peer.sessions[1]!.commands.includes('STARTTLS'));
  });
});

test('AUTH over STARTTLS; never in plaintext; bad credentials defer 4.7.8', async () => {
  const auth = { username: 'user', password: 'secret' };
  await withPeer({ tls: tlsPair, auth }, async (peer) => {
    const res = await deliverOnce(peer, ['b@d.test'], {}, {}, hostHop(peer, 'starttls', auth));
    assert.equal(res[0]!.outcome, 'delivered', res[0]!.diagnostic);
    assert.equal(peer.sessions[0]!.authUser, 'user');
    const bad = await deliverOnce(peer, ['b@d.test'], {}, {}, hostHop(peer, 'starttls', { username: 'user', password: 'wrong' }));
    assert.deepEqual([bad[0]!.outcome, bad[0]!.dsnStatus], ['deferred', '4.7.8']);
  });
  await withPeer({ auth, extensions: ['AUTH LOGIN', 'PIPELINING'], tls: tlsPair }, async (peer) => {
    const res = await deliverOnce(peer, ['b@d.test'], {}, {}, hostHop(peer, 'starttls', auth));
    assert.equal(res[0]!.outcome, 'delivered', res[0]!.diagnostic);
    assert.ok(peer.sessions[0]!.commands.includes('AUTH LOGIN'));
  });
  await withPeer({ auth }, async (peer) => {
    const res = await deliverOnce(peer, ['b@d.test'], {}, {}, hostHop(peer, 'none', auth));
    assert.equal(res[0]!.outcome, 'deferred');
    assert.match(res[0]!.diagnostic, /TLS is not active/);
    assert.ok(!peer.sessions[0]!.commands.some((c) => c.startsWith('AUTH')));
  });
});

test('connection reuse: two messages over one connection with RSET between', async () => {
  await withPeer({}, async (peer) => {
    const agent = makeAgent();
    try {
      const a = await agent.deliver(request(hostHop(peer), ['a@d.test']));
      const b = await agent.deliver(request(hostHop(peer), ['b@d.test']));
      assert.equal(a[0]!.outcome, 'delivered');
      assert.equal(b[0]!.outcome, 'delivered');
      assert.equal(peer.sessions.length, 1);
      assert.equal(peer.sessions[0]!.messages.length, 2);
      assert.ok(peer.sessions[0]!.commands.includes('RSET'));
    } finally {
      await agent.close();
    }
    assert.ok(peer.sessions[0]!.commands.includes('QUIT'));
  });
});

test('messagesPerConnection limits reuse', async () => {
  await withPeer({}, async (peer) => {
    const agent = makeAgent({ messagesPerConnection: 1 });
    try {
      for (let i = 0; i < 2; i++) await agent.deliver(request(hostHop(peer), ['a@d.test']));
    } finally {
      await agent.close();
    }
    assert.equal(peer.sessions.length, 2);
  });
});

test('NOTIFY=SUCCESS to a hop without DSN is marked relayed', async () => {
  await withPeer({ extensions: ['PIPELINING', '8BITMIME'] }, async (peer) => {
    const res = await deliverOnce(peer, [], {}, { recipients: [{ idx: 0, address: 'b@d.test', notify: ['SUCCESS'] }, { idx: 1, address: 'c@d.test' }] });
    assert.equal(res[0]!.relayed, true);
    assert.equal(res[1]!.relayed, undefined);
    assert.equal(res[0]!.dsnPassedOn, undefined);
    assert.ok(!peer.sessions[0]!.commands.some((c) => c.includes('NOTIFY')));
  });
});

test('MX: 4xx to MAIL at the first MX moves on to the next MX', async () => {
  await withPeer({ reply: (c, s) => (s.id === 1 && c.startsWith('MAIL') ? '421 4.3.2 busy' : undefined) }, async (peer) => {
    const res = await deliverOnce(peer, ['b@two.test'], { mxPort: peer.port }, {}, { kind: 'mx', domain: 'two.test', port: peer.port, tls: 'none' });
    assert.equal(res[0]!.outcome, 'delivered', res[0]!.diagnostic);
    assert.equal(res[0]!.remoteMta, `mx2.two.test[127.0.0.1]:${peer.port}`);
    assert.equal(peer.sessions.length, 2);
  });
});

test('MX pointing at our own listener is a loop: deferred 4.4.6', async () => {
  await withPeer({}, async (peer) => {
    const agent = makeAgent({ mxPort: peer.port }, peer.port);
    const res = await agent.deliver(request({ kind: 'mx', domain: 'self.test', port: peer.port, tls: 'none' }, ['b@self.test']));
    await agent.close();
    assert.deepEqual([res[0]!.outcome, res[0]!.dsnStatus], ['deferred', '4.4.6']);
    assert.match(res[0]!.diagnostic, /mail for self\.test loops back to myself/);
    assert.equal(peer.sessions.length, 0);
  });
});

test('MX: null MX bounces 5.1.10, SERVFAIL defers 4.4.3', async () => {
  const agent = makeAgent();
  try {
    const a = await agent.deliver(request({ kind: 'mx', domain: 'nullmx.test', port: 25, tls: 'none' }, ['x@nullmx.test']));
    assert.deepEqual([a[0]!.outcome, a[0]!.dsnStatus, a[0]!.bounceClass], ['bounced', '5.1.10', 'BadDomain']);
    const b = await agent.deliver(request({ kind: 'mx', domain: 'broken.test', port: 25, tls: 'none' }, ['x@broken.test']));
    assert.deepEqual([b[0]!.outcome, b[0]!.dsnStatus, b[0]!.bounceClass], ['deferred', '4.4.3', 'DnsFailure']);
  } finally {
    await agent.close();
  }
});

test('extensions used in tests are the defaults', () => {
  assert.ok(DEFAULT_EXTENSIONS.includes('PIPELINING'));
});
