/**
 * Fault suite, slow and hostile peers (issue 3).
 * Next hops: one that reads one byte a second after DATA (the transaction deadline frees the slot,
 * since the per-read timeouts never fire), one that drops the connection after the message before
 * its reply (retried: a counted duplicate), one that answers with malformed replies (deferred).
 * Clients: 1,000 idle connections and slowloris clients (one byte a second) from 127.0.0.2-9 while
 * a legitimate client on 127.0.0.1 is still served, thanks to the per-IP and global limits and
 * to timeouts that bound a whole command line.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { PostlineProcess } from '../helpers/postline-process.js';
import { SmtpSink } from '../helpers/smtp-sink.js';
import { RawSmtp } from '../helpers/raw-smtp.js';
import { waitFor } from '../helpers/net.js';
import { decidingCode, plan } from './lib/load.js';
import { HostilePeer } from './lib/peer.js';
import { LONG, report, sleep } from './lib/profile.js';
import { countByNumber, figures } from './lib/tally.js';

const cleanups: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const c of cleanups.reverse()) await Promise.resolve().then(c).catch(() => {});
});

async function submitTo(port: number, n: number, to: string, padBytes = 0): Promise<number> {
  const pad = padBytes ? `${'z'.repeat(998)}\r\n`.repeat(Math.ceil(padBytes / 1000)) : '';
  const { c } = await RawSmtp.open(port);
  try {
    await c.ehlo();
    const r = await c.send('sender@origin.test', [to], Buffer.from(`Subject: peer ${n}\r\nMessage-ID: <peer-${n}@origin.test>\r\n\r\nbody\r\n${pad}`), '', 60_000);
    return decidingCode(r);
  } finally {
    await c.quit();
  }
}

test('hostile next hops: slow reader, drop after DATA, malformed replies', { timeout: 150_000 }, async () => {
  const slow = await new HostilePeer('slow-read').start();
  const drop = await new HostilePeer('drop-after-data').start();
  const bad = await new HostilePeer('malformed').start();
  cleanups.push(() => slow.stop(), () => drop.stop(), () => bad.stop());
  const txMs = 3000;
  const pl = new PostlineProcess({
    config: {
      log: { level: 'info', format: 'json' },
      delivery: {
        routes: [
          { domain: 'slow.test', host: '127.0.0.1', port: slow.port, tls: 'none' },
          { domain: 'drop.test', host: '127.0.0.1', port: drop.port, tls: 'none' },
          { domain: 'bad.test', host: '127.0.0.1', port: bad.port, tls: 'none' },
        ],
        retry: { initialMs: 500, maxMs: 1000, multiplier: 1, jitter: 0 },
        scanIntervalMs: 100, connectTimeoutMs: 1000, commandTimeoutMs: 1500, dataDoneTimeoutMs: 1500,
        transactionTimeoutMs: txMs, connectionsPerDestination: 1,
      },
    },
  });
  cleanups.push(() => pl.cleanup());
  await pl.start();
  const answered = new Set<number>();
  const per = LONG ? 6 : 2;
  let n = 0;
  // 12 MB: more than the loopback socket buffers hold, so the slow reader really stalls the sender.
  for (let k = 0; k < per; k++, n++) if (await submitTo(pl.port(), n, `m${n}@slow.test`, 12 * 1024 * 1024) === 250) answered.add(n);
  for (let k = 0; k < per * 2; k++, n++) if (await submitTo(pl.port(), n, `m${n}@drop.test`) === 250) answered.add(n);
  for (let k = 0; k < per * 2; k++, n++) if (await submitTo(pl.port(), n, `m${n}@bad.test`) === 250) answered.add(n);
  assert.equal(answered.size, n);

  // The slow reader holds the one slot only until the transaction deadline: a second connection follows.
  await waitFor('a second connection to the slow reader (slot freed by the deadline)', () => slow.connections >= 2, txMs * 4);
  await waitFor('every dropped message received once', () => [...answered].filter((x) => x >= per && x < per * 3).every((x) => drop.received.has(x)), 20_000);
  await sleep(2000);
  const logs = pl.logs();
  assert.equal(logs.filter((l) => l.status === 'bounced' || l.status === 'expired').length, 0, 'hostile peers never cause a bounce');
  assert.ok(logs.some((l) => l.status === 'deferred' && String(l.to).endsWith('@bad.test')), 'malformed replies defer');
  const slowConns = slow.connections;

  // The peers behave again: everything is delivered.
  slow.mode = 'ok'; drop.mode = 'ok'; bad.mode = 'ok';
  const peers = [slow, drop, bad];
  const delivered = await waitFor('all delivered once the peers behave', () => {
    const got = new Map<number, number>();
    for (const p of peers) for (const [k, v] of p.received) got.set(k, (got.get(k) ?? 0) + v);
    return [...answered].every((x) => peers.some((p) => p.accepted.has(x))) ? got : undefined;
  }, 60_000, 200);
  const f = figures(answered, delivered, new Map(), () => false);
  report('hostile-peers', { ...f, slowReaderConnections: slowConns, dropDuplicates: [...drop.received.values()].reduce((a, v) => a + v - 1, 0), malformedConnections: bad.connections });
  assert.equal(f.lost, 0);
  assert.ok(f.duplicated >= per * 2, 'each message dropped after DATA was read twice (the expected duplicate)');
  await pl.stop();
});

/** Opens a connection from `localAddress`; resolves when connected (or on error, with the socket destroyed). */
function rawConnect(port: number, localAddress: string): Promise<Socket> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port, localAddress });
    s.on('error', () => {});
    s.once('connect', () => resolve(s));
    s.once('close', () => resolve(s));
    s.resume();
  });
}

