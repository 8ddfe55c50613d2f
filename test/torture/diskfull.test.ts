/**
 * Fault suite, disk full (issue 3). The data directory sits on a small filesystem of its own (a
 * loop-mounted ext4 made with -m 0, or the fault layer where mounting is not allowed; the figures
 * say which). Below the free-space reserve new mail gets 452 4.3.1 and the server stays up; at a
 * truly full disk (reserve 0) the commit fails cleanly with a 4xx, never a 250; mail already queued
 * still goes out; once space returns acceptance resumes; a restart loads the queue without damage.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { PostlineProcess } from '../helpers/postline-process.js';
import { SmtpSink } from '../helpers/smtp-sink.js';
import { RawSmtp } from '../helpers/raw-smtp.js';
import { freePort, waitFor } from '../helpers/net.js';
import { decidingCode, plan } from './lib/load.js';
import { report, sleep } from './lib/profile.js';
import { countByNumber, figures } from './lib/tally.js';
import { SmallDisk } from './lib/disk.js';

const cleanups: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const c of cleanups.reverse()) await Promise.resolve().then(c).catch(() => {});
});

/** Submits message n (optionally padded to `bytes`); resolves with the deciding reply code. */
async function submit(port: number, n: number, bytes = 0): Promise<number> {
  const p = plan(n);
  const data = bytes ? Buffer.concat([p.data, Buffer.from(`${'y'.repeat(998)}\r\n`.repeat(Math.ceil(bytes / 1000)))]) : p.data;
  const { c } = await RawSmtp.open(port);
  try {
    await c.ehlo();
    const r = await c.send(p.from, [p.to], data, '', 20_000);
    return decidingCode(r);
  } finally {
    await c.quit();
  }
}

test('disk full: 452 below the reserve, 4xx (never 250) at a full disk, queued mail goes out, acceptance resumes', { timeout: 120_000 }, async () => {
  const disk = new SmallDisk(64);
  cleanups.push(() => disk.cleanup());
  const sinkPort = await freePort();
  let sink = await new SmtpSink().start(sinkPort);
  const sinks = [sink];
  cleanups.push(() => Promise.all(sinks.map((s) => s.cleanup())).then(() => undefined));
  const reserve = 24 * 1024 * 1024;
  const pl = new PostlineProcess({
    env: disk.env(),
    config: {
      dataDir: join(disk.mount, 'var'),
      log: { level: 'info', format: 'json' },
      limits: { minFreeBytes: reserve },
      delivery: { relayhost: { host: '127.0.0.1', port: sinkPort, tls: 'none' }, retry: { initialMs: 300, maxMs: 1000, multiplier: 1, jitter: 0 }, scanIntervalMs: 100 },
    },
  });
  cleanups.push(() => pl.cleanup());
  await pl.start();
  const answered = new Set<number>();
  const codes: Record<string, number> = {};
  const note = (n: number, code: number) => { codes[code] = (codes[code] ?? 0) + 1; if (code === 250) answered.add(n); };
  let n = 0;
  for (; n < 5; n++) note(n, await submit(pl.port(), n));
  assert.equal(answered.size, 5, 'accepts while there is room');

  // 1. Below the reserve: 452 4.3.1 at MAIL; the server stays up.
  disk.fill(reserve / 2);
  await sleep(1200); // the free-space check is cached for 1 s
  const low = await submit(pl.port(), n); note(n++, low);
  assert.equal(low, 452, 'below the reserve: 452');
  const { c } = await RawSmtp.open(pl.port());
  assert.equal((await c.cmd('NOOP')).code, 250, 'still serving');
  await c.quit();
  disk.release();
  await sleep(1200);
  const back = await submit(pl.port(), n); note(n++, back);
  assert.equal(back, 250, 'space above the reserve again: accepted');

  // 2. Reserve 0 and a truly full disk, receiver down: the commit fails with a 4xx, never 250.
  await waitFor('the first messages delivered', () => countByNumber([sink], /<?m(\d+)@sink\.test/).size >= 6, 20_000);
  await sink.stop();
  pl.configOverride = { limits: { minFreeBytes: 0 } };
  await pl.stop();
  await pl.writeConfig();
  await pl.start();
  const queuedBeforeFull: number[] = [];
  for (let k = 0; k < 5; k++, n++) { const code = await submit(pl.port(), n); note(n, code); if (code === 250) queuedBeforeFull.push(n); }
  assert.equal(queuedBeforeFull.length, 5);
  disk.fill(0);
  await sleep(300); // the fault layer reads its control file at most every 100 ms
  const fullCodes: number[] = [];
  for (let k = 0; k < 6; k++, n++) { const code = await submit(pl.port(), n, 256 * 1024); note(n, code); fullCodes.push(code); }
  assert.ok(fullCodes.every((x) => x >= 400 && x < 500), `full disk: every reply 4xx, got ${fullCodes.join(',')}`);

  // 3. Queued mail still goes out while the disk is full (after retries whose records could not be written).
  await sleep(1500);
  sink = await new SmtpSink().start(sinkPort);
  sinks.push(sink);
  await pl.cli(['queue', 'flush']);
  await waitFor('mail queued before the disk filled at the sink', () => {
    const got = countByNumber(sinks, /<?m(\d+)@sink\.test/);
    return queuedBeforeFull.every((x) => got.has(x) || x % 10 === 7);
  }, 30_000);

  // 4. Space returns: acceptance resumes.
  disk.release();
  await sleep(1200);
  for (let k = 0; k < 5; k++, n++) note(n, await submit(pl.port(), n));
  assert.ok([...answered].filter((x) => x >= n - 5).length === 5, 'accepting again once space returned');

  // 5. A restart loads the queue without quarantining anything; everything answered is delivered.
  assert.equal(await pl.stop(), 0, 'SIGTERM exits cleanly');
  await pl.start();
  // The server checks the rows behind the open (store recovery: 'background'): wait for its line.
  const opened = await waitFor('the row check after the restart', () => pl.logs().filter((l) => l.msg === 'queue rows checked').pop(), 20_000);
  assert.equal(opened?.quarantined, 0, `no entry quarantined after the disk-full episode: ${JSON.stringify(opened)}`);
  const delivered = await waitFor('every answered message at the sink', () => {
    const got = countByNumber(sinks, /<?m(\d+)@sink\.test/);
    return [...answered].filter((x) => x % 10 !== 7).every((x) => got.has(x)) ? got : undefined;
  }, 30_000);
  const f = figures(new Set([...answered].filter((x) => x % 10 !== 7)), delivered, new Map(), () => false);
  report('disk-full', { ...f, method: disk.method, replies: Object.entries(codes).map(([k, v]) => `${k}:${v}`).join('|'), restartQuarantined: Number(opened?.quarantined ?? -1) });
  assert.equal(f.lost, 0);
  await pl.stop();
});
