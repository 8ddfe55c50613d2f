/**
 * Fault suite, crash scenario (issue 3): a load generator submits messages while `postline serve`
 * is killed with SIGKILL, at random moments and at the named crash points (src/core/crashpoints.ts:
 * after the commit before the 250, after DATA before the reply, before the outcome is written,
 * before and after the DSN is queued), and restarted. At the end every message answered 250 has
 * reached the sink (or, for the ones that bounce, its DSN has reached the sender) at least once.
 * Duplicates are counted: only messages in flight at a kill may repeat.
 *
 * Then the event log (outbox, issue 7): every recipient at the sink has its recipient.delivered
 * event and every bounce its recipient.bounced event; no delivered event names a recipient the sink
 * never saw, nor a bounced event a message that did not bounce; every queued message has its
 * message.received event; ids only grow.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { PostlineProcess } from '../helpers/postline-process.js';
import { startReceivers } from './lib/receivers.js';
import { waitFor } from '../helpers/net.js';
import { LoadGenerator } from './lib/load.js';
import { LONG, randInt, report, sleep } from './lib/profile.js';
import { countByNumber, figures, missing } from './lib/tally.js';
import { join } from 'node:path';
import { openSideDatabase } from '../../src/spool/sqlite/side-db.js';
import { queryEvents } from '../../src/spool/sqlite/event-log.js';
import type { StoredEvent } from '../../src/events/record.js';

const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
});

/** Each kill uses the next mode: an outside SIGKILL at a random moment, or one crash point switched on. */
const MODES = [
  'random',
  'after-commit-before-reply:0.15',
  'delivery-after-data:0.15',
  'delivery-before-outcome:0.15',
  'random',
  'dsn-before-queue:0.5',
  'dsn-after-queue:0.5',
];
const KILLS = LONG ? 28 : MODES.length;
const isBounce = (n: number): boolean => n % 10 === 7;

test(`crash: ${KILLS} SIGKILLs under load lose no message answered 250`, { timeout: LONG ? 900_000 : 120_000 }, async () => {
  const rx = await startReceivers();
  const { sink, home } = rx;
  cleanups.push(() => rx.cleanup());
  const pl = new PostlineProcess({
    config: {
      log: { level: 'warn', format: 'json' },
      delivery: {
        routes: rx.routes,
        retry: { initialMs: 300, maxMs: 1000, multiplier: 1, jitter: 0 },
        scanIntervalMs: 100,
        connectTimeoutMs: 2000,
        commandTimeoutMs: 5000,
      },
    },
  });
  cleanups.push(() => pl.cleanup());
  const load = new LoadGenerator({ port: () => pl.port(), concurrency: 4, maxMessages: LONG ? 20_000 : 3000 });
  const kinds = new Map<string, number>();
  let startCrashes = 0;

  /** Starts the server; a crash point may fire while it starts (deliveries begin before listening). */
  const startRobust = async (): Promise<void> => {
    for (let i = 0; i < 20; i++) {
      try {
        await pl.start();
        return;
      } catch (err) {
        if (pl.running()) throw err;
        startCrashes++;
        await pl.kill();
      }
    }
    throw new Error('postline did not come up in 20 starts');
  };

  await pl.writeConfig();
  let kills = 0;
  load.start();
  for (let k = 0; k < KILLS; k++) {
    const mode = MODES[k % MODES.length]!;
    pl.env = mode === 'random' ? {} : { POSTLINE_CRASHPOINT: mode };
    const before = pl.output.length;
    await startRobust();
    const budget = mode === 'random' ? randInt(200, 1500) : 6000;
    const t0 = Date.now();
    while (pl.running() && Date.now() - t0 < budget) await sleep(20);
    const fired = /crash point (\S+) fired/.exec(pl.output.slice(before));
    const kind = fired ? fired[1]! : 'sigkill';
    kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
    await pl.kill();
    kills++;
  }
  await load.stop();
  pl.env = {};
  await startRobust();

  const done = () => {
    const delivered = countByNumber([sink], /<?m(\d+)@sink\.test/);
    const dsns = countByNumber([home], /<?s(\d+)@origin\.test/);
    return missing(load.answered, delivered, dsns, isBounce).length === 0 ? { delivered, dsns } : undefined;
  };
  let final: { delivered: Map<number, number>; dsns: Map<number, number> } | undefined;
  try {
    final = await waitFor('every answered message at the sink', done, LONG ? 180_000 : 45_000, 250);
  } catch { /* reported below */ }
  const delivered = final?.delivered ?? countByNumber([sink], /<?m(\d+)@sink\.test/);
  const dsns = final?.dsns ?? countByNumber([home], /<?s(\d+)@origin\.test/);
  const f = figures(load.answered, delivered, dsns, isBounce);
  const unansweredDelivered = [...delivered.keys()].filter((n) => !load.answered.has(n)).length;
  report('crash', {
    ...f, kills, startCrashes, sent: load.sent, cut: load.cut.size, refused: load.refused.size, unansweredDelivered,
    killsBy: [...kinds].map(([k, v]) => `${k}:${v}`).join('|'),
  });
  const lost = missing(load.answered, delivered, dsns, isBounce);
  assert.deepEqual(lost.slice(0, 20), [], `answered 250 but lost: ${lost.length}`);
  assert.ok(kills >= KILLS);
  assert.ok(f.answered > 0 && f.bounced > 0, 'the load reached the server and some mail bounced');
  // Only in-flight messages may repeat: at most a few per kill (4 clients, delivery concurrency).
  assert.ok(f.duplicated <= (kills + startCrashes) * 20, `too many duplicates: ${f.duplicated}`);
  await pl.stop();
  checkEvents(join(pl.dir, 'var'), delivered, dsns);
});

