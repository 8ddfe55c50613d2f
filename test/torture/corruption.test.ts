/**
 * Fault suite, corruption (issue 3), through the real process: with the server stopped, one body
 * is truncated, one is garbled (replaced by other bytes of another length), one is deleted, and
 * one queue record is changed so it fails validation. Small bodies are stored inline in queue.db
 * (the `bodies` table), larger ones as files: the damage is done to whichever holds the body. On
 * start each damaged entry is quarantined with a log line (body moved or copied to
 * dataDir/quarantine/), and the rest of the queue is delivered. (A garbled body of exactly the same
 * length is not detected: there is no checksum.)
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { PostlineProcess } from '../helpers/postline-process.js';
import { SmtpSink } from '../helpers/smtp-sink.js';
import { RawSmtp } from '../helpers/raw-smtp.js';
import { freePort, waitFor } from '../helpers/net.js';
import { LONG, report } from './lib/profile.js';
import { countByNumber, figures } from './lib/tally.js';

const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
});

test('corruption: damaged bodies and an invalid record are quarantined; the rest is delivered', { timeout: 120_000 }, async () => {
  const sinkPort = await freePort();
  const pl = new PostlineProcess({
    config: {
      log: { level: 'info', format: 'json' },
      delivery: { relayhost: { host: '127.0.0.1', port: sinkPort, tls: 'none' }, retry: { initialMs: 60_000, maxMs: 60_000, jitter: 0 }, scanIntervalMs: 100, connectTimeoutMs: 1000 },
    },
  });
  cleanups.push(() => pl.cleanup());
  await pl.start();
  const count = LONG ? 200 : 20;
  const ids = new Map<number, string>();
  const { c } = await RawSmtp.open(pl.port());
  await c.ehlo();
  for (let n = 0; n < count; n++) {
    const r = await c.send('sender@origin.test', [`m${n}@sink.test`], Buffer.from(`Subject: corrupt ${n}\r\nMessage-ID: <corrupt-${n}@origin.test>\r\n\r\nbody ${n}\r\n`));
    assert.equal(r.final?.code, 250);
    ids.set(n, /queued as (\S+)/.exec(r.final!.text)![1]!);
  }
  await c.quit();
  await waitFor('a first (failed) attempt for every message', () => pl.logs().filter((l) => l.status === 'deferred').length >= count, 20_000);
  assert.equal(await pl.stop(), 0);

  const dataDir = join(pl.dir, 'var');
  const body = (id: string) => join(dataDir, 'spool', id.slice(6, 8), id); // see src/spool/sqlite/layout.ts
  const damaged = new Map<number, string>([[1, 'truncated'], [2, 'garbled'], [3, 'missing'], [4, 'invalid record']]);
  const db = new Database(join(dataDir, 'queue.db'));
  const garbage = Buffer.from('\u0000\u00ff garbage that is not the message \u0001'.repeat(40), 'latin1');
  // Each damage goes to the body file when there is one, else to the inline BLOB.
  const damage = (id: string, onFile: (p: string) => void, sql: string, ...args: unknown[]): void => {
    if (existsSync(body(id))) onFile(body(id));
    else assert.equal(db.prepare(sql).run(...args, id).changes, 1, `inline body of ${id} damaged`);
  };
  damage(ids.get(1)!, (p) => truncateSync(p, 10), 'UPDATE bodies SET data = substr(data, 1, 10) WHERE message_id = ?');
  damage(ids.get(2)!, (p) => writeFileSync(p, garbage), 'UPDATE bodies SET data = ? WHERE message_id = ?', garbage);
  damage(ids.get(3)!, (p) => unlinkSync(p), 'DELETE FROM bodies WHERE message_id = ?');
  db.prepare("UPDATE messages SET body_type = 'BOGUS' WHERE id = ?").run(ids.get(4)!);
  db.close();

  const sink = await new SmtpSink().start(sinkPort);
  cleanups.push(() => sink.cleanup());
  await pl.start();
  await pl.cli(['queue', 'flush']);
  const healthy = new Set([...ids.keys()].filter((n) => !damaged.has(n)));
  const delivered = await waitFor('every healthy message delivered', () => {
    const got = countByNumber([sink], /<?m(\d+)@sink\.test/);
    return [...healthy].every((n) => got.has(n)) ? got : undefined;
  }, 30_000);
  const quarantinedLines = pl.logs().filter((l) => l.msg === 'queue entry quarantined');
  for (const [n, what] of damaged) {
    const line = quarantinedLines.find((l) => l.queueId === ids.get(n));
    assert.ok(line, `${what} entry ${ids.get(n)} quarantined with a log line`);
    assert.ok(!delivered.has(n), `${what} entry not delivered`);
  }
  const inQuarantine = existsSync(join(dataDir, 'quarantine')) ? readdirSync(join(dataDir, 'quarantine')).length : 0;
  const f = figures(healthy, delivered, new Map(), () => false);
  report('corruption', {
    ...f, queued: count, damaged: damaged.size, quarantined: quarantinedLines.length, bodiesInQuarantine: inQuarantine,
    reasons: quarantinedLines.map((l) => String(l.reason).replace(/\s+/g, '_')).join('|'),
  });
  assert.equal(f.lost, 0);
  assert.equal(quarantinedLines.length, damaged.size, 'exactly the damaged entries are quarantined');
  await pl.stop();
});
