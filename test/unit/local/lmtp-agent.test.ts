/**
 * The LMTP agent against a scripted LMTP peer on loopback (RFC 2033): LHLO and the extensions it
 * uses, the per-recipient replies after DATA and BDAT LAST, and the trouble that defers: a lost
 * connection after the dot, a 421, a refused greeting or LHLO, no listener, a bad target, a pooled
 * session found closed. Dovecot itself is in lmtp-dovecot.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { configSchema } from '../../../src/config/schema.js';
import { silentLogger } from '../../../src/core/log.js';
import type { DeliveryRequest, RecipientResult } from '../../../src/delivery/types.js';
import { LmtpDeliveryAgent } from '../../../src/local/lmtp-agent.js';
import { parseLmtpTarget } from '../../../src/local/lmtp-target.js';
import { startSmtpPeer, type PeerScript, type SmtpPeer } from '../../helpers/smtp-peer.js';
import { freePort } from '../../helpers/net.js';

const LMTP_EXT = ['PIPELINING', '8BITMIME', 'ENHANCEDSTATUSCODES', 'CHUNKING'];

/** LHLO answered with `ext`; EHLO and HELO refused (RFC 2033 4.1: an LMTP server must not take them). */
function lmtpScript(ext: readonly string[], more: PeerScript = {}): PeerScript {
  return {
    greeting: '220 lmtp.test LMTP ready',
    ...more,
    reply: (cmd, s) => {
      const own = more.reply?.(cmd, s);
      if (own !== undefined) return own;
      if (/^LHLO /i.test(cmd)) return ['lmtp.test', ...ext].map((l, i, all) => `250${i === all.length - 1 ? ' ' : '-'}${l}`).join('\n');
      if (/^(EHLO|HELO) /i.test(cmd)) return '500 5.5.1 this is LMTP';
      return undefined;
    },
  };
}

/** One "250 2.0.0 <rcpt> Saved" per recipient of the message: the LMTP end of data. */
const savedEach = (rcpts: readonly string[]) => rcpts.map((r) => `250 2.0.0 <${r}> Saved`).join('\n');

function makeAgent(lmtp: Record<string, unknown> = {}): LmtpDeliveryAgent {
  const config = configSchema.parse({
    hostname: 'postline.test',
    listeners: [{ name: 'mx', port: 1 }],
    local: { lmtp: { connectTimeoutMs: 2000, commandTimeoutMs: 2000, dataDoneTimeoutMs: 2000, idleTimeoutMs: 2000, ...lmtp } },
  });
  return new LmtpDeliveryAgent({ config, logger: silentLogger() });
}

const BODY = Buffer.from('From: a@src.test\r\nSubject: hi\r\n\r\n.leading dot\r\nline two\r\n');

function request(target: string, rcpts: string[], extra: Partial<DeliveryRequest> = {}): DeliveryRequest {
  return {
    queueId: 'Q1', mailFrom: 'a@src.test', bodyType: '7BIT', smtputf8: false, size: BODY.length,
    recipients: rcpts.map((address, idx) => ({ idx, address })),
    nextHop: { kind: 'lmtp', target }, openBody: () => Readable.from([BODY]), ...extra,
  };
}

async function withPeer(script: PeerScript, fn: (peer: SmtpPeer, target: string) => Promise<void>): Promise<void> {
  const peer = await startSmtpPeer(script);
  try { await fn(peer, `127.0.0.1:${peer.port}`); } finally { await peer.close(); }
}

async function deliverOnce(target: string, rcpts: string[], lmtp: Record<string, unknown> = {}, extra: Partial<DeliveryRequest> = {}): Promise<RecipientResult[]> {
  const agent = makeAgent(lmtp);
  try {
    return (await agent.deliver(request(target, rcpts, extra))).sort((a, b) => a.idx - b.idx);
  } finally {
    await agent.close();
  }
}

const brief = (r: RecipientResult) => [r.outcome, r.code, r.dsnStatus];

