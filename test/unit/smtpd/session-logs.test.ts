/**
 * What the session logs for operators (issue 15 item 10): a failed AUTH at warn level with the
 * client IP, port, listener and user (usable by fail2ban, with the README's filter), and a
 * `session start` line with `listener` once.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { SmtpServer } from '../../../src/smtpd/server.js';
import { MemorySink, TestPolicy, ehlo, testConfig, testTls } from './helpers.js';

const b64 = (s: string) => Buffer.from(s).toString('base64');

/** The failregex of the README's fail2ban filter, with <HOST> as fail2ban expands it (roughly). */
const FAILREGEX = /"client":"(?<host>[0-9a-fA-F.:]+)".*"msg":"authentication failed"/;

test('authentication failed: warn, client IP and port, listener, user; fail2ban regex matches; session start has listener once', async (t) => {
  const lines: string[] = [];
  const out = new Writable({ write(chunk, _enc, cb) { lines.push(...String(chunk).split('\n').filter(Boolean)); cb(); } });
  const logger = pino({ level: 'info', base: undefined, timestamp: pino.stdTimeFunctions.isoTime }, out);
  const config = testConfig({ listener: { name: 'submission', role: 'submission', allowPlaintextAuth: true } });
  const tls = testTls();
  const server = new SmtpServer({ config, listener: config.listeners[0]!, sink: new MemorySink(), policy: new TestPolicy(), logger, tls: () => tls });
  const { port } = await server.listen();
  t.after(() => server.close(1000));
  const { c } = await ehlo(port);
  assert.match(await c.cmd('AUTH PLAIN ' + b64('\0alice\0wrong')), /^535 5\.7\.8/);
  assert.match(await c.cmd('AUTH LOGIN'), /^334 /);
  assert.match(await c.cmd(b64('mallory')), /^334 /);
  assert.match(await c.cmd(b64('guess')), /^535 5\.7\.8/);
  assert.match(await c.cmd('AUTH PLAIN ' + b64('root\0alice\0secret')), /^535 5\.7\.8/, 'another authzid');
  const localPort = (c.socket.address() as { port: number }).port;
  c.destroy();
  const failed = lines.filter((l) => l.includes('"authentication failed"')).map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(failed.length, 3);
  for (const f of failed) {
    assert.equal(f.level, 40, 'warn');
    assert.equal(f.client, '127.0.0.1');
    assert.equal(f.port, localPort);
    assert.equal(f.listener, 'submission');
    assert.ok(f.sid);
  }
  assert.deepEqual(failed.map((f) => [f.user, f.mech]), [['alice', 'PLAIN'], ['mallory', 'LOGIN'], ['alice', 'PLAIN']]);
  const raw = lines.find((l) => l.includes('"authentication failed"'))!;
  assert.equal(FAILREGEX.exec(raw)?.groups?.host, '127.0.0.1');
  const start = lines.find((l) => l.includes('"session start"'))!;
  assert.equal(start.split('"listener"').length - 1, 1, start);
  assert.match(start, /"client":"127\.0\.0\.1"/);
});
