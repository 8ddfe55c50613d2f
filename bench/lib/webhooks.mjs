// The webhooks section (issue 7, "Figures for the note"): Postline restarted with one webhook
// endpoint, the bench's loopback receiver (webhook-receiver.mjs), then
//   (a) throughput: an SMTP load (smtp-source, 2k:10:many for ~--min-seconds); events/s the receiver
//       acknowledged and its lag behind the event log (newest event id - highest id received),
//       sampled over time, until it has caught up;
//   (b) catch-up: the receiver answers 503 for an outage while a paced client sends ~200 msg/s over
//       SMTP; then it answers again, the load stops, and we time how long until the receiver has
//       every event up to the last one in the log (the dispatcher sends in id order and only
//       advances on a 2xx, so "highest id acknowledged >= last id" means all of them arrived).
// Event ids and the backlog come from the queue's event log (read-only SQLite connection, cheap
// enough to sample) and, at a few moments, from `postline webhooks status --json`.
import { randomBytes } from 'node:crypto';
import { BenchSmtpClient, makeMessage } from './smtp-client.mjs';
import { runOnce, calibrateRate, countFor, fmt } from './load.mjs';
import { point } from './profiles.mjs';
import { WebhookReceiver } from './webhook-receiver.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Samples { t (s since t0), lastEventId, maxId (receiver), acked, refused, backlog } every intervalMs. */
function startSampler(server, receiver, t0, intervalMs, floor) {
  const samples = [];
  const take = (extra = {}) => {
    const last = server.lastEventId();
    const c = receiver.counts();
    const s = { t: (Date.now() - t0) / 1000, lastEventId: last, maxId: c.maxId, acked: c.acked, refused: c.refused, ...extra };
    s.backlog = last == null ? null : Math.max(0, last - Math.max(c.maxId, floor)); // floor: the id the receiver was caught up to
    samples.push(s);
    return s;
  };
  const timer = setInterval(take, intervalMs);
  return { samples, take, stop() { clearInterval(timer); } };
}

/**
 * Waits until the receiver's highest acknowledged id reaches `target` (polled every 50 ms).
 * @returns { doneAt (ms epoch) | null on timeout, firstAckAt: first time `acked` grew after the call }
 */
async function waitReceiver(receiver, target, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  const acked0 = receiver.counts().acked;
  let firstAckAt = null;
  for (;;) {
    const c = receiver.counts();
    if (firstAckAt === null && c.acked > acked0) firstAckAt = Date.now();
    if (c.maxId >= target) return { doneAt: Date.now(), firstAckAt: firstAckAt ?? Date.now() };
    if (Date.now() > deadline) return { doneAt: null, firstAckAt };
    await sleep(50);
  }
}

/** The event log's newest id once it has not moved for `quietMs` (bounded by timeoutMs). */
async function settledLastEventId(server, quietMs = 1000, timeoutMs = 30000) {
  const deadline = Date.now() + timeoutMs;
  let last = server.lastEventId(), since = Date.now();
  while (Date.now() - since < quietMs && Date.now() < deadline) {
    await sleep(100);
    const now = server.lastEventId();
    if (now !== last) { last = now; since = Date.now(); }
  }
  return last;
}

/**
 * A paced SMTP client: `sessions` connections, each carrying many messages; message i is due at
 * t0 + i/rate. A session behind schedule sends at once (so the rate is caught up, not lost).
 * Stops at `seconds`. @returns { sent, failed, seconds, ratePerSec, maxBehindMs, errors }
 */
export async function pacedSmtp({ port, rate, seconds, size = 2048, sessions = 10, stopAfter }) {
  const t0 = Date.now();
  const total = Math.ceil(rate * seconds);
  let next = 0, sent = 0, failed = 0, maxBehindMs = 0;
  const errors = new Map();
  const body = makeMessage(size, 'paced').replace(/\r\n$/, '') + '\r\n.\r\n';
  const one = async () => {
    let c = null;
    while (next < total && !stopAfter?.()) {
      const i = next++;
      const due = t0 + (i * 1000) / rate;
      const wait = due - Date.now();
      if (wait > 0) await sleep(wait); else maxBehindMs = Math.max(maxBehindMs, -wait);
      try {
        if (!c) { c = await BenchSmtpClient.connect({ port }); await c.cmd('EHLO paced.source.test'); }
        await c.cmd('MAIL FROM:<bench@source.test>');
        await c.cmd('RCPT TO:<rcpt@sink.test>');
        await c.cmd('DATA', 3);
        await c.write(body);
        const r = await c.reply();
        if (r.code === 250) sent++; else { failed++; errors.set(r.text.slice(0, 60), (errors.get(r.text.slice(0, 60)) ?? 0) + 1); }
      } catch (e) {
        failed++;
        errors.set(String(e.message).slice(0, 60), (errors.get(String(e.message).slice(0, 60)) ?? 0) + 1);
        c?.destroy(); c = null;
        await sleep(100);
      }
    }
    await c?.quit();
  };
  await Promise.all(Array.from({ length: sessions }, one));
  const s = (Date.now() - t0) / 1000;
  return { sent, failed, seconds: s, ratePerSec: sent / s, maxBehindMs, errors: Object.fromEntries(errors), sessions, targetRate: rate, size };
}