test('targets: host:port, [v6]:port, unix:/path; anything else is refused', () => {
  assert.deepEqual(parseLmtpTarget('127.0.0.1:24'), { kind: 'tcp', host: '127.0.0.1', port: 24 });
  assert.deepEqual(parseLmtpTarget('mail.example.test:2003'), { kind: 'tcp', host: 'mail.example.test', port: 2003 });
  assert.deepEqual(parseLmtpTarget('[::1]:24'), { kind: 'tcp', host: '::1', port: 24 });
  assert.deepEqual(parseLmtpTarget('unix:/run/dovecot/lmtp'), { kind: 'unix', path: '/run/dovecot/lmtp' });
  for (const bad of ['127.0.0.1', 'host:0', 'host:70000', 'unix:relative/path', '::1:24', 'lmtp:host:24', '']) assert.equal(parseLmtpTarget(bad), undefined, bad);
});

test('LHLO with our name; MAIL carries SIZE, BODY=8BITMIME and SMTPUTF8 when offered; DATA dot-stuffed; one reply per recipient', async () => {
  const ext = ['PIPELINING', 'SIZE 100000', '8BITMIME', 'SMTPUTF8', 'ENHANCEDSTATUSCODES'];
  await withPeer(lmtpScript(ext, { dataReply: (m) => savedEach(m.rcpts) }), async (peer, target) => {
    const res = await deliverOnce(target, ['a@local.test', 'b@local.test'], { lhloName: 'me.test' }, { bodyType: '8BITMIME', smtputf8: true, utf8Headers: false });
    assert.deepEqual(res.map(brief), [['delivered', 250, '2.0.0'], ['delivered', 250, '2.0.0']]);
    assert.equal(res[1]!.diagnostic, '250 2.0.0 <b@local.test> Saved', 'each recipient has its own reply');
    const s = peer.sessions[0]!;
    assert.equal(s.commands[0], 'LHLO me.test');
    assert.ok(s.commands.includes(`MAIL FROM:<a@src.test> SIZE=${BODY.length} BODY=8BITMIME SMTPUTF8`), s.commands.join('|'));
    assert.ok(s.chunks.some((c) => c.includes('MAIL FROM') && c.includes('RCPT TO:<b@') && c.includes('DATA')), 'pipelined');
    assert.ok(s.chunks.some((c) => c.includes('\r\n..leading dot\r\n')), 'dot-stuffed on the wire');
    assert.deepEqual(peer.messages()[0]!.data, BODY);
  });
});

test('BDAT when CHUNKING is offered: LAST answered per recipient (mixed outcomes); DATA with chunking off', async () => {
  const mixed = (rcpts: readonly string[]) => rcpts.map((r) => (r.startsWith('full') ? `452 4.2.2 <${r}> Quota exceeded` : r.startsWith('gone') ? `550 5.1.1 <${r}> gone` : `250 2.0.0 <${r}> Saved`)).join('\n');
  await withPeer(lmtpScript(LMTP_EXT, { dataReply: (m) => mixed(m.rcpts) }), async (peer, target) => {
    const res = await deliverOnce(target, ['a@local.test', 'full@local.test', 'gone@local.test', 'b@local.test']);
    assert.deepEqual(res.map(brief), [['delivered', 250, '2.0.0'], ['deferred', 452, '4.2.2'], ['bounced', 550, '5.1.1'], ['delivered', 250, '2.0.0']]);
    assert.ok(peer.sessions[0]!.commands.some((c) => /^BDAT \d+ LAST$/.test(c)));
    assert.deepEqual(peer.messages()[0]!.data, BODY, 'BDAT: the body as stored, no stuffing');
  });
  await withPeer(lmtpScript(LMTP_EXT, { dataReply: (m) => mixed(m.rcpts) }), async (peer, target) => {
    const res = await deliverOnce(target, ['full@local.test', 'a@local.test'], { chunking: false });
    assert.deepEqual(res.map(brief), [['deferred', 452, '4.2.2'], ['delivered', 250, '2.0.0']]);
    assert.ok(peer.sessions[0]!.commands.includes('DATA'));
  });
});

