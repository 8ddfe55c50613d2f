/**
 * Connection handling of the SMTP agent against a fault-injecting server on loopback (the scripted
 * peer: 421 / 451 / 452 / 5xx or a dropped connection at chosen points): a 421 ends the session
 * (never pooled again) and defers the message; a message whose end of data went out without a
 * reply is deferred and never sent to another host in the same attempt; DATA as the last command
 * of the pipelined group (RFC 2920 3.1, with the 354-after-no-recipient case); BDAT (RFC 3030)
 * with and without PIPELINING, failed chunks, and the delivery.chunking switch.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { configSchema } from '../../../src/config/schema.js';
import { silentLogger } from '../../../src/core/log.js';
import { createResolver } from '../../../src/dns/resolver.js';
import { SmtpDeliveryAgent } from '../../../src/delivery/smtp-agent.js';
import type { DeliveryRequest, RecipientResult } from '../../../src/delivery/types.js';
import type { NextHop } from '../../../src/routing/types.js';
import type { Resolver } from '../../../src/dns/types.js';
import { startSmtpPeer, DEFAULT_EXTENSIONS, type PeerScript, type SmtpPeer } from '../../helpers/smtp-peer.js';
import { startDnsServer, type DnsServerHandle } from '../../helpers/dns-server.js';

let dns: DnsServerHandle;
let resolver: Resolver;

before(async () => {
  // Two MX hosts on the same peer (127.0.0.1): sessions tell which were tried.
  dns = await startDnsServer({
    'two.test': { mx: [{ exchange: 'mx1.two.test', priority: 10 }, { exchange: 'mx2.two.test', priority: 20 }] },
    'mx1.two.test': { a: ['127.0.0.1'] },
    'mx2.two.test': { a: ['127.0.0.1'] },
  });
  resolver = createResolver({ servers: [dns.server], timeoutMs: 1000, tries: 1 });
});
after(async () => { await dns.close(); });

const BODY = 'From: a@src.test\r\nTo: b@two.test\r\nSubject: faults\r\n\r\nline one\r\n.leading dot\r\n';
const CHUNKING = [...DEFAULT_EXTENSIONS, 'CHUNKING'];

function agentFor(port: number, delivery: Record<string, unknown> = {}): SmtpDeliveryAgent {
  const config = configSchema.parse({
    hostname: 'client.test', dataDir: '/nonexistent-postline-test', listeners: [{ name: 'mx', port: 1 }],
    delivery: { tls: 'none', mxPort: port, connectTimeoutMs: 2000, commandTimeoutMs: 2000, dataDoneTimeoutMs: 2000, idleTimeoutMs: 5000, mtaSts: { enabled: false }, ...delivery },
  });
  return new SmtpDeliveryAgent({ config, resolver, logger: silentLogger(), ownListeners: [] });
}

function request(hop: NextHop, rcpts: string[], body = BODY): DeliveryRequest {
  const b = Buffer.from(body, 'latin1');
  return {
    queueId: 'QF', mailFrom: 'a@src.test', bodyType: '7BIT', smtputf8: false, size: b.length,
    // In 64 KiB pieces, as a body file is read.
    recipients: rcpts.map((address, idx) => ({ idx, address })), nextHop: hop,
    openBody: () => Readable.from(Array.from({ length: Math.ceil(b.length / 65536) }, (_, i) => b.subarray(i * 65536, (i + 1) * 65536))),
  };
}

const mxHop = (peer: SmtpPeer): NextHop => ({ kind: 'mx', domain: 'two.test', port: peer.port, tls: 'none' });
const hostHop = (peer: SmtpPeer): NextHop => ({ kind: 'host', host: '127.0.0.1', port: peer.port, tls: 'none' });
const sorted = (r: RecipientResult[]) => r.sort((a, b) => a.idx - b.idx);
const brief = (r: RecipientResult) => `${r.outcome}:${r.code}:${r.dsnStatus}`;

/** Runs `fn` with a peer and an agent (closed after). */
async function withRig(script: PeerScript, delivery: Record<string, unknown>, fn: (peer: SmtpPeer, agent: SmtpDeliveryAgent) => Promise<void>): Promise<void> {
  const peer = await startSmtpPeer(script);
  const agent = agentFor(peer.port, delivery);
  try { await fn(peer, agent); } finally { await agent.close(); await peer.close(); }
}

/** A reply that closes the session the way a server going away does (421 and close). */
const bye = '421 4.3.2 service shutting down\nDROP';

