/**
 * Idempotency-Key across a crash, with the real `postline serve` process: a POST under a key
 * whose process is killed (SIGKILL, at the crash point after the submits committed, before the
 * 202) leaves a pending record with the queue IDs; after a restart the retry answers 409 with
 * those IDs and queues nothing again.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { PostlineProcess } from '../helpers/postline-process.js';

let pl: PostlineProcess | undefined;
after(async () => { await pl?.cleanup(); });

test('a retry after the server was killed mid-request answers 409 with the recorded queue IDs and never queues again', async () => {
  pl = new PostlineProcess({ http: true });
  pl.env = { POSTLINE_CRASHPOINT: 'api-after-commit-before-answer' };
  await pl.start();
  const made = await pl.cli(['apikey', 'create', 'crash', '--scope', 'send,read', '--domain', 'app.test']);
  assert.equal(made.code, 0, made.stderr);
  const key = made.stdout.trimEnd().split('\n').at(-1)!;
  const body = JSON.stringify({ from: 'app@app.test', to: ['a@far.test', 'b@far.test'], subject: 'crash', text: 'x', sendAt: Date.now() + 3600_000 });
  const post = () => fetch(`http://127.0.0.1:${pl!.httpPort}/api/v1/messages`, {
    method: 'POST', body, signal: AbortSignal.timeout(20_000),
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'idempotency-key': 'order-77' },
  });
  await assert.rejects(post(), 'the request was answered although the process was to die');
  assert.notEqual(await pl.exited(10_000), 0);
  assert.match(pl.output, /crash point api-after-commit-before-answer fired/);

  pl.env = {};
  await pl.start();
  const retry = await post();
  const answer = await retry.json() as { code: string; message: string; queued: Array<{ address: string; queueId: string }> };
  assert.equal(retry.status, 409, JSON.stringify(answer));
  assert.equal(answer.code, 'ERR_API_IDEMPOTENCY');
  assert.match(answer.message, /outcome is unknown/);
  assert.deepEqual(answer.queued.map((q) => q.address).sort(), ['a@far.test', 'b@far.test']);

  const q = await fetch(`http://127.0.0.1:${pl.httpPort}/api/v1/events?type=message.received&limit=1000`, { headers: { authorization: `Bearer ${key}` }, signal: AbortSignal.timeout(20_000) });
  const ev = await q.json() as { events: Array<{ queueId: string }> };
  assert.deepEqual(ev.events.map((e) => e.queueId).sort(), answer.queued.map((x) => x.queueId).sort(), 'the messages were queued once, and those are the IDs');
  const again = await post();
  assert.equal(again.status, 409);
});