test('RCPT refusals are per recipient; only accepted ones get a reply after the dot', async () => {
  const script = lmtpScript(LMTP_EXT, {
    reply: (c) => (c.startsWith('RCPT TO:<ghost@') ? '550 5.1.1 <ghost@local.test> User doesn\'t exist' : undefined),
    dataReply: (m) => savedEach(m.rcpts),
  });
  await withPeer(script, async (peer, target) => {
    const agent = makeAgent();
    try {
      const first = await agent.deliver(request(target, ['ghost@local.test', 'a@local.test']));
      assert.deepEqual(first.sort((x, y) => x.idx - y.idx).map(brief), [['bounced', 550, '5.1.1'], ['delivered', 250, '2.0.0']]);
      const second = await agent.deliver(request(target, ['b@local.test'])); // the session is still in step
      assert.deepEqual(second.map(brief), [['delivered', 250, '2.0.0']]);
      assert.equal(peer.sessions.length, 1);
      assert.ok(peer.sessions[0]!.commands.includes('RSET'));
    } finally {
      await agent.close();
    }
  });
});

test('connection lost after the dot: recipients with a reply keep it, the rest are deferred (in doubt)', async () => {
  for (const chunking of [true, false]) {
    const script = lmtpScript(LMTP_EXT, { dataReply: (m) => `250 2.0.0 <${m.rcpts[0]}> Saved\nDROP` });
    await withPeer(script, async (_peer, target) => {
      const res = await deliverOnce(target, ['a@local.test', 'b@local.test', 'c@local.test'], { chunking });
      assert.deepEqual(brief(res[0]!), ['delivered', 250, '2.0.0'], `chunking ${chunking}`);
      for (const r of res.slice(1)) {
        assert.deepEqual(brief(r), ['deferred', 451, '4.4.2'], r.diagnostic);
        assert.match(r.diagnostic, /lost connection/);
      }
    });
  }
});

test('no reply after the dot within dataDoneTimeoutMs defers every recipient', async () => {
  await withPeer(lmtpScript(LMTP_EXT, { dataReply: () => 'SILENT' }), async (_peer, target) => {
    const res = await deliverOnce(target, ['a@local.test', 'b@local.test'], { dataDoneTimeoutMs: 300 });
    for (const r of res) assert.deepEqual(brief(r), ['deferred', 451, '4.4.2'], r.diagnostic);
    assert.match(res[0]!.diagnostic, /timed out/);
  });
});

test('a 421 among the replies after the dot defers it and the rest; the session is not kept', async () => {
  const script = lmtpScript(LMTP_EXT, { dataReply: (m) => `250 2.0.0 <${m.rcpts[0]}> Saved\n421 4.3.2 shutting down\nDROP` });
  await withPeer(script, async (_peer, target) => {
    const agent = makeAgent();
    try {
      const res = (await agent.deliver(request(target, ['a@local.test', 'b@local.test', 'c@local.test']))).sort((x, y) => x.idx - y.idx);
      assert.deepEqual(res.map(brief), [['delivered', 250, '2.0.0'], ['deferred', 421, '4.3.2'], ['deferred', 421, '4.3.2']]);
      assert.deepEqual(agent.connections(), { open: 0, idle: 0 });
    } finally {
      await agent.close();
    }
  });
});

test('a server that cannot be used defers everything: 421 or 554 greeting, LHLO refused (no EHLO/HELO fallback)', async () => {
  for (const greeting of ['421 4.3.2 busy\nDROP', '554 5.3.2 not now']) {
    await withPeer(lmtpScript(LMTP_EXT, { greeting }), async (_peer, target) => {
      const res = await deliverOnce(target, ['a@local.test', 'b@local.test']);
      for (const r of res) {
        assert.equal(r.outcome, 'deferred', `${greeting}: ${r.diagnostic}`);
        assert.equal(r.dsnStatus[0], '4');
        assert.equal(r.destination, 'unreachable');
      }
    });
  }
  await withPeer(lmtpScript(LMTP_EXT, { reply: (c) => (c.startsWith('LHLO') ? '500 5.5.1 unknown command' : undefined) }), async (peer, target) => {
    const res = await deliverOnce(target, ['a@local.test']);
    assert.deepEqual([res[0]!.outcome, res[0]!.code, res[0]!.dsnStatus], ['deferred', 451, '4.5.1'], res[0]!.diagnostic);
    assert.equal(res[0]!.diagnostic, '500 5.5.1 unknown command', 'the remote reply, as for SMTP');
    assert.equal(res[0]!.remote, true);
    assert.ok(!peer.sessions[0]!.commands.some((c) => /^(EHLO|HELO)/.test(c)));
  });
});