test('421 to MAIL: the connection is closed, never pooled; the next MX host is tried', async () => {
  await withRig({ reply: (c, s) => (c.startsWith('MAIL') && s.id === 1 ? bye : undefined) }, {}, async (peer, agent) => {
    const [r] = await agent.deliver(request(mxHop(peer), ['b@two.test']));
    assert.equal(r!.outcome, 'delivered');
    assert.equal(peer.sessions.length, 2);
    assert.equal(peer.messages().length, 1);
  });
  await withRig({ reply: (c, s) => (c.startsWith('MAIL') && s.id === 1 ? bye : undefined) }, {}, async (peer, agent) => {
    const [r] = await agent.deliver(request(hostHop(peer), ['b@two.test']));
    assert.deepEqual([brief(r!), r!.remote], ['deferred:421:4.3.2', true]);
    assert.match(r!.diagnostic, /^421 4\.3\.2 service shutting down/);
    const [again] = await agent.deliver(request(hostHop(peer), ['b@two.test']));
    assert.equal(again!.outcome, 'delivered');
    assert.equal(peer.sessions.length, 2, 'the 421 session was not reused');
  });
});

test('421 to RCPT: the whole message is deferred (earlier 5xx kept), no DATA, no other host, connection not reused', async () => {
  const script: PeerScript = {
    reply: (c, s) => {
      if (s.id !== 1) return undefined;
      if (c.startsWith('RCPT TO:<x@')) return '550 5.1.1 no such user';
      if (c.startsWith('RCPT TO:<z@')) return bye;
      return undefined;
    },
  };
  await withRig(script, {}, async (peer, agent) => {
    const res = sorted(await agent.deliver(request(mxHop(peer), ['x@two.test', 'y@two.test', 'z@two.test', 'w@two.test'])));
    assert.deepEqual(res.map(brief), ['bounced:550:5.1.1', 'deferred:421:4.3.2', 'deferred:421:4.3.2', 'deferred:421:4.3.2']);
    assert.equal(res[1]!.remoteMta, `mx1.two.test[127.0.0.1]:${peer.port}`);
    assert.equal(peer.sessions.length, 1, 'deferred at once: mx2 is not tried');
    assert.equal(peer.messages().length, 0);
    const again = sorted(await agent.deliver(request(mxHop(peer), ['y@two.test'])));
    assert.equal(again[0]!.outcome, 'delivered');
    assert.equal(peer.sessions.length, 2, 'a new connection');
  });
});

test('421 to DATA and to the end of data: deferred, nothing delivered, the session is closed', async () => {
  await withRig({ reply: (c) => (c === 'DATA' ? bye : undefined) }, {}, async (peer, agent) => {
    const [r] = await agent.deliver(request(mxHop(peer), ['b@two.test']));
    assert.equal(brief(r!), 'deferred:421:4.3.2');
    assert.deepEqual([peer.sessions.length, peer.messages().length], [1, 0]);
  });
  await withRig({ dataReply: (_m, s) => (s.id === 1 ? bye : undefined) }, {}, async (peer, agent) => {
    const [r] = await agent.deliver(request(mxHop(peer), ['b@two.test']));
    assert.equal(brief(r!), 'deferred:421:4.3.2');
    assert.equal(peer.sessions.length, 1, 'the message is deferred, not sent to mx2');
    assert.equal((await agent.deliver(request(mxHop(peer), ['b@two.test'])))[0]!.outcome, 'delivered');
    assert.deepEqual([peer.sessions.length, peer.messages().length], [2, 1]);
  });
});

test('a 421 that arrives after the reply (idle timeout) keeps the connection out of the pool', async () => {
  await withRig({ dataReply: (_m, s) => (s.id === 1 ? '250 2.0.0 queued\n421 4.4.2 idle timeout' : undefined) }, {}, async (peer, agent) => {
    assert.equal((await agent.deliver(request(mxHop(peer), ['b@two.test'])))[0]!.outcome, 'delivered');
    assert.equal((await agent.deliver(request(mxHop(peer), ['b@two.test'])))[0]!.outcome, 'delivered');
    assert.deepEqual([peer.sessions.length, peer.messages().length], [2, 2]);
    assert.ok(!peer.sessions[0]!.commands.includes('RSET'), 'the closing session was not reused');
  });
});

