import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { lockDataDir } from '../../../src/spool/data-dir-lock.js';

test('one server per data directory: a live holder refuses, a stale pid file is taken over', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'postline-lock-'));
  // A live process whose command line says postline holds the lock.
  const holder = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 20000)', 'postline-lock-holder'], { stdio: 'ignore' });
  try {
    await new Promise((r) => holder.once('spawn', r));
    writeFileSync(join(dir, 'postline.pid'), `${holder.pid}\n`);
    assert.throws(() => lockDataDir(dir), /another Postline \(pid \d+\) is running/);
    holder.kill('SIGKILL');
    await new Promise((r) => holder.once('exit', r));
    const lock = lockDataDir(dir); // the holder is gone: stale file taken over
    assert.equal(readFileSync(lock.file, 'utf8').trim(), String(process.pid));
    lock.release();
    assert.ok(!existsSync(lock.file));
    const again = lockDataDir(dir);
    again.release();
  } finally {
    holder.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});
