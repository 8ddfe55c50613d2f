/**
 * The LMTP agent against a real Dovecot (RFC 2033): over TCP and over its unix socket, BDAT and
 * DATA, one reply per accepted recipient after the data (delivered, over quota 552 5.2.2 and
 * 452 4.2.2, unknown user 550 5.1.1 at RCPT), the Maildir files on disk byte for byte, and one
 * session reused for several messages (Dovecot's own log counts the connections).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { configSchema } from '../../../src/config/schema.js';
import { silentLogger } from '../../../src/core/log.js';
import type { DeliveryRequest, RecipientResult } from '../../../src/delivery/types.js';
import { LmtpDeliveryAgent } from '../../../src/local/lmtp-agent.js';
import { dovecotBinary, startDovecot, withoutDovecotFields, type DovecotHandle } from '../../helpers/dovecot.js';
import { waitFor } from '../../helpers/net.js';

const skip = dovecotBinary() ? false : 'dovecot is not installed';
let dc: DovecotHandle;

before(async () => {
  if (skip) return;
  dc = await startDovecot({
    users: [{ name: 'alice' }, { name: 'bob' }, { name: 'full', quota: '1K' }, { name: 'temp', quota: '1K', tempfail: true }, { name: 'carol' }],
  });
});
after(async () => { await dc?.stop(); });

function makeAgent(lmtp: Record<string, unknown> = {}): LmtpDeliveryAgent {
  const config = configSchema.parse({
    hostname: 'postline.test',
    listeners: [{ name: 'mx', port: 1 }],
    local: { lmtp: { connectTimeoutMs: 3000, commandTimeoutMs: 5000, dataDoneTimeoutMs: 10_000, idleTimeoutMs: 5000, ...lmtp } },
  });
  return new LmtpDeliveryAgent({ config, logger: silentLogger() });
}

/** A message over 1 KiB (so the 1K quota users are over it), with leading dots and 8-bit text. */
function message(n: number): Buffer {
  const lines = [
    'From: Sender <sender@src.test>', 'To: alice@local.test', `Subject: lmtp test ${n}`, 'Message-ID: <m' + n + '@src.test>',
    'MIME-Version: 1.0', 'Content-Type: text/plain; charset=utf-8', 'Content-Transfer-Encoding: 8bit', '',
    '.a line that starts with a dot', '..two dots', '.', 'Grüße aus Köln',
    ...Array.from({ length: 30 }, (_, i) => `line ${i} ${'x'.repeat(60)}`),
  ];
  return Buffer.from(lines.join('\r\n') + '\r\n', 'utf8');
}

function request(target: string, rcpts: string[], body: Buffer, queueId = 'Q1'): DeliveryRequest {
  return {
    queueId, mailFrom: 'sender@src.test', bodyType: '8BITMIME', smtputf8: false, size: body.length,
    recipients: rcpts.map((address, idx) => ({ idx, address })),
    nextHop: { kind: 'lmtp', target }, openBody: () => Readable.from([body]),
  };
}

const brief = (r: RecipientResult) => [r.outcome, r.code, r.dsnStatus];

/** The one delivered file of `user` whose Subject names message `n`, as the sender wrote it. */
function deliveredCopy(user: string, n: number): Buffer {
  const file = dc.messages(user).map((f) => readFileSync(f)).find((b) => b.includes(`Subject: lmtp test ${n}\r\n`));
  assert.ok(file, `a copy of message ${n} in ${user}'s Maildir`);
  return withoutDovecotFields(file);
}

