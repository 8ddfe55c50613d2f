/**
 * Signed per-recipient return paths end to end (issue 10 §2): with bounces.domain set, mail from
 * a trusted client leaves with one transaction per recipient, each MAIL FROM a return path that
 * names its queue entry and recipient; mail from outside keeps its reverse-path.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { PostlineProcess } from '../helpers/postline-process.js';
import { RawSmtp } from '../helpers/raw-smtp.js';
import { waitFor } from '../helpers/net.js';
import { startCapturePeer, type CapturePeer } from '../helpers/capture-peer.js';
import { ReturnPaths } from '../../src/bounce/return-path.js';
import { loadOrCreateSecret } from '../../src/core/secret-file.js';
import { join } from 'node:path';

let hop: CapturePeer;
let pl: PostlineProcess;

before(async () => {
  hop = await startCapturePeer();
  pl = new PostlineProcess({
    config: {
      bounces: { domain: 'bounces.origin.test' },
      relay: { trustedNetworks: ['127.0.0.1/32'], localDomains: ['local.test'] },
      local: { routes: [{ match: 'local.test', transport: 'smtp', target: `127.0.0.1:${hop.port}` }] },
      delivery: { routes: [{ domain: 'dest.test', host: '127.0.0.1', port: hop.port, tls: 'none' }], scanIntervalMs: 100, retry: { initialMs: 60_000, maxMs: 60_000, jitter: 0 } },
    },
  });
  await pl.start();
});

after(async () => {
  await pl?.cleanup();
  await hop?.close();
});

async function send(from: string, rcpts: string[], localAddress?: string): Promise<string> {
  const { c } = await RawSmtp.open(pl.port(), localAddress ? { localAddress } : {});
  try {
    await c.ehlo();
    const r = await c.send(from, rcpts, Buffer.from(`From: ${from}\r\nSubject: rp\r\n\r\nbody\r\n`));
    assert.equal(r.final?.code, 250, JSON.stringify(r));
    return /queued as (\S+)/.exec(r.final!.text)?.[1] ?? '';
  } finally {
    await c.quit();
  }
}

test('mail of a trusted client: one transaction per recipient, each with its own signed return path', async () => {
  await send('app@origin.test', ['a@dest.test', 'b@dest.test', 'c@dest.test']);
  await waitFor('three transactions', () => hop.messages.length >= 3 || undefined, 20_000);
  const paths = new ReturnPaths({ domain: 'bounces.origin.test', key: loadOrCreateSecret(join(pl.dir, 'var'), 'return-path.key') });
  const byRcpt = new Map(hop.messages.map((m) => [m.recipients.join(','), m.mailFrom]));
  const ids = new Set<string>();
  ['a@dest.test', 'b@dest.test', 'c@dest.test'].forEach((rcpt, idx) => {
    const from = byRcpt.get(rcpt);
    assert.ok(from, `a transaction for ${rcpt} alone`);
    const t = paths.decode(from!);
    assert.ok(t, `${from} is a valid return path`);
    assert.equal(t!.idx, idx);
    ids.add(t!.queueId);
  });
  assert.equal(ids.size, 1, 'all name the same queue entry');
});

test('mail from outside to a local domain keeps its own reverse-path', async () => {
  hop.messages.length = 0;
  await send('someone@elsewhere.test', ['x@local.test', 'y@local.test'], '127.0.0.2');
  const m = await waitFor('delivery', () => hop.messages[0], 20_000);
  assert.equal(m.mailFrom, 'someone@elsewhere.test');
  assert.deepEqual(m.recipients, ['x@local.test', 'y@local.test'], 'one transaction for both');
});
