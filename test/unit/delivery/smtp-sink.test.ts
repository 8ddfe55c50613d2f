/** Delivery to a real receiver: Postfix smtp-sink on loopback, checking the bytes that arrive (RFC 5321). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, existsSync, statSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { configSchema } from '../../../src/config/schema.js';
import { silentLogger } from '../../../src/core/log.js';
import { SmtpDeliveryAgent } from '../../../src/delivery/smtp-agent.js';
import type { Resolver } from '../../../src/dns/types.js';

const SINK = '/usr/sbin/smtp-sink';

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

async function waitListening(port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ host: '127.0.0.1', port }, () => { s.destroy(); resolve(true); });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    await sleep(50);
  }
  throw new Error('smtp-sink did not start');
}

const noDns: Resolver = {
  resolveMx: () => Promise.reject(new Error('unused')),
  resolve4: () => Promise.reject(new Error('unused')),
  resolve6: () => Promise.reject(new Error('unused')),
};

test('delivers to Postfix smtp-sink; the message bytes arrive intact', async () => {
  assert.ok(existsSync(SINK), 'Postfix smtp-sink is installed');
  const dir = mkdtempSync(join(tmpdir(), 'postline-sink-'));
  const port = await freePort();
  const sink = spawn(SINK, ['-u', 'root', '-d', join(dir, '%M.'), `127.0.0.1:${port}`, '10'], { stdio: 'ignore' });
  const agent = new SmtpDeliveryAgent({
    config: configSchema.parse({ hostname: 'client.test', listeners: [{ name: 'mx', port: 1 }], delivery: { tls: 'none', commandTimeoutMs: 5000, connectTimeoutMs: 5000 } }),
    resolver: noDns, logger: silentLogger(), ownListeners: [],
  });
  try {
    await waitListening(port);
    const lines = ['From: a@src.test', 'To: b@dst.test', 'Subject: sink test', '', '.starts with a dot', '..two dots', 'x'.repeat(900), 'end'];
    const body = Buffer.from(lines.join('\r\n') + '\r\n');
    const res = await agent.deliver({
      queueId: 'QSINK', mailFrom: 'a@src.test', bodyType: '7BIT', smtputf8: false, size: body.length,
      recipients: [{ idx: 0, address: 'b@dst.test' }, { idx: 1, address: 'c@dst.test' }],
      nextHop: { kind: 'host', host: '127.0.0.1', port, tls: 'none' },
      openBody: () => Readable.from([body.subarray(0, 50), body.subarray(50)]),
    });
    assert.deepEqual(res.map((r) => r.outcome), ['delivered', 'delivered']);
    let files: string[] = [];
    for (let i = 0; i < 100 && files.length === 0; i++) {
      files = readdirSync(dir).filter((f) => statSync(join(dir, f)).size > 0);
      if (files.length === 0) await sleep(50);
    }
    assert.equal(files.length, 1);
    // smtp-sink writes the dump with LF line endings, after its own X-* and Received lines.
    const dump = readFileSync(join(dir, files[0]!), 'latin1');
    assert.ok(dump.includes(body.toString('latin1').replace(/\r\n/g, '\n')), 'dump holds the exact message (dot-unstuffed)');
    assert.match(dump, /^X-Mail-Args: <a@src\.test>/m);
    assert.match(dump, /^X-Rcpt-Args: <b@dst\.test>/m);
    assert.match(dump, /^X-Rcpt-Args: <c@dst\.test>/m);
  } finally {
    await agent.close();
    sink.kill();
    rmSync(dir, { recursive: true, force: true });
  }
});