test('no listener: TCP refused and a missing unix socket defer with the dead-destination mark', async () => {
  const port = await freePort();
  const tcp = await deliverOnce(`127.0.0.1:${port}`, ['a@local.test']);
  assert.deepEqual([tcp[0]!.outcome, tcp[0]!.dsnStatus, tcp[0]!.destination], ['deferred', '4.4.1', 'unreachable']);
  assert.match(tcp[0]!.diagnostic, /Connection refused/);
  const dir = mkdtempSync(join(tmpdir(), 'postline-lmtp-'));
  try {
    const unix = await deliverOnce(`unix:${join(dir, 'absent.sock')}`, ['a@local.test']);
    assert.deepEqual([unix[0]!.outcome, unix[0]!.dsnStatus, unix[0]!.destination], ['deferred', '4.4.1', 'unreachable']);
    assert.match(unix[0]!.diagnostic, /absent\.sock.*No such file/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('SIZE: a message over the server limit bounces 5.3.4 without MAIL; a bad target or another transport defers 4.3.5', async () => {
  await withPeer(lmtpScript(['PIPELINING', 'SIZE 10']), async (peer, target) => {
    const res = await deliverOnce(target, ['a@local.test']);
    assert.deepEqual([res[0]!.outcome, res[0]!.code, res[0]!.dsnStatus, res[0]!.remote], ['bounced', 552, '5.3.4', false]);
    assert.ok(!peer.sessions[0]!.commands.some((c) => c.startsWith('MAIL')));
  });
  const bad = await deliverOnce('no-port-here', ['a@local.test']);
  assert.deepEqual(brief(bad[0]!), ['deferred', 451, '4.3.5']);
  const agent = makeAgent();
  try {
    const other = await agent.deliver({ ...request('x', ['a@local.test']), nextHop: { kind: 'maildir', path: '/nowhere' } });
    assert.deepEqual(brief(other[0]!), ['deferred', 451, '4.3.5']);
  } finally {
    await agent.close();
  }
});

test('a pooled session the server closed (421 at MAIL) is replaced by a new connection once', async () => {
  let mails = 0;
  const script = lmtpScript(LMTP_EXT, {
    reply: (c, s) => (c.startsWith('MAIL') && s.id === 1 && ++mails === 2 ? '421 4.4.2 idle too long\nDROP' : undefined),
    dataReply: (m) => savedEach(m.rcpts),
  });
  await withPeer(script, async (peer, target) => {
    const agent = makeAgent();
    try {
      assert.equal((await agent.deliver(request(target, ['a@local.test'])))[0]!.outcome, 'delivered');
      const again = await agent.deliver(request(target, ['b@local.test']));
      assert.deepEqual(brief(again[0]!), ['delivered', 250, '2.0.0'], again[0]!.diagnostic);
      assert.equal(peer.sessions.length, 2);
    } finally {
      await agent.close();
    }
  });
});

test('recipientsPerTransaction splits a long list into transactions over one session', async () => {
  await withPeer(lmtpScript(LMTP_EXT, { dataReply: (m) => savedEach(m.rcpts) }), async (peer, target) => {
    const rcpts = Array.from({ length: 5 }, (_, i) => `u${i}@local.test`);
    const res = await deliverOnce(target, rcpts, { recipientsPerTransaction: 2 });
    assert.deepEqual(res.map((r) => r.outcome), Array(5).fill('delivered'));
    assert.deepEqual(peer.messages().map((m) => m.rcpts.length), [2, 2, 1]);
    assert.equal(peer.sessions.length, 1);
  });
});
