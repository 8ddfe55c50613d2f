/**
 * Fault suite, power loss (issue 16). `postline serve` runs at its defaults under the synclog
 * LD_PRELOAD shim (shim/synclog.c), which logs every fsync/fdatasync of a file (its size then),
 * every directory fsync (the entries it held) and every write. Twenty SMTP sessions send mixed
 * mail (small inline bodies, bodies near the 128 KiB inline limit, and 140-400 KiB bodies that
 * spill to files in spool/) to a sink that accepts (sink.test), to one that defers every RCPT
 * (defer.test: that mail stays queued, the retry default is 5 minutes) or to both; one webhook
 * endpoint posts every event to a receiver here. At a random moment the process group gets
 * SIGKILL, in three kinds of round:
 *   - load (rounds 1, 4, ...): during the load, when acceptance commits fsync every few ms;
 *   - draining (2, 5, ...): after the load ended, 30-230 ms after the sink got its last message,
 *     when the backlog's last outcomes and removals are relaxed commits that the writer's idle
 *     flush makes durable within 0.5 s (no file bodies in round 2, 8, ...: a file body's removal
 *     fsyncs, and so does every batch it is in);
 *   - restart (3, 6, ...): a draining kill, a restart still under the shim (a plain crash keeps
 *     the page cache), and the power loss 0.1-0.6 s into the restart.
 * Then the store's files are rewritten into what the disk could hold after a power cut at that
 * moment (lib/synclog.ts), Postline is started without the shim (recovery), delivers, settles and
 * is stopped. The rounds share one data directory. After each round:
 *   (a) nothing answered 250 is lost: every sink recipient of every message answered 250 so far
 *       reached the sink (again, if its delivery was rolled back) or is still queued, waiting for
 *       the message's next attempt (set minutes ahead by its deferring group while the sink group
 *       was cut off by the kill); every defer recipient is still queued; every such message has
 *       exactly one message.received event; no row is quarantined (a row that outlived its body
 *       file, or a body cut short, would be) and quarantine/ is empty;
 *   (b) no published event was rolled back: every event the webhook receiver ever got is in the
 *       log with the same id, type, queue ID, recipient and time; no id ever names two different
 *       events (a published event rolled back would have its id reused);
 *   (c) the counts are printed per round (`torture power-loss ...`).
 *
 * What the simulation models: a disk that keeps exactly what was synced and nothing else. A file
 * keeps the size its last fsync/fdatasync covered (0 bytes if it was never synced; the state
 * before the round, after a clean stop, counts as synced) and loses everything from the first
 * byte written after that sync (the WAL and body files are written front to back, so this is
 * their unsynced tail, WAL restarts included: SQLite rewrites the WAL from its header). A
 * directory entry (a create or a rename into the directory) exists only if a later fsync of that
 * directory listed it; otherwise it is removed. queue.db keeps overwrites of pages (SQLite writes
 * it only in checkpoints, after fsyncing the WAL, whose frames hold the same pages) and loses
 * growth past its synced size. Only the store's files are rewritten: queue.db*, spool/, quarantine/.
 *
 * What it cannot model (a conservative approximation, not an exact disk): overwrites inside the
 * synced length of a file are never rolled back (no old contents are kept; for queue.db this is
 * argued above, other files are not overwritten); unlinks are taken as durable at once (the file
 * is gone), never undone; no torn sectors or reordered writes inside a file; renames over an
 * existing name are not restored to the old file; sync(), syncfs() and partial sync_file_range are
 * logged but not credited (Postline calls none of them); the page cache of other processes
 * (the test's own reads) is not modelled. A restart after a plain crash is modelled by replaying
 * both processes' logs over the state before the first. Files are known by inode number and
 * birth time, as the shim logs them; without birth times, by inode number only.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, realpathSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { PostlineProcess } from '../helpers/postline-process.js';
import { SmtpSink, SMTP_SINK } from '../helpers/smtp-sink.js';
import { WebhookReceiver, newSecret } from '../helpers/webhook-receiver.js';
import { waitFor } from '../helpers/net.js';
import { LONG, randInt, sleep } from './lib/profile.js';
import { buildShim, shimUnavailable, simulatePowerLoss, snapshot } from './lib/synclog.js';
import { PowerLoad } from './lib/power-load.js';
import { openSideDatabase } from '../../src/spool/sqlite/side-db.js';
import { lastEventIdOf, queryEvents } from '../../src/spool/sqlite/event-log.js';
import type { StoredEvent } from '../../src/events/record.js';

const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
});

const ROUNDS = LONG ? 10 : 5;
const SESSIONS = 20;
const SKIP = shimUnavailable() ?? (SMTP_SINK ? undefined : 'smtp-sink not found: install postfix (see .ci/run)');

/** One event as the receiver and the log must agree on it. */
const signature = (e: { type: string; queueId?: string; recipient?: string; at: number }): string =>
  `${e.type} ${e.queueId ?? '-'} ${e.recipient ?? '-'} ${e.at}`;