test('connection dropped after the end of data: deferred 4.4.2 and never sent to the next MX (no duplicate on purpose)', async () => {
  await withRig({ dataReply: (_m, s) => (s.id === 1 ? 'DROP' : undefined) }, {}, async (peer, agent) => {
    const [r] = await agent.deliver(request(mxHop(peer), ['b@two.test']));
    assert.deepEqual([r!.outcome, r!.dsnStatus], ['deferred', '4.4.2']);
    assert.match(r!.diagnostic, /end of data/);
    assert.equal(peer.sessions.length, 1);
    assert.equal(peer.sessions[0]!.commands.filter((c) => c === 'DATA').length, 1);
  });
  // Dropped before the data went out: safe to go on to the next host at once.
  await withRig({ reply: (c, s) => (c.startsWith('RCPT') && s.id === 1 ? 'DROP' : undefined) }, {}, async (peer, agent) => {
    const [r] = await agent.deliver(request(mxHop(peer), ['b@two.test']));
    assert.equal(r!.outcome, 'delivered');
    assert.deepEqual([peer.sessions.length, peer.messages().length], [2, 1]);
  });
});

test('451 and 452 to RCPT defer those recipients only; the connection stays pooled', async () => {
  const script: PeerScript = { reply: (c) => (c.startsWith('RCPT TO:<x@') ? '451 4.3.0 try later' : c.startsWith('RCPT TO:<y@') ? '452 4.2.2 mailbox full' : undefined) };
  await withRig(script, {}, async (peer, agent) => {
    const res = sorted(await agent.deliver(request(mxHop(peer), ['x@two.test', 'y@two.test', 'z@two.test'])));
    assert.deepEqual(res.map(brief), ['deferred:451:4.3.0', 'deferred:452:4.2.2', 'delivered:250:2.0.0']);
    await agent.deliver(request(mxHop(peer), ['z@two.test']));
    assert.deepEqual([peer.sessions.length, peer.messages().length], [1, 2], 'both messages over one connection');
  });
});

test('PIPELINING: MAIL, every RCPT and DATA go in one write (RFC 2920 3.1)', async () => {
  await withRig({}, {}, async (peer, agent) => {
    await agent.deliver(request(mxHop(peer), ['x@two.test', 'y@two.test']));
    const group = peer.sessions[0]!.chunks.find((c) => c.includes('MAIL FROM'));
    assert.ok(group && /RCPT TO:<x@.*\r\nRCPT TO:<y@.*\r\nDATA\r\n$/s.test(group), JSON.stringify(peer.sessions[0]!.chunks));
    assert.equal(peer.messages()[0]!.data.toString('latin1'), BODY);
  });
});

test('pipelined DATA after no accepted RCPT: a proper 5xx is read; a 354 anyway gets a lone "." (RFC 2920 3.1)', async () => {
  await withRig({ reply: (c) => (c.startsWith('RCPT') ? '550 5.1.1 unknown' : undefined) }, {}, async (peer, agent) => {
    const res = sorted(await agent.deliver(request(mxHop(peer), ['x@two.test', 'y@two.test'])));
    assert.deepEqual(res.map(brief), ['bounced:550:5.1.1', 'bounced:550:5.1.1']);
    assert.equal(peer.messages().length, 0);
  });
  const broken: PeerScript = {
    reply: (c) => (c.startsWith('RCPT') ? '550 5.1.1 unknown' : c === 'DATA' ? '354 go ahead anyway' : undefined),
    dataReply: (m) => (m.rcpts.length === 0 ? '554 5.5.1 no valid recipients' : undefined),
  };
  await withRig(broken, {}, async (peer, agent) => {
    const res = sorted(await agent.deliver(request(mxHop(peer), ['x@two.test'])));
    assert.deepEqual(res.map(brief), ['bounced:550:5.1.1']);
    const s = peer.sessions[0]!;
    assert.ok(s.chunks.some((c) => c === '.\r\n'), 'the lone dot');
    assert.ok(!s.chunks.some((c) => c.includes('line one')), 'no body sent');
    // The session is still in step: the next message goes over it after RSET.
    const [next] = await agent.deliver(request(mxHop(peer), ['ok@two.test']));
    assert.equal(next!.outcome, 'bounced', 'the script refuses every RCPT');
    assert.equal(peer.sessions.length, 1);
    assert.ok(s.commands.includes('RSET'));
  });
});

test('MAIL refused with pipelined RCPT and DATA: every reply is read, the session stays usable', async () => {
  await withRig({ reply: (c, s) => (c.startsWith('MAIL') && s.messages.length === 0 && !s.commands.includes('RSET') ? '553 5.7.1 sender refused' : undefined) }, {}, async (peer, agent) => {
    const res = sorted(await agent.deliver(request(mxHop(peer), ['x@two.test', 'y@two.test'])));
    assert.deepEqual(res.map(brief), ['bounced:553:5.7.1', 'bounced:553:5.7.1']);
    assert.equal((await agent.deliver(request(mxHop(peer), ['x@two.test'])))[0]!.outcome, 'delivered');
    assert.equal(peer.sessions.length, 1);
  });
});

