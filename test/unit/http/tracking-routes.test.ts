/**
 * The public tracking and unsubscribe endpoints (src/http/routes/tracking.ts) over a recording
 * EngagementEndpoints double, with a real HTTP client (fetch): the 43-byte GIF and its cache
 * headers, the 302 to the URL the token gives and a 400 (never a redirect) for a bad token, the
 * confirmation page that records nothing, the one-click POST as URL-encoded and multipart forms, a
 * wrong body, no API key needed, the per-client rate limit, and the routes in the OpenAPI document.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startApi } from './harness.js';
import { PIXEL_GIF } from '../../../src/http/routes/tracking.js';
import { TokenError, type LinkToken } from '../../../src/tracking/tokens.js';
import type { EngagementEndpoints, HitFacts, UnsubscribeSource } from '../../../src/tracking/engagement.js';

class FakeEngagement implements EngagementEndpoints {
  readonly calls: string[] = [];
  private check(token: string): void {
    if (token !== 'good') throw new TokenError('signature does not match');
  }
  async open(token: string, f: HitFacts): Promise<void> {
    this.check(token);
    this.calls.push(`open ${f.userAgent} ${f.clientAddress} ${f.method}`);
  }
  async click(token: string): Promise<string> {
    this.check(token);
    this.calls.push('click');
    return 'https://shop.example/offer?id=7';
  }
  checkUnsubscribe(token: string): LinkToken {
    this.check(token);
    return { kind: 'unsubscribe', queueId: 'Q', recipient: 'rcpt@example.net', scope: 'app.test' };
  }
  async unsubscribeByToken(token: string, source: UnsubscribeSource): Promise<LinkToken> {
    this.calls.push(`unsubscribe ${source}`);
    return this.checkUnsubscribe(token);
  }
}

test('pixel, redirect, confirmation page and one-click unsubscribe', async () => {
  const eng = new FakeEngagement();
  const api = await startApi({ engagement: { endpoints: eng, ratePerMinute: () => 1000 } });
  try {
    const gif = await fetch(`${api.url}/t/o/good`, { headers: { 'user-agent': 'UA/1' } });
    assert.equal(gif.status, 200);
    assert.equal(gif.headers.get('content-type'), 'image/gif');
    assert.match(gif.headers.get('cache-control') ?? '', /no-store/);
    const bytes = Buffer.from(await gif.arrayBuffer());
    assert.equal(bytes.length, 43);
    assert.ok(bytes.equals(PIXEL_GIF));
    assert.deepEqual(eng.calls, ['open UA/1 127.0.0.1 GET']);

    const go = await fetch(`${api.url}/t/c/good`, { redirect: 'manual' });
    assert.equal(go.status, 302);
    assert.equal(go.headers.get('location'), 'https://shop.example/offer?id=7');
    const bad = await fetch(`${api.url}/t/c/bad`, { redirect: 'manual' });
    assert.equal(bad.status, 400);
    assert.equal(bad.headers.get('location'), null, 'never a redirect');
    const why = await bad.json() as { code: string; message: string };
    assert.equal(why.code, 'ERR_API_BAD_TOKEN');
    assert.match(why.message, /signature does not match/);
    assert.equal((await fetch(`${api.url}/t/o/bad`)).status, 400);

    const before = eng.calls.length;
    const page = await fetch(`${api.url}/u/good`);
    assert.equal(page.status, 200);
    const html = await page.text();
    assert.match(html, /<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">/);
    assert.match(html, /rcpt@example\.net/);
    assert.equal(eng.calls.length, before, 'GET changes nothing');
    assert.equal((await fetch(`${api.url}/u/bad`)).status, 400);

    const form = await fetch(`${api.url}/u/good`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'List-Unsubscribe=One-Click' });
    assert.equal(form.status, 200);
    assert.deepEqual(await form.json(), { unsubscribed: true, recipient: 'rcpt@example.net', scope: 'app.test' });
    const fd = new FormData();
    fd.set('List-Unsubscribe', 'One-Click');
    const multi = await fetch(`${api.url}/u/good`, { method: 'POST', body: fd });
    assert.equal(multi.status, 200);
    const viaPage = await fetch(`${api.url}/u/good`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded; charset=windows-1252' }, body: 'List-Unsubscribe=One-Click&via=page' });
    assert.equal(viaPage.status, 200);
    assert.match(await viaPage.text(), /Unsubscribed/);
    assert.deepEqual(eng.calls.slice(-3), ['unsubscribe one-click', 'unsubscribe one-click', 'unsubscribe page']);
    const wrong = await fetch(`${api.url}/u/good`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'List-Unsubscribe=Yes' });
    assert.equal(wrong.status, 400);
    assert.equal(eng.calls.length, before + 3, 'a wrong body records nothing');

    const doc = await api.call('/api/openapi.json');
    for (const p of ['/t/o/{token}', '/t/c/{token}', '/u/{token}']) assert.ok(doc.body.paths[p], `${p} in the OpenAPI document`);
  } finally {
    await api.close();
  }
});

test('more requests per minute than tracking.ratePerMinute from one client get 429', async () => {
  const api = await startApi({ engagement: { endpoints: new FakeEngagement(), ratePerMinute: () => 5 } });
  try {
    const codes: number[] = [];
    for (let i = 0; i < 8; i++) codes.push((await fetch(`${api.url}/t/o/good`)).status);
    assert.deepEqual(codes.slice(0, 5), [200, 200, 200, 200, 200]);
    assert.equal(codes[7], 429);
  } finally {
    await api.close();
  }
});
