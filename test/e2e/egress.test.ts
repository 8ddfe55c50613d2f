/**
 * Source IP pools end to end (issue 14 "Source IP pools"): sources on loopback addresses of
 * 127.0.0.0/8 with their EHLO names, a pool by sender domain, a warm-up cap; the receiver sees
 * the chosen source's address and name, and each message arrives once.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { PostlineProcess } from '../helpers/postline-process.js';
import { RawSmtp } from '../helpers/raw-smtp.js';
import { waitFor } from '../helpers/net.js';
import { startCapturePeer, type CapturePeer } from '../helpers/capture-peer.js';

let hop: CapturePeer;
let pl: PostlineProcess;
const today = new Date().toISOString().slice(0, 10);

before(async () => {
  hop = await startCapturePeer();
  pl = new PostlineProcess({
    config: {
      delivery: { routes: [{ domain: 'dest.test', host: '127.0.0.1', port: hop.port, tls: 'none' }], scanIntervalMs: 100, retry: { initialMs: 60_000, maxMs: 60_000, jitter: 0 } },
      egress: {
        sources: [
          { name: 'two', address: '127.0.0.2', ehloName: 'out2.postline.test' },
          { name: 'three', address: '127.0.0.3', ehloName: 'out3.postline.test' },
          { name: 'fresh', address: '127.0.0.4', ehloName: 'out4.postline.test', warmup: { start: today, perDay: [3] } },
        ],
        pools: [
          { name: 'main', sources: [{ source: 'two' }, { source: 'three' }] },
          { name: 'warm', sources: [{ source: 'fresh' }] },
        ],
        rules: [{ senderDomain: 'bulk.test', pool: 'warm' }],
        defaultPool: 'main',
      },
    },
  });
  await pl.start();
});

after(async () => {
  await pl?.cleanup();
  await hop?.close();
});

async function send(from: string, rcpt: string, n: number): Promise<void> {
  const { c } = await RawSmtp.open(pl.port());
  try {
    await c.ehlo();
    for (let i = 0; i < n; i++) {
      const r = await c.send(from, [rcpt], Buffer.from(`From: ${from}\r\nSubject: egress ${i}\r\n\r\nbody ${i}\r\n`));
      assert.equal(r.final?.code, 250, JSON.stringify(r));
    }
  } finally {
    await c.quit();
  }
}

test('the default pool spreads mail over its sources; the receiver sees each source\'s address and EHLO name', async () => {
  await send('app@origin.test', 'a@dest.test', 30);
  await waitFor('30 deliveries', () => hop.messages.filter((m) => m.recipients[0] === 'a@dest.test').length >= 30 || undefined, 30_000);
  const got = hop.messages.filter((m) => m.recipients[0] === 'a@dest.test');
  assert.equal(got.length, 30, 'each message once');
  const seen = new Set(got.map((m) => `${m.clientAddress} ${m.ehlo}`));
  assert.deepEqual([...seen].sort(), ['127.0.0.2 out2.postline.test', '127.0.0.3 out3.postline.test']);
});

test('a warming source sends no more than its cap today; the rest waits in the queue', async () => {
  await send('news@bulk.test', 'b@dest.test', 5);
  await waitFor('3 deliveries', () => hop.messages.filter((m) => m.recipients[0] === 'b@dest.test').length >= 3 || undefined, 30_000);
  await new Promise((r) => setTimeout(r, 1500));
  const got = hop.messages.filter((m) => m.recipients[0] === 'b@dest.test');
  assert.equal(got.length, 3);
  assert.ok(got.every((m) => m.clientAddress === '127.0.0.4' && m.ehlo === 'out4.postline.test'));
  const list = await pl.cli(['queue', 'list']);
  assert.equal(list.code, 0, list.stderr);
  assert.equal((list.stdout.match(/b@dest\.test/g) ?? []).length, 2, list.stdout);
});