/** The whole event log, oldest first (read-only connection; Postline may be stopped or running). */
function readLog(dataDir: string): StoredEvent[] {
  const db = openSideDatabase(dataDir, { readonly: true });
  try {
    const out: StoredEvent[] = [];
    for (let afterId = 0, i = 0; i < 1000; i++) {
      const batch = queryEvents(db, { after: afterId, limit: 10_000 });
      out.push(...batch);
      if (batch.length < 10_000) break;
      afterId = batch[batch.length - 1]!.id;
    }
    return out;
  } finally {
    db.close();
  }
}

/** Messages in the queue: id -> quarantined?, next attempt (ms), and the addresses of their recipients not yet final. */
function readQueue(dataDir: string): { rows: Map<string, boolean>; nextAt: Map<string, number>; pending: Map<string, Set<string>> } {
  const db = openSideDatabase(dataDir, { readonly: true });
  try {
    const rows = new Map<string, boolean>();
    const nextAt = new Map<string, number>();
    for (const r of db.prepare('SELECT id, quarantined_at, next_attempt_at FROM messages').all() as Array<{ id: string; quarantined_at: number | null; next_attempt_at: number }>) {
      rows.set(r.id, r.quarantined_at !== null);
      nextAt.set(r.id, r.next_attempt_at);
    }
    const pending = new Map<string, Set<string>>();
    for (const r of db.prepare("SELECT message_id, address FROM recipients WHERE status IN ('pending', 'deferred')").all() as Array<{ message_id: string; address: string }>) {
      if (!pending.has(r.message_id)) pending.set(r.message_id, new Set());
      pending.get(r.message_id)!.add(r.address);
    }
    return { rows, nextAt, pending };
  } finally {
    db.close();
  }
}

const lastEventId = (dataDir: string): number => {
  const db = openSideDatabase(dataDir, { readonly: true });
  try { return lastEventIdOf(db); } finally { db.close(); }
};

