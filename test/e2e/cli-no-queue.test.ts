/**
 * Commands other than `serve` never create a data directory (issue 15 item 7): `postline queue
 * list` run where there is no queue says so, names the resolved path and how to point at the
 * real one (--config, POSTLINE_CONFIG), exits 2 (the configuration error code) and leaves the
 * working directory empty. POSTLINE_CONFIG finds the real queue. The real CLI (bin/postline.js)
 * in temp directories, against a real `postline serve`.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PostlineProcess, runCli } from '../helpers/postline-process.js';
import { RawSmtp } from '../helpers/raw-smtp.js';
import { freePort } from '../helpers/net.js';

const cleanups: Array<() => Promise<void> | void> = [];
after(async () => { for (const c of cleanups.reverse()) await Promise.resolve(c()).catch(() => {}); });

/** Runs `postline ARGS` in `cwd` with POSTLINE_* variables removed unless given in `env` (bounded to 60 s). */
function runIn(cwd: string, args: string[], env: Record<string, string> = {}, input = ''): Promise<{ code: number; stdout: string; stderr: string }> {
  return runCli(args, input, env, { cwd, cleanEnv: true });
}

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'postline-cwd-'));
  cleanups.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

test('queue and user commands where no queue exists: a clear error, exit 2, nothing created', async () => {
  const cwd = tempDir();
  for (const args of [['queue', 'list'], ['queue', 'flush'], ['queue', 'show', '0123456789ABCDEFGH'], ['user', 'list'], ['user', 'delete', 'bob']]) {
    const r = await runIn(cwd, args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
    assert.equal(r.stdout, '', args.join(' '));
    assert.ok(r.stderr.includes(join(cwd, 'var')), `${args.join(' ')} names the resolved path: ${r.stderr}`);
    assert.match(r.stderr, /--config FILE/);
    assert.match(r.stderr, /POSTLINE_CONFIG/);
    assert.doesNotMatch(r.stderr, /Mail queue is empty/);
    assert.deepEqual(readdirSync(cwd), [], `${args.join(' ')} created nothing`);
  }
  const missing = await runIn(cwd, ['queue', 'list'], { POSTLINE_CONFIG: join(cwd, 'nope.yaml') });
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /cannot read configuration file .*nope\.yaml/);
});

test('user add in a fresh place saves users.json only (no queue), and says where', async () => {
  const cwd = tempDir();
  const r = await runIn(cwd, ['user', 'add', 'alice@example.test'], {}, 'secret\n');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /user alice@example\.test saved/);
  assert.ok(r.stderr.includes(join(cwd, 'var')), r.stderr);
  assert.deepEqual(readdirSync(join(cwd, 'var')), ['users.json']);
});

test('POSTLINE_CONFIG points queue commands at the real queue, with and without a running server', async () => {
  const dead = await freePort(); // nothing listens: the message stays deferred
  const pl = new PostlineProcess({ config: { delivery: { relayhost: { host: '127.0.0.1', port: dead, tls: 'none' }, retry: { initialMs: 600_000 } } } });
  cleanups.push(() => pl.cleanup());
  await pl.start();
  const { c } = await RawSmtp.open(pl.port());
  await c.ehlo();
  const sent = await c.send('alice@origin.test', ['bob@remote.test'], Buffer.from('Subject: kept\r\n\r\nhi\r\n'));
  await c.quit();
  assert.equal(sent.final?.code, 250);
  const id = /queued as ([0-9A-Z]{18})/.exec(sent.final!.text)?.[1];
  assert.ok(id, sent.final!.text);
  const cwd = tempDir();
  const online = await runIn(cwd, ['queue', 'list'], { POSTLINE_CONFIG: pl.configFile });
  assert.equal(online.code, 0, online.stderr);
  assert.match(online.stdout, new RegExp(`^${id} `, 'm'));
  await pl.stop();
  const offline = await runIn(cwd, ['queue', 'list'], { POSTLINE_CONFIG: pl.configFile });
  assert.equal(offline.code, 0, offline.stderr);
  assert.match(offline.stdout, new RegExp(`^${id} `, 'm'));
  const flag = await runIn(cwd, ['queue', 'list', '--config', pl.configFile], { POSTLINE_CONFIG: join(cwd, 'nope.yaml') });
  assert.equal(flag.code, 0, '--config wins over POSTLINE_CONFIG: ' + flag.stderr);
  assert.deepEqual(readdirSync(cwd), []);
  assert.ok(!existsSync(join(cwd, 'var')));
});