test('BDAT when CHUNKING is offered: the stored bytes without dot-stuffing, in chunks, the last one LAST; pipelined or not', async () => {
  const big = 'From: a@src.test\r\nSubject: big\r\n\r\n' + Array.from({ length: 12_000 }, (_, i) => `.line ${i} ${'x'.repeat(40)}\r\n`).join('');
  for (const extensions of [CHUNKING, CHUNKING.filter((e) => e !== 'PIPELINING')]) {
    await withRig({ extensions }, {}, async (peer, agent) => {
      const [small] = await agent.deliver(request(mxHop(peer), ['b@two.test']));
      const [large] = await agent.deliver(request(mxHop(peer), ['b@two.test'], big));
      assert.deepEqual([small!.outcome, large!.outcome], ['delivered', 'delivered']);
      const cmds = peer.sessions[0]!.commands;
      assert.ok(!cmds.includes('DATA'));
      assert.ok(cmds.includes(`BDAT ${Buffer.byteLength(BODY)} LAST`), cmds.join('|'));
      const chunks = cmds.filter((c) => c.startsWith('BDAT')).slice(1);
      assert.ok(chunks.length >= 3 && chunks.slice(0, -1).every((c) => !c.endsWith('LAST')) && chunks.at(-1)!.endsWith(' LAST'), chunks.join('|'));
      assert.equal(chunks.reduce((n, c) => n + Number(c.split(' ')[1]), 0), Buffer.byteLength(big));
      assert.deepEqual(peer.messages().map((m) => m.data.toString('latin1')), [BODY, big], 'byte-identical, ".line" not stuffed');
    });
  }
});

test('BDAT: a failed chunk fails the message with its reply, no further chunks; the session is RSET and reused; chunking: false uses DATA', async () => {
  const big = 'Subject: big\r\n\r\n' + 'y'.repeat(1_000_000) + '\r\n';
  for (const extensions of [CHUNKING, CHUNKING.filter((e) => e !== 'PIPELINING')]) {
    let n = 0;
    const script: PeerScript = { extensions, reply: (c) => (c.startsWith('BDAT') && ++n === 2 ? '452 4.3.1 insufficient storage' : undefined) };
    await withRig(script, {}, async (peer, agent) => {
      const [r] = await agent.deliver(request(mxHop(peer), ['b@two.test'], big));
      assert.equal(brief(r!), 'deferred:452:4.3.1');
      assert.equal(peer.messages().length, 0);
      const cmds = peer.sessions[0]!.commands;
      if (!extensions.includes('PIPELINING')) assert.ok(!cmds.some((c) => c.endsWith('LAST')), 'no chunk after the failed one');
      assert.equal((await agent.deliver(request(mxHop(peer), ['b@two.test'])))[0]!.outcome, 'delivered');
      assert.deepEqual([peer.sessions.length, cmds.includes('RSET')], [1, true]);
    });
  }
  await withRig({ extensions: CHUNKING }, { chunking: false }, async (peer, agent) => {
    assert.equal((await agent.deliver(request(mxHop(peer), ['b@two.test'])))[0]!.outcome, 'delivered');
    assert.ok(peer.sessions[0]!.commands.includes('DATA'));
    assert.ok(!peer.sessions[0]!.commands.some((c) => c.startsWith('BDAT')));
  });
});

test('BDAT: 421 to a chunk defers and closes; the connection dropped after LAST is in doubt: deferred, no next MX', async () => {
  const big = 'Subject: big\r\n\r\n' + 'z'.repeat(700_000) + '\r\n';
  let n = 0;
  await withRig({ extensions: CHUNKING, reply: (c) => (c.startsWith('BDAT') && ++n === 1 ? bye : undefined) }, {}, async (peer, agent) => {
    const [r] = await agent.deliver(request(mxHop(peer), ['b@two.test'], big));
    assert.equal(brief(r!), 'deferred:421:4.3.2');
    assert.deepEqual([peer.sessions.length, peer.messages().length], [1, 0]);
  });
  await withRig({ extensions: CHUNKING, dataReply: (_m, s) => (s.id === 1 ? 'DROP' : undefined) }, {}, async (peer, agent) => {
    const [r] = await agent.deliver(request(mxHop(peer), ['b@two.test']));
    assert.deepEqual([r!.outcome, r!.dsnStatus], ['deferred', '4.4.2']);
    assert.match(r!.diagnostic, /end of data/);
    assert.equal(peer.sessions.length, 1, 'in doubt: not sent to mx2');
  });
});
