/**
 * Fault suite, Maildir under SIGKILL (issue 10): large messages are delivered into a Maildir while
 * `postline serve` is killed: at the crash point in the middle of a file in tmp/
 * (`maildir-mid-write`), right after the rename into new/ before the outcome is written
 * (`maildir-after-rename`), and from outside at a moment a file is being written in tmp/. After
 * every kill, every file in new/ is whole (its ",S=" size is its length and it holds one message
 * exactly as sent); after the last restart every message is in new/ at least once. A copy more is
 * allowed only for a kill between the rename and the store's commit (at least once delivery).
 *
 * Messages are first queued on hold (a hold route with the maildir transport), released offline
 * with the server stopped, so no kill lands while the client is still sending.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PostlineProcess } from '../helpers/postline-process.js';
import { RawSmtp } from '../helpers/raw-smtp.js';
import { waitFor } from '../helpers/net.js';
import { CORPUS_DIR, toCrlf } from '../helpers/corpus.js';
import { LONG, report, sleep } from './lib/profile.js';

const cleanups: Array<() => Promise<void>> = [];
after(async () => { for (const c of cleanups.reverse()) await c().catch(() => {}); });

const COUNT = LONG ? 40 : 12;
const lf = (b: Buffer) => Buffer.from(b.toString('latin1').replace(/\r\n/g, '\n'), 'latin1');

/** A large message (about 1.1 MB) with a sequence header, CRLF. */
function message(seq: number): Buffer {
  const file = join(CORPUS_DIR, 'large', 'mailparser--large_text.eml');
  const base = existsSync(file) ? toCrlf(readFileSync(file)) : Buffer.from(`Subject: large\r\n\r\n${`${'y'.repeat(78)}\r\n`.repeat(14_000)}`);
  return Buffer.concat([Buffer.from(`X-Seq: ${seq}\r\n`), base, base.subarray(-2).toString() === '\r\n' ? Buffer.alloc(0) : Buffer.from('\r\n')]);
}

/**
 * Checks every file in new/: whole (S= is its size) and holding exactly one of the messages sent.
 * @returns how many files each sequence number has.
 */
function checkNew(box: string, sent: Map<number, Buffer>): Map<number, number> {
  const counts = new Map<number, number>();
  const dir = join(box, 'new');
  if (!existsSync(dir)) return counts;
  for (const name of readdirSync(dir)) {
    const data = readFileSync(join(dir, name));
    const s = /,S=(\d+)$/.exec(name);
    assert.ok(s, `${name}: a size in the name`);
    assert.equal(data.length, Number(s[1]), `${name}: S= is the file's size (no partial file in new/)`);
    const seq = Number(/\nX-Seq: (\d+)\n/.exec(data.toString('latin1'))?.[1]);
    const want = sent.get(seq);
    assert.ok(want, `${name}: names a message sent (X-Seq ${seq})`);
    const tail = lf(want);
    assert.ok(data.subarray(data.length - tail.length).equals(tail), `${name}: the whole message ${seq}, byte for byte`);
    counts.set(seq, (counts.get(seq) ?? 0) + 1);
  }
  return counts;
}

test(`maildir crash: ${COUNT} large messages, SIGKILL mid-write and after the rename; no partial file in new/, every message delivered`, { timeout: LONG ? 600_000 : 180_000 }, async () => {
  const pl = new PostlineProcess({});
  cleanups.push(() => pl.cleanup());
  const box = join(pl.dir, 'mail', 'crash');
  pl.configOverride = {
    log: { level: 'warn', format: 'json' },
    delivery: { retry: { initialMs: 200, maxMs: 500, multiplier: 1, jitter: 0 }, scanIntervalMs: 100 },
    local: { routes: [{ match: 'crash.test', mode: 'hold', transport: 'maildir', target: box }] },
  };
  await pl.start();
  const sent = new Map<number, Buffer>();
  const ids: string[] = [];
  const { c } = await RawSmtp.open(pl.port());
  await c.ehlo();
  for (let i = 1; i <= COUNT; i++) {
    const m = message(i);
    const r = await c.send('alice@origin.test', ['box@crash.test'], m, 'BODY=8BITMIME');
    assert.equal(r.final?.code, 250, r.final?.text);
    ids.push(/queued as (\S+)/.exec(r.final!.text)![1]!);
    sent.set(i, m);
  }
  await c.quit();
  assert.equal(await pl.stop(), 0);
  for (const id of ids) assert.equal((await pl.cli(['queue', 'release', id])).code, 0);

  // After each kill: a message whose file is in new/ while it is still queued (the kill came between
  // the rename and the store's commit of its outcome) will be delivered once more: its allowance.
  const allowance = new Map<number, number>();
  const afterKill = async (): Promise<void> => {
    const inNew = checkNew(box, sent);
    const queued = new Set((JSON.parse((await pl.cli(['queue', 'list', '--json'])).stdout) as { id: string }[]).map((m) => m.id));
    for (const seq of inNew.keys()) if (queued.has(ids[seq - 1]!)) allowance.set(seq, (allowance.get(seq) ?? 0) + 1);
  };
  // Round 1 and 2: the crash points, on the first file (deliveries start right after the
  // listeners open, so the process may die before start() saw it listen).
  const fired: string[] = [];
  for (const point of ['maildir-mid-write', 'maildir-after-rename']) {
    pl.env = { POSTLINE_CRASHPOINT: point };
    pl.output = '';
    await pl.start().catch((err: Error) => { if (!/exited/.test(err.message)) throw err; });
    await pl.exited(60_000).catch(() => undefined);
    if (new RegExp(`crash point ${point} fired`).test(pl.output)) fired.push(point);
    if (pl.running()) await pl.kill();
    await afterKill();
  }
  // Round 3: an outside SIGKILL while a file is being written in tmp/ (when the timing allows).
  pl.env = {};
  await pl.start();
  let outside = 0;
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline && pl.running()) {
    if (existsSync(join(box, 'tmp')) && readdirSync(join(box, 'tmp')).length > 0) {
      await pl.kill();
      outside++;
      break;
    }
    await sleep(2);
  }
  const leftInTmp = existsSync(join(box, 'tmp')) ? readdirSync(join(box, 'tmp')).length : 0;
  if (pl.running()) await pl.kill();
  await afterKill();

  // Last start: everything is delivered, at least once.
  pl.env = {};
  await pl.start();
  await waitFor('the queue to empty', async () => (await pl.cli(['queue', 'list', '--json'])).stdout.trim() === '[]', 120_000, 300);
  const counts = checkNew(box, sent);
  const missing = [...sent.keys()].filter((k) => !counts.has(k));
  assert.deepEqual(missing, [], 'every message in new/');
  const duplicated = [...counts.values()].reduce((a, n) => a + n - 1, 0);
  // A copy more only for a message killed between its rename and its outcome's commit.
  for (const [seq, n] of counts) assert.ok(n - 1 <= (allowance.get(seq) ?? 0), `message ${seq}: ${n} copies, ${allowance.get(seq) ?? 0} kills after its rename`);
  report('maildir-crash', { answered: COUNT, delivered: counts.size, duplicated, lost: missing.length, bounced: 0, crashPoints: fired.join('+') || 'none', outsideKills: outside, leftInTmp });
  assert.deepEqual(fired, ['maildir-mid-write', 'maildir-after-rename'], 'both crash points fired');
});
