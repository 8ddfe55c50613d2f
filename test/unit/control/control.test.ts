import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, existsSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../../src/core/log.js';
import { controlRequest, isNoServer, ControlUnavailableError } from '../../../src/control/client.js';
import { ControlServer } from '../../../src/control/server.js';
import { parseRequest } from '../../../src/control/protocol.js';
import type { MessageDetail } from '../../../src/scheduler/admin.js';
import type { QueueSummary } from '../../../src/spool/types.js';
import { BODY, HEADERS, all, harness, tempfail } from '../scheduler/harness.js';

async function setup() {
  const dir = mkdtempSync(join(tmpdir(), 'pl-ctl-'));
  const socketPath = join(dir, 'control.sock');
  const h = harness({ script: all(tempfail) });
  await h.scheduler.start();
  const server = new ControlServer({ socketPath, scheduler: h.scheduler, logger: silentLogger() });
  await server.start();
  const cleanup = async (): Promise<void> => {
    await server.stop();
    await h.scheduler.stop(0);
    rmSync(dir, { recursive: true, force: true });
  };
  return { dir, socketPath, h, server, cleanup };
}

/** Sends raw text and collects `n` response lines. */
function raw(socketPath: string, text: string, n: number): Promise<unknown[]> {
  return new Promise((resolve, reject) => {
    const s = createConnection(socketPath);
    let buf = '';
    s.setEncoding('utf8');
    s.on('connect', () => s.write(text));
    s.on('data', (c: string) => {
      buf += c;
      const lines = buf.split('\n').filter(Boolean);
      if (lines.length >= n) { s.destroy(); resolve(lines.map((l) => JSON.parse(l))); }
    });
    s.on('error', reject);
    s.on('close', () => resolve(buf.split('\n').filter(Boolean).map((l) => JSON.parse(l))));
  });
}

test('control socket round trip: list, show, hold, release, flush, delete', async () => {
  const { socketPath, h, cleanup } = await setup();
  try {
    assert.equal(statSync(socketPath).mode & 0o777, 0o600);
    const m = await h.put({ mailFrom: 's@example.com', recipients: [{ address: 'a@example.org' }] }, BODY);
    const list = await controlRequest(socketPath, { op: 'list' }, 2000);
    assert.equal(list.ok, true);
    assert.deepEqual((list as { result: QueueSummary[] }).result.map((r) => r.id), [m.id]);
    const show = await controlRequest(socketPath, { op: 'show', id: m.id, body: true }, 2000);
    assert.ok(show.ok);
    const d = (show as { result: MessageDetail }).result;
    assert.equal(d.headers, HEADERS);
    assert.equal(Buffer.from(d.bodyBase64!, 'base64').toString(), BODY);
    assert.deepEqual(await controlRequest(socketPath, { op: 'hold', id: m.id }, 2000), { ok: true, result: { id: m.id } });
    assert.equal((await h.store.get(m.id))!.held, true);
    assert.deepEqual(await controlRequest(socketPath, { op: 'flush', id: m.id }, 2000), { ok: false, error: 'message is on hold; release it first', code: 'ERR_MESSAGE_HELD' });
    assert.deepEqual(await controlRequest(socketPath, { op: 'release', id: m.id }, 2000), { ok: true, result: { id: m.id } });
    await h.scheduler.runDueOnce();
    assert.equal(h.agent.calls.length, 1);
    assert.deepEqual(await controlRequest(socketPath, { op: 'flush' }, 2000), { ok: true, result: { flushed: 1 } });
    await h.scheduler.runDueOnce();
    assert.equal(h.agent.calls.length, 2, 'flush over the socket made it due');
    assert.deepEqual(await controlRequest(socketPath, { op: 'delete', id: m.id }, 2000), { ok: true, result: { id: m.id } });
    assert.equal(h.store.size, 0);
    assert.deepEqual(await controlRequest(socketPath, { op: 'show', id: m.id }, 2000), { ok: false, error: 'no such message', code: 'ERR_NO_SUCH_MESSAGE' });
  } finally {
    await cleanup();
  }
});

test('control socket: bad input gets {ok:false} and the server keeps serving', async () => {
  const { socketPath, cleanup } = await setup();
  try {
    const answers = await raw(socketPath, [
      'not json', '[1,2]', '{"op":"explode"}', '{"op":"show"}', '{"op":"hold","id":"../../etc"}', '{"op":"show","id":"0123456789ABCDEFGH","body":"yes"}',
      '', '{"op":"hold","id":"0123456789ABCDEFGH"}', '{"op":"list"}',
    ].join('\n') + '\n', 8) as { ok: boolean; error?: string }[];
    assert.deepEqual(answers.map((a) => a.error ?? 'ok'), [
      'request is not valid JSON', 'request must be a JSON object', 'unknown op; expected one of list, show, flush, delete, hold, release, destinations, suspend, resume, bounce, suppression.list, suppression.add, suppression.remove',
      'show needs an id', 'bad queue ID', 'body must be true or false', 'no such message', 'ok',
    ]);
    const long = await raw(socketPath, 'x'.repeat(70 * 1024), 1) as { error: string }[];
    assert.deepEqual(long.map((a) => a.error), ['request too long']);
    const after = await controlRequest(socketPath, { op: 'list' }, 2000);
    assert.deepEqual(after, { ok: true, result: [] });
  } finally {
    await cleanup();
  }
});

test('control socket: stale file removed at start, live socket refused, file removed at stop', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pl-ctl-'));
  const socketPath = join(dir, 'control.sock');
  try {
    writeFileSync(socketPath, 'stale');
    const h = harness();
    const a = new ControlServer({ socketPath, scheduler: h.scheduler, logger: silentLogger() });
    await a.start();
    const b = new ControlServer({ socketPath, scheduler: h.scheduler, logger: silentLogger() });
    await assert.rejects(b.start(), /in use/);
    await a.stop();
    assert.equal(existsSync(socketPath), false);
    await assert.rejects(controlRequest(socketPath, { op: 'list' }, 1000), (e: unknown) => isNoServer(e));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('control client: timeout when the server never answers', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pl-ctl-'));
  const socketPath = join(dir, 'control.sock');
  const { createServer } = await import('node:net');
  const conns = new Set<import('node:net').Socket>();
  const mute = createServer((c) => { conns.add(c); });
  await new Promise<void>((r) => mute.listen(socketPath, r));
  try {
    await assert.rejects(controlRequest(socketPath, { op: 'list' }, 50), (e: unknown) => e instanceof ControlUnavailableError && e.code === 'ETIMEDOUT' && !isNoServer(e));
  } finally {
    for (const c of conns) c.destroy();
    await new Promise<void>((r) => mute.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  }
});

test('parseRequest accepts the documented shapes', () => {
  assert.deepEqual(parseRequest('{"op":"list"}'), { op: 'list', id: undefined, body: undefined });
  assert.deepEqual(parseRequest('{"op":"flush","id":"0123456789ABCDEFGH"}'), { op: 'flush', id: '0123456789ABCDEFGH', body: undefined });
  assert.deepEqual(parseRequest('{"op":"flush","id":7}'), { error: 'bad queue ID' });
});
