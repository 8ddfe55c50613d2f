import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Command } from 'commander';
import { validateConfig } from '../../../src/config/load.js';
import { silentLogger } from '../../../src/core/log.js';
import { registerQueueCommands, formatQueueList } from '../../../src/cli/queue.js';
import { ControlServer } from '../../../src/control/server.js';
import { MemoryQueueStore } from '../../helpers/memory-store.js';
import { BODY, HEADERS, all, harness, tempfail } from '../scheduler/harness.js';

function cli(dataDir: string, store: MemoryQueueStore | undefined) {
  let out = '';
  let opened = 0;
  const program = new Command().exitOverride().configureOutput({ writeErr: () => {}, writeOut: () => {} });
  registerQueueCommands(program, {
    loadConfig: (file) => { if (file === 'bad.yml') throw new Error('bad.yml: not valid YAML'); return validateConfig({ hostname: 'mx.test', dataDir }, '/', {}); },
    openStore: async () => { opened++; if (!store) throw new Error('store must not be opened while a server runs'); return store; },
    stdout: new Writable({ write(c, _e, cb) { out += String(c); cb(); } }),
    timeoutMs: 2000,
  });
  return {
    run: async (...args: string[]) => { out = ''; await program.parseAsync(['node', 'postline', 'queue', ...args]); return out; },
    opened: () => opened,
  };
}

test('queue commands without a server work on the store directly', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pl-cli-'));
  try {
    const store = new MemoryQueueStore();
    const now = Date.now();
    const m = await store.put({ mailFrom: 's@example.com', recipients: [{ address: 'a@example.org' }, { address: 'b@example.org' }], arrivedAt: now }, BODY);
    await store.record(m.id, { updates: [{ idx: 1, status: 'delivered', dsnStatus: '2.0.0' }], next: { attempts: 1, nextAttemptAt: now + 3_600_000, lastError: '451 4.3.0 try again later' } });
    const c = cli(dir, store);
    await c.run('hold', m.id.toLowerCase());
    assert.equal((await store.get(m.id))!.held, true);
    const list = await c.run('list');
    assert.match(list, new RegExp(`^${m.id}! +${BODY.length} `, 'm'));
    assert.match(list, /\(451 4\.3\.0 try again later\)/);
    assert.match(list, /^ +a@example\.org$/m);
    assert.doesNotMatch(list, /b@example\.org/);
    assert.match(list, /-- 1 Kbytes in 1 Request\./);
    const json = JSON.parse(await c.run('list', '--json'));
    assert.equal(json[0].id, m.id);
    const show = await c.run('show', m.id);
    assert.match(show, /Sender: +<s@example\.com>/);
    assert.match(show, /<b@example\.org> delivered 2\.0\.0/);
    assert.ok(show.endsWith('Headers:\n' + HEADERS));
    assert.ok((await c.run('show', m.id, '--body')).endsWith('Message:\n' + BODY));
    await assert.rejects(c.run('flush', m.id), /on hold/);
    await c.run('release', m.id);
    assert.equal(await c.run('flush'), 'flushed 1 message (no server is running: they will be tried when `postline serve` starts)\n');
    assert.ok((await store.get(m.id))!.nextAttemptAt <= Date.now());
    await assert.rejects(c.run('delete', '0123456789ABCDEFGH'), /0123456789ABCDEFGH: no such message/);
    await assert.rejects(c.run('delete', 'nope'), /bad queue ID "nope"/);
    await assert.rejects(c.run('list', '-c', 'bad.yml'), /not valid YAML/);
    assert.equal(await c.run('delete', m.id), `${m.id}: deleted\n`);
    assert.equal(store.size, 0);
    assert.equal(await c.run('list'), 'Mail queue is empty\n');
    assert.ok(store.closed);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('queue commands use the control socket when the server runs', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pl-cli-'));
  const h = harness({ script: all(tempfail) });
  await h.scheduler.start();
  const server = new ControlServer({ socketPath: join(dir, 'control.sock'), scheduler: h.scheduler, logger: silentLogger() });
  await server.start();
  try {
    const m = await h.put({ mailFrom: '', recipients: [{ address: 'a@example.org' }] }, BODY);
    const c = cli(dir, undefined);
    assert.match(await c.run('list'), /MAILER-DAEMON/);
    assert.equal(await c.run('hold', m.id), `${m.id}: held\n`);
    assert.equal((await h.store.get(m.id))!.held, true);
    await c.run('release', m.id);
    await h.scheduler.runDueOnce();
    assert.equal(h.agent.calls.length, 1, 'released message was due');
    assert.equal(await c.run('flush', m.id), 'flushed 1 message\n');
    await h.scheduler.runDueOnce();
    assert.equal(h.agent.calls.length, 2, 'flushed message tried again');
    await assert.rejects(c.run('show', '0123456789ABCDEFGH'), /no such message/);
    assert.equal(c.opened(), 0);
  } finally {
    await server.stop();
    await h.scheduler.stop(0);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('formatQueueList', () => {
  assert.equal(formatQueueList([]), 'Mail queue is empty\n');
});