/** The event log agrees with what the receivers saw (see the header). */
function checkEvents(dataDir: string, delivered: Map<number, number>, dsns: Map<number, number>): void {
  const db = openSideDatabase(dataDir, { readonly: true });
  const events: StoredEvent[] = [];
  try {
    for (let after = 0, i = 0; i < 10_000; i++) {
      const batch = queryEvents(db, { after, limit: 10_000 });
      events.push(...batch);
      if (batch.length < 10_000) break;
      after = batch[batch.length - 1]!.id;
    }
  } finally {
    db.close();
  }
  const num = (re: RegExp, s: string | undefined): number | undefined => { const m = s ? re.exec(s) : null; return m ? Number(m[1]) : undefined; };
  const deliveredEv = new Set<number>();
  const bouncedEv = new Set<number>();
  const receivedEv = new Set<number>();
  let lastId = 0;
  for (const e of events) {
    assert.ok(e.id > lastId, `event ids grow (${e.id} after ${lastId})`);
    lastId = e.id;
    if ((e.type === 'recipient.delivered' || e.type === 'recipient.relayed') && e.mailFrom === '') {
      const n = num(/^s(\d+)@origin\.test$/, e.recipient);
      assert.ok(n !== undefined && dsns.has(n), `delivered event for the DSN to ${e.recipient}, which never arrived`);
    } else if (e.type === 'recipient.delivered' || e.type === 'recipient.relayed') {
      const n = num(/^m(\d+)@sink\.test$/, e.recipient);
      assert.ok(n !== undefined && delivered.has(n), `delivered event for ${e.recipient}, which the sink never received`);
      deliveredEv.add(n);
    } else if (e.type === 'recipient.bounced') {
      const n = num(/^b(\d+)@bounce\.test$/, e.recipient);
      assert.ok(n !== undefined && dsns.has(n), `bounced event for ${e.recipient}, whose DSN never arrived`);
      bouncedEv.add(n);
    } else if (e.type === 'message.received') {
      const n = num(/<torture-(\d+)@origin\.test>/, e.messageId);
      if (n !== undefined) receivedEv.add(n);
    }
  }
  const noDelivered = [...delivered.keys()].filter((n) => !deliveredEv.has(n));
  assert.deepEqual(noDelivered.slice(0, 20), [], `recipients at the sink without a delivered event: ${noDelivered.length}`);
  const noBounced = [...dsns.keys()].filter((n) => !bouncedEv.has(n));
  assert.deepEqual(noBounced.slice(0, 20), [], `bounces without a bounced event: ${noBounced.length}`);
  const noReceived = [...delivered.keys(), ...dsns.keys()].filter((n) => !receivedEv.has(n));
  assert.deepEqual(noReceived.slice(0, 20), [], `messages delivered or bounced without a received event: ${noReceived.length}`);
  console.log(`# crash-events: ${events.length} events, ${deliveredEv.size} delivered, ${bouncedEv.size} bounced, ${receivedEv.size} received`);
}
