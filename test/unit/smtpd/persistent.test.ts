/**
 * Persistent sessions (issue 15 item 11): limits.maxMessagesPerSession caps untrusted,
 * unauthenticated sessions only; a trusted client (relay.trustedNetworks) sends 1,050 messages over
 * one connection. Uses the real RelayPolicy; messages go to the in-memory sink.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { configSchema } from '../../../src/config/schema.js';
import { silentLogger } from '../../../src/core/log.js';
import { RelayPolicy } from '../../../src/policy/smtp-policy.js';
import { UserStore } from '../../../src/policy/users.js';
import { SmtpServer } from '../../../src/smtpd/server.js';
import { MemorySink, HOST, ehlo, testConfig } from './helpers.js';

async function start(t: { after(fn: () => Promise<void>): void }, relay: object, limits: object = {}) {
  const base = testConfig({ limits: { minFreeBytes: 0, ...limits }, listener: { tls: 'none' } });
  const config = configSchema.parse({ ...base, hostname: HOST, relay });
  const users = new UserStore(config.dataDir); // empty: no users
  const policy = new RelayPolicy({ config, users, freeBytes: async () => Number.MAX_SAFE_INTEGER });
  const sink = new MemorySink();
  const server = new SmtpServer({ config, listener: config.listeners[0]!, sink, policy, logger: silentLogger(), tls: () => undefined });
  const { port } = await server.listen();
  t.after(() => server.close(1000));
  return { port, sink };
}

test('a trusted client sends 1,050 messages over one session (no cap by default)', async (t) => {
  const { port, sink } = await start(t, { trustedNetworks: ['127.0.0.0/8'] });
  const { c } = await ehlo(port);
  const N = 1050;
  for (let i = 0; i < N; i++) {
    c.write(`MAIL FROM:<s@example.org>\r\nRCPT TO:<r@example.net>\r\nDATA\r\n`);
    await c.reply(); await c.reply(); await c.reply();
    c.write(`Subject: ${i}\r\n\r\nm\r\n.\r\n`);
    const r = await c.last();
    if (!r.startsWith('250 ')) assert.fail(`message ${i + 1}: ${r}`);
  }
  assert.match(await c.cmd('QUIT'), /^221 /);
  assert.equal(sink.messages.length, N);
});

test('an untrusted, unauthenticated client is still cut at limits.maxMessagesPerSession (421 4.7.0)', async (t) => {
  const { port, sink } = await start(t, { trustedNetworks: [], localDomains: ['example.net'] }, { maxMessagesPerSession: 3 });
  const { c } = await ehlo(port);
  for (let i = 0; i < 3; i++) {
    c.write('MAIL FROM:<s@example.org>\r\nRCPT TO:<r@example.net>\r\nDATA\r\n');
    assert.match(await c.last(), /^250 /);
    assert.match(await c.last(), /^250 /);
    assert.match(await c.last(), /^354 /);
    assert.match(await c.cmd('m\r\n.'), /^250 /);
  }
  assert.equal(await c.cmd('MAIL FROM:<s@example.org>'), '421 4.7.0 Too many messages in this session, closing connection');
  await c.closed();
  assert.equal(sink.messages.length, 3);
});
