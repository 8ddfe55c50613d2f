/**
 * The HTTP API with the suppression list (a real embedded store in a temp queue.db): the OpenAPI
 * document with /api/v1/suppressions still valid and complete, sending to suppressed recipients
 * (status "suppressed", not submitted, a rejection recorded; none submitted when all are), the
 * list routes' answers and their 400s.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import SwaggerParser from '@apidevtools/swagger-parser';
import { systemClock } from '../../../src/core/clock.js';
import { silentLogger } from '../../../src/core/log.js';
import { configSchema } from '../../../src/config/schema.js';
import { SqliteQueueStore } from '../../../src/spool/sqlite/store.js';
import { SuppressionAdmin } from '../../../src/suppression/admin.js';
import { SuppressionGuard } from '../../../src/suppression/guard.js';
import { tempDir } from '../spool/helpers.js';
import { startApi, type ApiHarness } from './harness.js';

describe('API with the suppression list', () => {
  let h: ApiHarness;
  let qs: SqliteQueueStore;
  let rm: () => Promise<void>;
  before(async () => {
    const t = await tempDir('postline-api-supp-');
    rm = t.cleanup;
    qs = new SqliteQueueStore({ dataDir: t.dir, minFreeBytes: 0, logger: silentLogger() });
    await qs.open();
    const store = qs.suppressionStore();
    const config = configSchema.parse({});
    h = await startApi({ suppressions: { check: new SuppressionGuard(store, config), admin: new SuppressionAdmin(store, systemClock) } });
  });
  after(async () => { await h.close(); await qs.close(); await rm(); });

  it('the OpenAPI document stays valid and lists the suppression routes', async () => {
    const r = await h.call('/api/openapi.json', { key: 'none' });
    await SwaggerParser.validate(structuredClone(r.body));
    assert.ok(r.body.paths['/api/v1/suppressions'].get.parameters.some((p: { name: string }) => p.name === 'domain'));
    assert.ok(r.body.paths['/api/v1/suppressions'].post.requestBody.content['application/json'].schema);
    assert.ok(r.body.paths['/api/v1/suppressions/{address}'].delete.responses['404']);
    const served = h.server.routes.filter((x) => !x.hidden && x.method !== 'HEAD' && !x.url.startsWith('/api/docs'));
    const listed = new Set(Object.entries(r.body.paths as Record<string, object>).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`)));
    for (const x of served) assert.ok(listed.has(`${x.method} ${x.url.replace(/:(\w+)/g, '{$1}')}`), `${x.method} ${x.url}`);
  });

  it('a suppressed recipient is answered "suppressed" and not submitted; with all suppressed nothing is', async () => {
    const add = await h.call('/api/v1/suppressions', { method: 'POST', json: [{ address: 'Gone@Example.net', reason: 'hard-bounce' }, { address: '*@dead.example' }] });
    assert.equal(add.status, 201, JSON.stringify(add.body));
    assert.deepEqual(add.body.items.map((e: { address: string; scope: string }) => [e.address, e.scope]), [['gone@example.net', '*'], ['*@dead.example', '*']]);
    h.sink.submissions.length = 0;
    const r = await h.call('/api/v1/messages', { method: 'POST', json: { from: 'app@example.com', to: ['gone@example.net', 'ok@example.net'], text: 'x' } });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    assert.deepEqual(r.body.recipients[0], { address: 'gone@example.net', status: 'suppressed', reason: 'hard-bounce' });
    assert.equal(r.body.recipients[1].status, 'queued');
    assert.deepEqual(h.sink.submissions.map((x) => x.envelope.recipients[0]!.address), ['ok@example.net']);
    const rej = h.rejections.find((x) => x.recipient === 'gone@example.net');
    assert.equal(rej?.reply, '550 5.7.1 <gone@example.net>: recipient is on the suppression list (hard-bounce)');
    const all = await h.call('/api/v1/messages', { method: 'POST', json: { from: 'app@example.com', to: ['a@DEAD.example'], bcc: ['gone@example.net'], text: 'x' } });
    assert.equal(all.status, 202);
    assert.deepEqual(all.body.recipients.map((x: { status: string }) => x.status), ['suppressed', 'suppressed']);
    assert.equal(h.sink.submissions.length, 1, 'nothing more submitted');
  });

  it('list, delete and their errors', async () => {
    const p = await h.call('/api/v1/suppressions?domain=DEAD.example', { key: 'read' });
    assert.deepEqual(p.body, { items: [p.body.items[0]] });
    assert.equal(p.body.items[0].address, '*@dead.example');
    assert.equal((await h.call('/api/v1/suppressions?reason=nope', { key: 'read' })).status, 400);
    const bad = await h.call('/api/v1/suppressions', { method: 'POST', json: { address: 'x@-bad-.example', scope: 'not a domain' } });
    assert.equal(bad.status, 400);
    assert.deepEqual(bad.body.issues.map((i: { path: string }) => i.path).sort(), ['address', 'scope']);
    const expired = await h.call('/api/v1/suppressions', { method: 'POST', json: { address: 'late@example.net', expiresAt: 1000 } });
    assert.equal(expired.status, 400);
    assert.match(expired.body.message, /expiresAt must be a time in the future/);
    const del = await h.call(`/api/v1/suppressions/${encodeURIComponent('GONE@example.net')}`, { method: 'DELETE', key: 'admin' });
    assert.equal(del.status, 200, JSON.stringify(del.body));
    assert.equal(del.body.removed.address, 'gone@example.net');
    const again = await h.call(`/api/v1/suppressions/${encodeURIComponent('gone@example.net')}`, { method: 'DELETE', key: 'admin' });
    assert.equal(again.status, 404);
    assert.equal(again.body.code, 'ERR_API_NOT_FOUND');
    assert.equal((await h.call('/api/v1/suppressions/not-an-address', { method: 'DELETE', key: 'admin' })).status, 400);
    assert.equal((await h.call('/api/v1/suppressions', { method: 'POST', json: { address: 'a@b.example' }, key: 'send' })).status, 403);
  });
});