test(`power loss: ${ROUNDS} SIGKILLs with the WAL and spool cut to what was synced lose nothing answered 250 and roll back no published event`, { skip: SKIP ?? false, timeout: LONG ? 600_000 : 240_000 }, async () => {
  const sink = await new SmtpSink().start();
  cleanups.push(() => sink.cleanup());
  const defer = await new SmtpSink(['-r', 'RCPT']).start();
  cleanups.push(() => defer.cleanup());
  const receiver = await new WebhookReceiver().listen();
  cleanups.push(() => receiver.close());
  const secret = newSecret();
  const url = receiver.endpoint('/pl', secret);
  const route = (domain: string, s: SmtpSink) => ({ domain, host: '127.0.0.1', port: s.port, tls: 'none' });
  const pl = new PostlineProcess({
    detached: true,
    config: {
      delivery: { routes: [route('sink.test', sink), route('defer.test', defer)] },
      webhooks: [{ name: 'power', url, secret, allowPrivate: true, from: 'start', batch: 50 }],
    },
  });
  cleanups.push(() => pl.cleanup());
  const so = buildShim(pl.dir);
  // The data directory exists and holds an empty queue before the first round (a clean start and stop).
  await pl.start();
  await pl.stop();
  const dataDir = realpathSync(join(pl.dir, 'var'));

  const load = new PowerLoad({ port: () => pl.port(), sessions: SESSIONS, maxPerRound: LONG ? 20_000 : 4000 });
  /** Every event the receiver got, by id (its signature); and ids seen more than once. */
  const seen = new Map<number, string>();
  let resent = 0;
  let deliveriesRead = 0;
  const takeDeliveries = (): void => {
    for (; deliveriesRead < receiver.deliveries.length; deliveriesRead++) {
      const d = receiver.deliveries[deliveriesRead]!;
      if (d.path !== '/pl' || d.status >= 300) continue;
      for (const p of Array.isArray(d.payload) ? d.payload : [d.payload]) {
        const e = (p as { data: StoredEvent }).data;
        const sig = signature(e);
        const had = seen.get(e.id);
        if (had === undefined) seen.set(e.id, sig);
        else if (had === sig) resent++;
        else assert.fail(`event id ${e.id} reused: first "${had}", now "${sig}"`);
      }
    }
  };
  const sinkCopies = (): Map<string, number> => {
    const m = new Map<string, number>();
    for (const msg of sink.messages()) {
      for (const r of msg.rcptArgs) {
        const hit = /<m(\d+x\d+)@sink\.test>/.exec(r);
        if (hit) m.set(hit[1]!, (m.get(hit[1]!) ?? 0) + 1);
      }
    }
    return m;
  };

  for (let round = 1; round <= ROUNDS; round++) {
    const base = snapshot(dataDir);
    const logFile = join(pl.dir, `synclog-${round}.log`);
    rmSync(logFile, { force: true });
    pl.env = { LD_PRELOAD: so, SYNCLOG_FILE: logFile, SYNCLOG_ROOT: dataDir, UV_USE_IO_URING: '0' };
    await pl.start();
    const answeredBefore = load.answered.length;
    // Rounds 1, 4, 7, ... die under load (acceptance commits fsync every few ms); the others after
    // the load ended, when the last outcomes and removals are relaxed commits that only the idle
    // flush makes durable: the window where an event or an unlink could run ahead of its fsync.
    // Rounds 3, 6, ... then restart after that plain crash (still under the shim, the page cache
    // kept) and lose power 0.1-0.6 s into the restart: what the new process reads at open was
    // never synced, so it must not publish it before an fsync.
    const mode = round % 3 === 1 ? 'load' : round % 3 === 2 ? 'draining' : 'restart';
    // Large bodies under load and in odd draining rounds (their removals must fsync before the
    // unlink); none in the other rounds, so that the backlog's removals are all relaxed (a removal
    // whose body is a file fsyncs, and so does every batch it is in).
    load.start(round, mode === 'load' || (mode === 'draining' && round % 2 === 1));
    await sleep(randInt(1500, 4000));
    if (mode !== 'load') {
      await load.stop();
      // The backlog's last outcomes are relaxed commits: kill soon after the sink went quiet (no
      // new message for 30 ms), mostly before the writer's idle flush makes them durable (at most
      // 0.5 s after the first of them).
      const atSink = (): number => readdirSync(sink.dir).length;
      let n = atSink();
      let quietSince = Date.now();
      for (const t0 = Date.now(); Date.now() - t0 < 5000 && Date.now() - quietSince < 30;) {
        await sleep(5);
        if (atSink() !== n) { n = atSink(); quietSince = Date.now(); }
      }
      await sleep(randInt(0, 200));
    }
    if (mode === 'restart') {
      await pl.kill();
      await pl.start();
      await sleep(randInt(100, 600));
    }
    await pl.kill();
    await load.stop();
    await sleep(100); // requests Postline sent before it died are read
    takeDeliveries();
    const seenBeforeKill = seen.size;
    const maxSeenId = Math.max(0, ...seen.keys());
    const atSinkBeforeKill = sinkCopies().size;

    const sim = simulatePowerLoss(dataDir, base, readFileSync(logFile, 'utf8'));
    assert.equal(sim.pids, mode === 'restart' ? 2 : 1, 'processes that logged');
    assert.ok(sim.fileSyncs > 0 && sim.dirSyncs > 0 && sim.writes > 0, `the shim logged syncs and writes (${JSON.stringify(sim)})`);

    // Recovery, without the shim.
    pl.env = {};
    await pl.start();
    const sinkMail = load.answered.filter((a) => a.sink);
    /** Answered sink recipients neither at the sink nor queued (pending); with `due`, queued ones whose retry is not minutes away count as unsettled too. */
    const unsettled = (due: boolean): string[] => {
      const c = sinkCopies();
      const q = readQueue(dataDir);
      const waiting = (a: typeof sinkMail[number]): boolean => q.rows.get(a.queueId) === false && !!q.pending.get(a.queueId)?.has(`m${a.key}@sink.test`)
        && (!due || q.nextAt.get(a.queueId)! > Date.now() + 60_000);
      return sinkMail.filter((a) => !c.has(a.key) && !waiting(a)).map((a) => a.key);
    };
    try {
      await waitFor('every answered sink recipient at the sink (or queued for a retry minutes away)', () => unsettled(true).length === 0, 60_000, 250);
    } catch { /* asserted below with the names */ }
    try {
      await waitFor('the webhook receiver caught up with the log', () => { takeDeliveries(); return seen.size > 0 && Math.max(...seen.keys()) >= lastEventId(dataDir); }, 30_000, 250);
    } catch { /* the checks below do not need it */ }
    const stopped = await pl.stop(30_000);
    assert.equal(stopped, 0, `recovery run stops cleanly; its last warnings: ${pl.output.split('\n').filter((l) => l && !l.includes('"level":30')).slice(-15).join('\n')}`);
    takeDeliveries();

    // (a) nothing answered 250 is lost.
    const copies = sinkCopies();
    const { rows, pending } = readQueue(dataDir);
    const log = readLog(dataDir);
    const received = new Map<string, number>();
    for (const e of log) if (e.type === 'message.received' && e.queueId) received.set(e.queueId, (received.get(e.queueId) ?? 0) + 1);
    const lostAtSink = unsettled(false);
    assert.deepEqual(lostAtSink.slice(0, 20), [], `answered 250 but neither at the sink nor queued: ${lostAtSink.length}`);
    const sinkWaiting = sinkMail.filter((a) => !copies.has(a.key)).length;
    const lostQueued = load.answered.filter((a) => a.defer && (rows.get(a.queueId) !== false || !pending.get(a.queueId)?.has(`d${a.key}@defer.test`)));
    assert.deepEqual(lostQueued.slice(0, 20).map((a) => a.queueId), [], `answered 250 with a deferred recipient but not queued: ${lostQueued.length}`);
    const noReceived = load.answered.filter((a) => received.get(a.queueId) !== 1);
    assert.deepEqual(noReceived.slice(0, 20).map((a) => `${a.queueId}:${received.get(a.queueId) ?? 0}`), [], `answered 250 without exactly one message.received event: ${noReceived.length}`);
    const quarantined = [...rows].filter(([, q]) => q).map(([id]) => id);
    assert.deepEqual(quarantined.slice(0, 20), [], `quarantined rows: ${quarantined.length}`);
    assert.deepEqual(readdirSync(join(dataDir, 'quarantine')), [], 'nothing in quarantine/');
    // (b) no published event was rolled back, none reused.
    const byId = new Map(log.map((e) => [e.id, signature(e)]));
    const rolledBack = [...seen].filter(([id, sig]) => byId.get(id) !== sig);
    assert.deepEqual(rolledBack.slice(0, 10).map(([id, sig]) => `${id}: webhook "${sig}", log "${byId.get(id) ?? 'none'}"`), [], `published events missing or changed after recovery: ${rolledBack.length}`);
    const twice = [...received].filter(([, n]) => n > 1).map(([id]) => id);
    assert.deepEqual(twice.slice(0, 10), [], `queue IDs with two message.received events: ${twice.length}`);

    // (c) the counts.
    const mine = load.answered.slice(answeredBefore);
    const fmt = (m: Record<string, number>): string => Object.entries(m).map(([k, v]) => `${k}:${v}`).join('|') || '0';
    console.log(`torture power-loss [${LONG ? 'long' : 'short'}] round=${round} kill=${mode} answered=${mine.length} large=${mine.filter((a) => a.large).length} `
      + `deferred=${mine.filter((a) => a.defer).length} refused=${load.refused} cut=${load.cut} atSinkBeforeKill=${atSinkBeforeKill} `
      + `eventsSeenBeforeKill=${seenBeforeKill} maxSeenId=${maxSeenId} lastLogId=${log.length ? log[log.length - 1]!.id : 0} `
      + `log=${sim.lines} fileSyncs=${sim.fileSyncs} dirSyncs=${sim.dirSyncs} writes=${sim.writes} removed=${fmt(sim.removed)} `
      + `truncated=${fmt(sim.truncated)} bytesCut=${fmt(sim.bytesCut)} queued=${rows.size} sinkQueuedForRetry=${sinkWaiting} redelivered=${[...copies.values()].filter((n) => n > 1).length} `
      + `webhookResent=${resent} lost=0${sim.inodeOnly ? ' identity=inode-only' : ''}`);
  }
  assert.ok(load.answered.some((a) => a.large) && load.answered.some((a) => a.defer), 'large bodies and deferred mail were answered');
});