async function checkPerRecipient(target: string, n: number, lmtp: Record<string, unknown>): Promise<RecipientResult[]> {
  const agent = makeAgent(lmtp);
  try {
    const body = message(n);
    const res = (await agent.deliver(request(target, ['alice@local.test', 'full@local.test', 'ghost@local.test', 'bob@local.test', 'temp@local.test'], body))).sort((a, b) => a.idx - b.idx);
    assert.equal(res.length, 5);
    assert.deepEqual(brief(res[0]!), ['delivered', 250, '2.0.0']);
    assert.deepEqual(brief(res[1]!), ['bounced', 552, '5.2.2'], res[1]!.diagnostic);
    assert.match(res[1]!.diagnostic, /Quota exceeded/);
    assert.deepEqual(brief(res[2]!), ['bounced', 550, '5.1.1'], res[2]!.diagnostic);
    assert.match(res[2]!.diagnostic, /ghost@local\.test/);
    assert.deepEqual(brief(res[3]!), ['delivered', 250, '2.0.0']);
    assert.deepEqual(brief(res[4]!), ['deferred', 452, '4.2.2'], res[4]!.diagnostic);
    for (const r of res) assert.equal(r.remote, true);
    for (const r of res) assert.equal(r.dsnPassedOn, undefined, 'Dovecot offers no DSN: a success notice is ours (Action: delivered)');
    assert.deepEqual(deliveredCopy('alice', n), body, 'alice got the message byte for byte');
    assert.deepEqual(deliveredCopy('bob', n), body, 'bob got the message byte for byte');
    assert.equal(dc.messages('full').length, 0);
    assert.equal(dc.messages('temp').length, 0);
    return res;
  } finally {
    await agent.close();
  }
}

test('TCP with BDAT: one reply per recipient; two delivered byte for byte, 552 5.2.2 and 452 4.2.2 over quota, 550 5.1.1 unknown', { skip }, async () => {
  const res = await checkPerRecipient(dc.tcpTarget, 1, { chunking: true });
  assert.equal(res[0]!.remoteMta, `127.0.0.1[127.0.0.1]:${dc.port}`);
  assert.match(dc.log(), /lmtp\(alice\).*saved mail to INBOX/);
});

test('unix socket with DATA (dot-stuffed): the same per-recipient answers and bytes', { skip }, async () => {
  const res = await checkPerRecipient(dc.unixTarget, 2, { chunking: false });
  assert.equal(res[0]!.remoteMta, `localhost[${dc.socketPath}]`);
  assert.match(dc.log(), /Connect from local/);
});

test('LHLO carries local.lmtp.lhloName; Dovecot records it in its Received field', { skip }, async () => {
  const agent = makeAgent({ lhloName: 'lhlo-name.test' });
  try {
    const res = await agent.deliver(request(dc.tcpTarget, ['carol@local.test'], message(3)));
    assert.deepEqual(brief(res[0]!), ['delivered', 250, '2.0.0']);
    const file = readFileSync(dc.messages('carol')[0]!).toString('latin1');
    assert.match(file, /Received: from lhlo-name\.test/);
  } finally {
    await agent.close();
  }
});

test('a session is reused for several messages (RSET between), up to messagesPerConnection', { skip }, async () => {
  const before0 = dc.connections();
  const agent = makeAgent({ messagesPerConnection: 1000 });
  try {
    for (let i = 0; i < 5; i++) {
      const res = await agent.deliver(request(dc.tcpTarget, ['bob@local.test'], message(100 + i), `R${i}`));
      assert.deepEqual(brief(res[0]!), ['delivered', 250, '2.0.0']);
    }
    assert.deepEqual(agent.connections(), { open: 1, idle: 1 });
  } finally {
    await agent.close();
  }
  const one = await waitFor('the connection in the log', () => dc.connections() - before0 >= 1 && dc.connections() - before0);
  assert.equal(one, 1, 'five messages over one LMTP session');
  for (let i = 0; i < 5; i++) deliveredCopy('bob', 100 + i);

  const before1 = dc.connections();
  const limited = makeAgent({ messagesPerConnection: 2 });
  try {
    for (let i = 0; i < 5; i++) {
      const res = await limited.deliver(request(dc.unixTarget, ['bob@local.test'], message(200 + i), `S${i}`));
      assert.equal(res[0]!.outcome, 'delivered');
    }
  } finally {
    await limited.close();
  }
  await waitFor('three connections in the log', () => dc.connections() - before1 >= 3);
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(dc.connections() - before1, 3, 'two messages per session: 2 + 2 + 1');
});

test('the scheduler limit wins when lower: shaping.messagesPerConnection 1 opens a session per message', { skip }, async () => {
  const before0 = dc.connections();
  const agent = makeAgent();
  try {
    for (let i = 0; i < 3; i++) {
      const req = { ...request(dc.tcpTarget, ['carol@local.test'], message(300 + i), `T${i}`), shaping: { messagesPerConnection: 1, beforeConnect: async () => {} } };
      assert.equal((await agent.deliver(req))[0]!.outcome, 'delivered');
    }
  } finally {
    await agent.close();
  }
  await waitFor('three connections', () => dc.connections() - before0 >= 3);
});