/**
 * The whole section. Restarts `server` with the endpoint and, at the end, without it.
 * opts: { outageSeconds, minSeconds, warmupSeconds, paceRate (msg/s), batch (events per request; null = Postline's default), owned: [] for cleanup }
 * @returns the section record (see the report's webhooks table).
 */
export async function webhookSection(ctx, server, sink, opts) {
  const { log } = ctx;
  const secret = 'whsec_' + randomBytes(24).toString('base64');
  const receiver = new WebhookReceiver({ secret });
  opts.owned?.push(receiver);
  await receiver.start();
  const endpoint = { name: 'bench', url: receiver.url, secret: 'whsec_(random, 24 bytes)', ...(opts.batch ? { batch: opts.batch } : {}) };
  server.webhooks = [{ name: 'bench', url: receiver.url, secret, ...(opts.batch ? { batch: opts.batch } : {}) }];
  await server.restart();
  log(`webhooks: postline restarted with endpoint ${receiver.url} (pid ${server.rootPid})`);
  const out = {
    endpoint, receiver: receiver.command,
    config: server.yaml().replace(secret, 'whsec_…'),
    deviation: { key: 'webhooks', value: `[{ name: bench, url: ${receiver.url}, secret, allowPrivate: true${opts.batch ? `, batch: ${opts.batch}` : ''} }]`, default: '[]', reason: 'webhooks section only: one endpoint, the bench\'s loopback receiver (allowPrivate: loopback is refused otherwise)' },
  };
  // The dispatcher starts with cursor = newest event ("from: now"); wait until it stored it.
  for (let i = 0; i < 50; i++) {
    try { if (server.webhookStatus().endpoints[0]?.state !== 'new') break; } catch { /* not yet */ }
    await sleep(200);
  }
  out.statusAtStart = safeStatus(server);

  // (a) throughput
  const p = point(2048, 10, true);
  const cal = await calibrateRate(ctx, server, sink, p, opts.warmupSeconds);
  if (!cal.rate) return { ...out, error: 'SMTP warm-up failed', warmup: cal.runs };
  let count = countFor(cal.rate, opts.minSeconds, p);
  out.discarded = [];
  let a0, id0, tA, samp, run;
  for (let attempt = 0; attempt < 2; attempt++) {
    // let the receiver catch up with the earlier events (warm-up, a short run) before measuring
    await waitReceiver(receiver, await settledLastEventId(server), 300000);
    a0 = receiver.counts();
    id0 = server.lastEventId();
    tA = Date.now();
    samp = startSampler(server, receiver, tA, 500, id0);
    samp.take();
    run = await runOnce(ctx, server, sink, { ...p, count }, attempt ? 'webhooks b' : 'webhooks');
    if (attempt || run.error || run.acceptSeconds >= opts.minSeconds) break;
    samp.stop(); // faster than its warm-up: rescale and run again (once), as the grid does
    out.discarded.push({ reason: `lasted ${fmt(run.acceptSeconds, 2)} s < ${opts.minSeconds} s`, messages: run.messages, acceptedPerSec: run.acceptedPerSec });
    count = Math.ceil(count * (opts.minSeconds / Math.max(run.acceptSeconds, 0.05)) * 1.15);
  }
  const tLoadEnd = tA + run.acceptSeconds * 1000;
  const idEnd = await settledLastEventId(server);
  const statusAfterLoad = safeStatus(server);
  const w = await waitReceiver(receiver, idEnd, Math.max(300000, run.acceptSeconds * 20000));
  samp.take();
  samp.stop();
  const a1 = receiver.counts();
  const events = idEnd - id0;
  const loadSamples = samp.samples.filter((s) => s.t <= run.acceptSeconds + 1e-9);
  const receivedDuringLoad = loadSamples.length ? loadSamples[loadSamples.length - 1].acked - a0.acked : null;
  const lastLoad = loadSamples[loadSamples.length - 1];
  out.throughput = {
    point: '2k:10:many', smtp: { command: run.command, messages: run.messages, acceptSeconds: run.acceptSeconds, acceptedPerSec: run.acceptedPerSec, e2ePerSec: run.e2ePerSec, cpuMsPerMsg: run.cpuMsPerMsg, fsyncsPerMsg: run.fsyncsPerMsg, p99Ms: run.p99Ms, error: run.error },
    events, eventsPerMessage: run.messages ? events / run.messages : null,
    eventsWrittenPerSec: lastLoad && lastLoad.t ? (lastLoad.lastEventId - id0) / lastLoad.t : null,
    receivedDuringLoadPerSec: lastLoad && lastLoad.t ? receivedDuringLoad / lastLoad.t : null,
    caughtUp: w.doneAt !== null,
    totalSeconds: w.doneAt ? (w.doneAt - tA) / 1000 : null,
    eventsPerSec: w.doneAt ? (a1.acked - a0.acked) / ((w.doneAt - tA) / 1000) : null,
    lagAtLoadEndEvents: lastLoad?.backlog ?? null,
    maxLagEvents: Math.max(0, ...samp.samples.map((s) => s.backlog ?? 0)),
    drainAfterLoadSeconds: w.doneAt ? (w.doneAt - tLoadEnd) / 1000 : null,
    duplicates: (a1.acked - a0.acked) - (a1.distinct - a0.distinct),
    badSignatures: a1.badSignature - a0.badSignature,
    statusAfterLoad, samples: samp.samples,
  };
  const T = out.throughput;
  log(`  throughput: ${events} events (${fmt(T.eventsPerMessage, 2)}/msg); receiver ${fmt(T.receivedDuringLoadPerSec, 0)} ev/s during load, ${fmt(T.eventsPerSec, 0)} ev/s until caught up; lag at load end ${T.lagAtLoadEndEvents} events, max ${T.maxLagEvents}; caught up ${fmt(T.drainAfterLoadSeconds, 1)} s after the load`);

  // (b) catch-up after an outage
  const outage = opts.outageSeconds;
  log(`  catch-up: receiver answers 503 for ${outage} s while ~${opts.paceRate} msg/s arrive over SMTP`);
  await waitReceiver(receiver, await settledLastEventId(server), 120000);
  const b0 = receiver.counts();
  const idB0 = server.lastEventId();
  const tB = Date.now();
  const sampB = startSampler(server, receiver, tB, outage > 120 ? 2000 : 1000, idB0);
  receiver.setDown(true);
  sampB.take({ phase: 'down' });
  const sinkBase = sink.count;
  const paced = await pacedSmtp({ port: server.port, rate: opts.paceRate, seconds: outage, sessions: 10 });
  const statusAtRecovery = safeStatus(server);
  receiver.setDown(false);
  const tUp = Date.now();
  const atUp = sampB.take({ phase: 'up' });
  const refusedDuringOutage = receiver.counts().refused - b0.refused;
  log(`  ${paced.sent} messages in ${fmt(paced.seconds, 1)} s (${fmt(paced.ratePerSec, 0)}/s, ${paced.failed} failed); ${refusedDuringOutage} requests answered 503; backlog ${atUp.backlog} events; answering again`);
  const tSink = await sink.waitFor(sinkBase + paced.sent, 300000);
  const target = await settledLastEventId(server);
  const wb = await waitReceiver(receiver, target, Math.max(600000, outage * 3000));
  sampB.take({ phase: 'done' });
  sampB.stop();
  const b1 = receiver.counts();
  const eventsToCatchUp = target - Math.max(atUp.maxId, idB0); // the backlog at recovery plus the events the load's tail still wrote
  out.catchup = {
    outageSeconds: outage, paced, pacedCommand: `bench/lib/webhooks.mjs pacedSmtp: ${paced.sessions} SMTP sessions (many messages each) to 127.0.0.1:${server.port}, message i due at t0 + i/${opts.paceRate} s, ${paced.size} bytes, for ${outage} s`,
    sinkAllDelivered: tSink !== null, sinkDoneAfterUpSeconds: tSink ? (tSink - tUp) / 1000 : null,
    refusedDuringOutage, eventsWrittenDuringOutage: (atUp.lastEventId ?? 0) - idB0, lastEventId: target, backlogAtUp: atUp.backlog, eventsToCatchUp,
    caughtUp: wb.doneAt !== null,
    firstAckAfterUpSeconds: wb.firstAckAt ? (wb.firstAckAt - tUp) / 1000 : null,
    catchupSeconds: wb.doneAt ? (wb.doneAt - tUp) / 1000 : null,
    catchupEventsPerSec: wb.doneAt ? (b1.acked - b0.acked) / ((wb.doneAt - tUp) / 1000) : null,
    sendingEventsPerSec: wb.doneAt && wb.firstAckAt && wb.doneAt > wb.firstAckAt ? (b1.acked - b0.acked) / ((wb.doneAt - wb.firstAckAt) / 1000) : null,
    duplicates: (b1.acked - b0.acked) - (b1.distinct - b0.distinct),
    missing: wb.doneAt ? Math.max(0, (target - idB0) - (b1.distinct - b0.distinct)) : null,
    badSignatures: b1.badSignature - b0.badSignature,
    statusAtRecovery, statusAtEnd: safeStatus(server), samples: sampB.samples,
  };
  const C = out.catchup;
  log(`  caught up ${fmt(C.catchupSeconds, 1)} s after the endpoint came back (first 2xx after ${fmt(C.firstAckAfterUpSeconds, 1)} s: the retry backoff), ${C.eventsToCatchUp} events, ${fmt(C.sendingEventsPerSec, 0)} ev/s while sending; missing ${C.missing}, duplicates ${C.duplicates}, bad signatures ${C.badSignatures}`);

  // back to the bench's plain configuration
  server.webhooks = [];
  await server.restart();
  await receiver.stop();
  return out;
}

function safeStatus(server) {
  try { return server.webhookStatus(); } catch (e) { return { error: String(e.message).slice(0, 300) }; }
}
