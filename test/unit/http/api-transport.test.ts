/**
 * HTTP API at the transport level, over raw TCP on 127.0.0.1: the key is checked on the headers
 * before any body is read (a large or a slow body gets 401 at once; Expect: 100-continue gets the
 * 401 without "100 Continue"), http.requestTimeoutMs gives a trickling client 408, connections
 * over http.maxConnections are closed, and node-level errors (bad Content-Length, 431, 414) come
 * in the API's JSON error shape.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { startApi, type ApiHarness } from './harness.js';

/** Opens a TCP connection to the harness. */
function open(h: ApiHarness): Promise<Socket> {
  const port = Number(new URL(h.url).port);
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

/** Everything `s` sends until it closes or `ms` pass (then resolves with what came, `closed` false). */
function collect(s: Socket, ms: number): Promise<{ text: string; closed: boolean; at: number }> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    let text = '';
    const done = (closed: boolean) => { clearTimeout(t); resolve({ text, closed, at: Date.now() - t0 }); };
    const t = setTimeout(() => done(false), ms);
    s.on('data', (d: Buffer) => { text += d.toString('latin1'); });
    s.once('close', () => done(true));
    s.once('error', () => {});
  });
}

/** Reads until `re` matches what arrived (bounded by `ms`). */
function until(s: Socket, re: RegExp, ms: number): Promise<{ text: string; at: number }> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    let text = '';
    const t = setTimeout(() => reject(new Error(`no ${re} within ${ms} ms; got ${JSON.stringify(text)}`)), ms);
    const on = (d: Buffer) => {
      text += d.toString('latin1');
      if (re.test(text)) { clearTimeout(t); s.off('data', on); resolve({ text, at: Date.now() - t0 }); }
    };
    s.on('data', on);
  });
}

/** The JSON body of a raw HTTP answer. */
const jsonOf = (text: string): any => JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4));

describe('API key checked before the body is read', () => {
  let h: ApiHarness;
  before(async () => { h = await startApi(); });
  after(async () => { await h.close(); });

  it('answers 401 at once to a large body without a key, without reading it', async () => {
    const s = await open(h);
    try {
      s.write(`POST /api/v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${50 * 1024 * 1024}\r\n\r\n{"from":`);
      const r = await until(s, /\r\n\r\n\{.*\}/s, 2000);
      assert.match(r.text, /^HTTP\/1\.1 401 /);
      assert.match(r.text, /connection: close/i);
      assert.equal(jsonOf(r.text).code, 'ERR_API_UNAUTHORIZED');
      assert.ok(r.at < 1500, `401 after ${r.at} ms`);
    } finally { s.destroy(); }
  });

  it('answers 403 at once to a slow body with a key lacking the scope', async () => {
    const s = await open(h);
    const trickle = setInterval(() => { if (!s.destroyed) s.write('x'); }, 100);
    try {
      s.write(`POST /api/v1/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${h.key.read}\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n`);
      const r = await until(s, /\r\n\r\n\{.*\}/s, 2000);
      assert.match(r.text, /^HTTP\/1\.1 403 /);
      assert.ok(r.at < 1500);
    } finally { clearInterval(trickle); s.destroy(); }
  });

  it('answers Expect: 100-continue with 401 and no "100 Continue"; a good key gets 100 then the answer', async () => {
    const s = await open(h);
    try {
      s.write('POST /api/v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n');
      const r = await until(s, /\r\n\r\n\{.*\}/s, 2000);
      assert.match(r.text, /^HTTP\/1\.1 401 /);
      assert.doesNotMatch(r.text, /100 Continue/);
    } finally { s.destroy(); }
    const body = JSON.stringify({ from: 'a@example.com', to: ['b@example.net'], text: 'hi' });
    const g = await open(h);
    try {
      g.write(`POST /api/v1/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${h.key.send}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nExpect: 100-continue\r\n\r\n`);
      await until(g, /^HTTP\/1\.1 100 Continue\r\n\r\n/, 2000);
      g.write(body);
      const r = await until(g, /HTTP\/1\.1 202 .*\r\n\r\n\{.*\}/s, 5000);
      assert.match(r.text, /"queueId"/);
    } finally { g.destroy(); }
  });

  it('answers an authorized request whose Content-Length is over the limit with 413 before reading it', async () => {
    const s = await open(h);
    try {
      s.write(`POST /api/v1/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${h.key.send}\r\nContent-Type: application/json\r\nContent-Length: ${2 * 1024 ** 3}\r\nExpect: 100-continue\r\n\r\n`);
      const r = await until(s, /\r\n\r\n\{.*\}/s, 2000);
      assert.match(r.text, /^HTTP\/1\.1 413 /);
      assert.doesNotMatch(r.text, /100 Continue/);
      assert.equal(jsonOf(r.text).code, 'ERR_API_TOO_LARGE');
    } finally { s.destroy(); }
  });
});

describe('node-level limits and errors', () => {
  let h: ApiHarness;
  before(async () => { h = await startApi({ config: { http: { requestTimeoutMs: 1000, maxConnections: 3 } } }); });
  after(async () => { await h.close(); });

  it('gives a client trickling its body 408 in the JSON shape within about requestTimeoutMs + 1 s', async () => {
    const s = await open(h);
    const trickle = setInterval(() => { if (!s.destroyed) s.write(' '); }, 100);
    const t0 = Date.now();
    try {
      s.write(`POST /api/v1/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${h.key.send}\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{`);
      const r = await collect(s, 5000);
      const took = Date.now() - t0;
      assert.match(r.text, /^HTTP\/1\.1 408 /, r.text);
      assert.equal(jsonOf(r.text).code, 'ERR_API_TIMEOUT');
      assert.ok(took >= 900 && took < 2600, `408 after ${took} ms`);
    } finally { clearInterval(trickle); s.destroy(); }
  });

  it('closes connections over http.maxConnections', async () => {
    const held = [await open(h), await open(h), await open(h)];
    try {
      const extra = await open(h);
      extra.write('GET /api/v1/events HTTP/1.1\r\nHost: x\r\n\r\n');
      const r = await collect(extra, 2000);
      assert.equal(r.closed, true, 'the 4th connection stayed open');
      assert.equal(r.text, '');
    } finally { for (const s of held) s.destroy(); }
    // Once they are closed, new connections are served again.
    await new Promise((r) => setTimeout(r, 100));
    const ok = await h.call('/api/v1/events?limit=1');
    assert.equal(ok.status, 200);
  });

  it('answers a bad Content-Length, a too large header section and a too long parameter in the JSON shape', async () => {
    const s = await open(h);
    s.write('POST /api/v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 12abc\r\n\r\n');
    const r = await collect(s, 2000);
    assert.match(r.text, /^HTTP\/1\.1 400 /);
    assert.equal(jsonOf(r.text).code, 'ERR_API_HTTP');
    assert.match(jsonOf(r.text).message, /Content-Length/);

    const big = await open(h);
    big.write(`GET /api/v1/events HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
    const b = await collect(big, 2000);
    assert.match(b.text, /^HTTP\/1\.1 431 /);
    assert.equal(jsonOf(b.text).status, 431);

    // Route parameters may be as long as a link token (tracking routes), 8192 characters; longer: 414.
    const long = await h.call(`/api/v1/messages/${'A'.repeat(9000)}`);
    assert.equal(long.status, 414);
    assert.equal(long.body.code, 'ERR_API_TOO_LARGE');
    assert.equal(long.body.status, 414);
  });
});
