/**
 * The cost of the client checks on the accept path (a stand-in until the bench harness can bind
 * source addresses): the same load of small messages from an exempt client (127.0.0.1, trusted)
 * and from a checked one (127.0.0.3, with a cached blocklist answer and every rate limit on, set
 * high enough not to refuse). Prints messages per second of both ("FIGURE") for the note; asserts
 * only that every message of the checked client is accepted. Speed is judged by the bench
 * (bench/abuse-overhead.mjs), never here: a timed assertion fails on a busy machine.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { RawSmtp } from '../helpers/raw-smtp.js';
import { startRig, type Rig } from '../helpers/abuse-rig.js';

const rigs: Rig[] = [];
after(async () => { for (const r of rigs) await r.close().catch(() => {}); });

const body = Buffer.from('Subject: t\r\nFrom: a@example.org\r\n\r\n' + 'x'.repeat(1000) + '\r\n');

async function load(port: number, from: string, clients: number, perClient: number): Promise<number> {
  const t0 = performance.now();
  await Promise.all(Array.from({ length: clients }, async () => {
    const { c } = await RawSmtp.open(port, { localAddress: from });
    await c.ehlo();
    for (let i = 0; i < perClient; i++) {
      const r = await c.send('a@example.org', ['known@local.test'], body);
      assert.equal(r.final?.code, 250, JSON.stringify(r));
    }
    await c.quit();
  }));
  return (clients * perClient) / ((performance.now() - t0) / 1000);
}

test('FIGURE accept rate with blocklists (cached) and limits on, checked vs exempt client', async () => {
  const rig = await startRig({ '2.0.0.127.bl.test': { a: ['127.0.0.2'] } }, {
    policy: { dnsbl: { zones: [{ zone: 'bl.test', weight: 1 }] } },
    limits: {
      maxMessagesPerSession: 100_000,
      perClient: { connectionsPerMinute: 1000, messagesPerMinute: 100_000, recipientsPerMinute: 100_000, unknownRecipientsPerMinute: 1000,
        perNetwork: { connectionsPerMinute: 10_000, messagesPerMinute: 1_000_000, recipientsPerMinute: 1_000_000 } },
    },
    timeouts: { greetPauseMs: 0 },
  });
  rigs.push(rig);
  await load(rig.mx, '127.0.0.1', 4, 20);
  await load(rig.mx, '127.0.0.3', 4, 20);
  const rates: Record<string, number[]> = { exempt: [], checked: [] };
  for (let rep = 0; rep < 3; rep++) {
    rates.exempt!.push(await load(rig.mx, '127.0.0.1', 8, 60));
    rates.checked!.push(await load(rig.mx, '127.0.0.3', 8, 60));
  }
  const best = (xs: number[]): number => Math.max(...xs);
  console.log(`FIGURE accept rate (8 sessions x 60 messages of 1 KB, best of 3): exempt ${best(rates.exempt!).toFixed(0)} msg/s, checked (blocklist cached, rates on) ${best(rates.checked!).toFixed(0)} msg/s`);
  assert.equal(rates.checked!.length, 3);
});
