/**
 * Fault suite, backpressure (issue 3): with the receiver down the queue grows; past
 * limits.queueHighWater the reply to MAIL waits limits.inFlowDelayMs (like Postfix in_flow_delay)
 * and at twice the mark MAIL gets 452 4.3.1, so the queue stays bounded however hard clients push.
 * When the receiver returns, everything answered 250 is delivered.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { PostlineProcess } from '../helpers/postline-process.js';
import { SmtpSink } from '../helpers/smtp-sink.js';
import { freePort, waitFor } from '../helpers/net.js';
import { LoadGenerator, plan } from './lib/load.js';
import { LONG, report, sleep } from './lib/profile.js';
import { countByNumber, figures } from './lib/tally.js';

const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
});

test('backpressure: the queue stays bounded while the receiver is down', { timeout: 120_000 }, async () => {
  const sinkPort = await freePort();
  const highWater = 20;
  const delayMs = 300;
  const concurrency = 4;
  const pl = new PostlineProcess({
    config: {
      log: { level: 'warn', format: 'json' },
      limits: { queueHighWater: highWater, inFlowDelayMs: delayMs },
      delivery: { relayhost: { host: '127.0.0.1', port: sinkPort, tls: 'none' }, retry: { initialMs: 60_000, maxMs: 60_000, jitter: 0 }, scanIntervalMs: 100, connectTimeoutMs: 1000 },
    },
  });
  cleanups.push(() => pl.cleanup());
  await pl.start();
  // Everything goes to the one relayhost (even the n % 10 === 7 ones), so count by any number.
  const load = new LoadGenerator({ port: () => pl.port(), concurrency, maxMessages: 100_000, plan: (n) => ({ ...plan(n), to: `m${n}@sink.test` }) });
  const t0 = Date.now();
  load.start();
  const pushMs = LONG ? 30_000 : 6000;
  let maxQueue = 0;
  const samples: number[] = [];
  while (Date.now() - t0 < pushMs) {
    await sleep(500);
    maxQueue = Math.max(maxQueue, load.answered.size); // nothing is delivered: the queue is what was answered
    samples.push(load.answered.size);
  }
  await load.stop();
  const queued = load.answered.size;
  const refused452 = [...load.refused.values()].filter((c) => c === 452).length;
  assert.ok(queued <= 2 * highWater + concurrency, `queue bounded: ${queued} messages with high water ${highWater}`);
  assert.ok(refused452 > 0, 'past twice the high-water mark MAIL gets 452');

  const sink = await new SmtpSink().start(sinkPort);
  cleanups.push(() => sink.cleanup());
  await pl.cli(['queue', 'flush']);
  const delivered = await waitFor('every answered message delivered', () => {
    const got = countByNumber([sink], /<?m(\d+)@sink\.test/);
    return [...load.answered].every((x) => got.has(x)) ? got : undefined;
  }, 30_000);
  const f = figures(load.answered, delivered, new Map(), () => false);
  report('backpressure', { ...f, highWater, inFlowDelayMs: delayMs, pushMs, maxQueue: Math.max(maxQueue, queued), refused452, attempts: load.sent, queueSamples: samples.filter((_, i) => i % Math.ceil(samples.length / 12) === 0).join('|') });
  assert.equal(f.lost, 0);
  await pl.stop();
});