test('client floods: 1,000 idle connections and slowloris from 127.0.0.2-9; 127.0.0.1 is still served', { timeout: 120_000 }, async () => {
  const sink = await new SmtpSink().start();
  cleanups.push(() => sink.cleanup());
  const commandMs = 4000;
  const pl = new PostlineProcess({
    config: {
      log: { level: 'warn', format: 'json' },
      limits: { maxConnections: 1000, maxConnectionsPerIp: 50 },
      timeouts: { commandMs },
      delivery: { relayhost: { host: '127.0.0.1', port: sink.port, tls: 'none' }, scanIntervalMs: 100 },
    },
  });
  cleanups.push(() => pl.cleanup());
  await pl.start();
  const sockets: Socket[] = [];
  cleanups.push(() => { for (const s of sockets) s.destroy(); });
  const openedAt = new Map<Socket, number>();
  const closedAt = new Map<Socket, number>();
  const first = new Map<Socket, string>();
  const track = (s: Socket): Socket => {
    openedAt.set(s, Date.now());
    s.once('data', (d: Buffer) => first.set(s, d.toString('latin1').slice(0, 3)));
    s.once('close', () => closedAt.set(s, Date.now()));
    sockets.push(s);
    return s;
  };
  // Slowloris first (so they hold accepted slots): one byte a second of an endless command line.
  const lorises: Socket[] = [];
  for (let i = 0; i < 8; i++) lorises.push(track(await rawConnect(pl.port(), `127.0.0.${2 + i}`)));
  const drip = setInterval(() => { for (const s of lorises) if (!s.destroyed) s.write('E'); }, 1000);
  cleanups.push(() => clearInterval(drip));
  // Then 1,000 idle connections from the same eight addresses (125 each; the per-IP limit is 50).
  for (let i = 0; i < 1000; i++) track(await rawConnect(pl.port(), `127.0.0.${2 + (i % 8)}`));
  await waitFor('a first line on every flood connection', () => sockets.every((s) => first.has(s) || closedAt.has(s)), 10_000);

  // The legitimate client from 127.0.0.1 is served during the flood.
  const answered = new Set<number>();
  const legit = LONG ? 100 : 20;
  for (let n = 0; n < legit; n++) {
    const p = plan(n * 10); // n*10 never ends in 7: all go to the sink
    const { c, greeting } = await RawSmtp.open(pl.port(), { localAddress: '127.0.0.1' });
    assert.equal(greeting.code, 220, 'the legitimate client gets a greeting');
    await c.ehlo();
    const r = await c.send(p.from, [p.to], p.data);
    if (decidingCode(r) === 250) answered.add(n * 10);
    await c.quit();
  }
  assert.equal(answered.size, legit, 'every legitimate message accepted during the flood');

  // Timeouts free the slots: idle connections and slowloris clients are closed after commandMs.
  await waitFor('every flood connection closed by the server', () => sockets.every((s) => closedAt.has(s)), commandMs * 3);
  clearInterval(drip);
  const accepted = sockets.filter((s) => first.get(s) === '220');
  const refused = sockets.filter((s) => first.get(s) === '421');
  const held = (s: Socket): number => closedAt.get(s)! - openedAt.get(s)!;
  const lorisHeld = Math.max(...lorises.map(held));
  const idleHeld = Math.max(...accepted.map(held));
  const delivered = await waitFor('legitimate mail delivered', () => {
    const got = countByNumber([sink], /<?m(\d+)@sink\.test/);
    return [...answered].every((x) => got.has(x)) ? got : undefined;
  }, 30_000);
  const f = figures(answered, delivered, new Map(), () => false);
  report('client-flood', {
    ...f, floodConnections: sockets.length, acceptedFlood: accepted.length, refused421AtConnect: refused.length,
    slowloris: lorises.length, slowlorisHeldMs: lorisHeld, idleHeldMaxMs: idleHeld, commandMs,
  });
  assert.equal(f.lost, 0);
  assert.equal(accepted.length, 8 * 50, 'the per-IP limit admits 50 per address');
  assert.equal(refused.length, sockets.length - 8 * 50, 'the rest get 421 at connect');
  assert.ok(lorises.every((s) => first.get(s) === '220'), 'the slowloris clients were admitted');
  assert.ok(lorisHeld >= commandMs - 500 && lorisHeld < commandMs + 3000, `slowloris held its slot ${lorisHeld} ms (one deadline per command line)`);
  assert.ok(idleHeld < commandMs + 3000, `idle connections held ${idleHeld} ms`);
  await pl.stop();
});
