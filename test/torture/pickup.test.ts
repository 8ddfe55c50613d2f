/**
 * Fault suite, maildrop pickup (issue 13): files `postline sendmail` left in dataDir/maildrop/
 * while the server was down are picked up at the next start, and the server is killed (SIGKILL)
 * while it does so: first from outside, as soon as it took the first file, then by itself at the
 * crash point between a file's commit and its unlink (`pickup-after-commit-before-unlink`),
 * restart after restart until the maildrop is empty. Every file must be queued at least once
 * (counted from the message.received events, by its unique recipient) and delivered; a file is
 * queued twice only when a kill came between its commit and its unlink (at least once, never lost).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeMaildrop } from '../../src/cli/sendmail-submit.js';
import { PostlineProcess } from '../helpers/postline-process.js';
import { waitFor } from '../helpers/net.js';
import { startSmtpPeer } from '../helpers/smtp-peer.js';
import { LONG, report, sleep } from './lib/profile.js';

const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
});

const FILES = LONG ? 1000 : 200;
const CONCURRENCY = 4;

async function* nothing(): AsyncGenerator<Buffer> { /* the whole message is in `kept` */ }

test('kill -9 mid-pickup: every maildrop file is queued at least once and delivered, none lost', { timeout: 300_000 }, async () => {
  const peer = await startSmtpPeer({});
  cleanups.push(() => peer.close());
  const pl = new PostlineProcess({
    config: {
      log: { level: 'info', format: 'json' },
      delivery: { routes: [{ domain: 'example.test', host: '127.0.0.1', port: peer.port, tls: 'none' }], retry: { initialMs: 300, maxMs: 1000, multiplier: 1, jitter: 0 }, scanIntervalMs: 100 },
      sendmail: { scanIntervalMs: 200, pickupConcurrency: CONCURRENCY },
    },
  });
  cleanups.push(() => pl.cleanup());
  await pl.start(); // makes dataDir/maildrop (1733)
  await pl.stop();
  const dataDir = join(pl.dir, 'var');
  const maildrop = join(dataDir, 'maildrop');
  for (let i = 0; i < FILES; i++) {
    const msg = Buffer.from(`Subject: drop ${i}\r\nFrom: cron@example.test\r\n\r\nbody ${i}\r\n`);
    await writeMaildrop(dataDir, { envelope: { mailFrom: 'cron@example.test', recipients: [{ address: `n${i}@example.test` }], bodyType: '7BIT', smtputf8: false }, user: 'root' }, [msg], nothing(), () => {});
  }
  const waiting = (): number => readdirSync(maildrop).filter((n) => n.startsWith('m.')).length;
  assert.equal(waiting(), FILES);

  // Killed from outside as soon as the first file was picked up.
  const before = pl.output.length;
  await pl.start();
  await waitFor('the first pickup', () => pl.output.slice(before).includes('maildrop file picked up'), 30_000, 2);
  await pl.kill();
  const afterOutsideKill = waiting();
  let kills = 1;

  // Then killed by the crash point between commit and unlink, start after start, until the maildrop is empty.
  pl.env = { POSTLINE_CRASHPOINT: 'pickup-after-commit-before-unlink:0.05' };
  for (let round = 0; round < 80 && waiting() > 0; round++) {
    try {
      await pl.start();
    } catch { /* it crashed before its listener answered: start again */ }
    const deadline = Date.now() + 20_000;
    while (pl.running() && waiting() > 0 && Date.now() < deadline) await sleep(20);
    if (!pl.running()) kills++;
    else if ((await pl.stop()) !== 0) kills++; // cut short by the server's own hard deadline: counted as a kill
  }
  assert.equal(waiting(), 0, `the maildrop was emptied (${kills} kills)`);
  pl.env = {};
  await pl.start();

  // Every file queued at least once (message.received by its recipient), and delivered.
  const ev = await pl.cli(['events', '--json', '--type', 'message.received', '--since', '0', '--limit', String(FILES * 4)]);
  assert.equal(ev.code, 0, ev.stderr);
  const queued = new Map<string, number>();
  for (const line of ev.stdout.split('\n').filter(Boolean)) {
    const e = JSON.parse(line) as { origin?: { kind: string }; recipients?: string[] };
    if (e.origin?.kind !== 'local') continue;
    for (const r of e.recipients ?? []) queued.set(r, (queued.get(r) ?? 0) + 1);
  }
  const lostInQueue = Array.from({ length: FILES }, (_, i) => `n${i}@example.test`).filter((r) => !queued.has(r));
  assert.deepEqual(lostInQueue, [], `every file was queued (${kills} kills; log tail: ${pl.output.slice(-1500)})`);
  const queuedTwice = [...queued.values()].reduce((a, n) => a + n - 1, 0);
  assert.ok(queuedTwice <= kills * CONCURRENCY, `${queuedTwice} files queued again after ${kills} kills`);
  await waitFor('every message delivered', () => new Set(peer.messages().flatMap((m) => m.rcpts)).size >= FILES || undefined, 120_000);
  const delivered = new Set(peer.messages().flatMap((m) => m.rcpts));
  report('pickup-kill', {
    answered: FILES, delivered: delivered.size, duplicated: peer.messages().length - delivered.size, lost: FILES - delivered.size, bounced: 0,
    kills, afterOutsideKill, queuedTwice,
  });
  assert.equal(delivered.size, FILES);
});
