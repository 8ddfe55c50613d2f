/**
 * Sites (issue 14: destinations grouped by their MX host set): three domains hosted on the same MX
 * share one connection cap and the pooled connections, so with a cap of one their mail goes out
 * over a single connection; a domain with other MX hosts is a site of its own.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { PostlineProcess } from '../helpers/postline-process.js';
import { RawSmtp } from '../helpers/raw-smtp.js';
import { waitFor } from '../helpers/net.js';
import { startCapturePeer, type CapturePeer } from '../helpers/capture-peer.js';
import { startDnsServer, type DnsServerHandle } from '../helpers/dns-server.js';

let dns: DnsServerHandle;
let hop: CapturePeer;
let pl: PostlineProcess;

before(async () => {
  hop = await startCapturePeer();
  dns = await startDnsServer({
    'one.test': { mx: [{ exchange: 'mx1.provider.test', priority: 10 }, { exchange: 'mx2.provider.test', priority: 20 }] },
    'two.test': { mx: [{ exchange: 'MX2.provider.test', priority: 5 }, { exchange: 'mx1.provider.test', priority: 10 }] },
    'three.test': { mx: [{ exchange: 'mx1.provider.test', priority: 10 }, { exchange: 'mx2.provider.test', priority: 20 }] },
    'mx1.provider.test': { a: ['127.0.0.1'] },
    'mx2.provider.test': { a: ['127.0.0.1'] },
  });
  pl = new PostlineProcess({
    config: {
      delivery: {
        dns: { servers: [dns.server], timeoutMs: 2000, tries: 1 }, mxPort: hop.port, tls: 'none', mtaSts: { enabled: false },
        connectionsPerDestination: 1, retry: { initialMs: 60_000, maxMs: 60_000, jitter: 0 }, scanIntervalMs: 100,
      },
    },
  });
  await pl.start();
});

after(async () => {
  await pl?.cleanup();
  await hop?.close();
  await dns?.close();
});

test('domains with the same MX set share one site: one connection carries the mail of all three', async () => {
  const { c } = await RawSmtp.open(pl.port());
  await c.ehlo();
  const rcpts: string[] = [];
  for (let i = 0; i < 30; i++) {
    const to = `u${i}@${['one', 'two', 'three'][i % 3]}.test`;
    rcpts.push(to);
    const r = await c.send('sender@origin.test', [to], Buffer.from(`From: sender@origin.test\r\nSubject: site ${i}\r\n\r\nbody\r\n`));
    assert.equal(r.final?.code, 250, JSON.stringify(r));
  }
  await c.quit();
  await waitFor('30 deliveries', () => hop.messages.length >= 30 || undefined, 30_000);
  assert.deepEqual(hop.messages.map((m) => m.recipients[0]).sort(), rcpts.sort(), 'each message once');
  assert.equal(hop.connections(), 1, 'the site cap of one connection holds across its domains, and the connection is reused');
});
