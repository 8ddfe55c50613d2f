// The bench's webhook endpoint: a plain node:http server on 127.0.0.1 that verifies every request's
// Standard Webhooks signature (npm standardwebhooks), counts the events and can be switched to
// answer 503 (an endpoint outage). It runs in a worker thread so that its event loop is not shared
// with the bench's load generators; its counters live in a SharedArrayBuffer the bench reads at any
// time without a round trip.
//
// Counters (all since start): requests, events acknowledged (2xx answered), distinct event ids
// acknowledged, highest acknowledged event id, 503 answers, bad signatures, bad bodies.
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import http from 'node:http';

const F = { requests: 0, acked: 1, distinct: 2, maxId: 3, refused: 4, badSignature: 5, badBody: 6, mode: 7, minId: 8 };
const NF = 9;

if (!isMainThread && workerData?.webhookReceiver) {
  const { Webhook } = await import('standardwebhooks');
  const wh = new Webhook(workerData.secret);
  const c = new Float64Array(workerData.shared); // Float64: event ids and counts beyond 2^31 stay exact
  const seen = new Set();
  const server = http.createServer((req, res) => {
    const chunks = [];
    let size = 0;
    req.on('data', (d) => { size += d.length; if (size <= 16 * 1024 * 1024) chunks.push(d); });
    req.on('end', () => {
      c[F.requests]++;
      if (c[F.mode] !== 0) { c[F.refused]++; res.writeHead(503, { 'content-type': 'text/plain', 'retry-after': '1' }).end('outage (bench)\n'); return; }
      const body = Buffer.concat(chunks).toString('utf8');
      let payload;
      try {
        payload = wh.verify(body, { 'webhook-id': req.headers['webhook-id'], 'webhook-timestamp': req.headers['webhook-timestamp'], 'webhook-signature': req.headers['webhook-signature'] });
      } catch {
        c[F.badSignature]++;
        res.writeHead(400, { 'content-type': 'text/plain' }).end('bad signature\n');
        return;
      }
      const events = Array.isArray(payload) ? payload : [payload];
      for (const e of events) {
        const id = Number(e?.data?.id);
        if (!Number.isFinite(id)) { c[F.badBody]++; continue; }
        c[F.acked]++;
        if (!seen.has(id)) { seen.add(id); c[F.distinct]++; }
        if (id > c[F.maxId]) c[F.maxId] = id;
        if (c[F.minId] === 0 || id < c[F.minId]) c[F.minId] = id;
      }
      res.writeHead(204).end();
    });
  });
  server.keepAliveTimeout = 30000;
  server.listen(workerData.port ?? 0, '127.0.0.1', () => parentPort.postMessage({ port: server.address().port }));
  parentPort.on('message', (m) => {
    if (m === 'stop') server.close(() => parentPort.postMessage('stopped'));
    if (m === 'stop') server.closeAllConnections?.();
  });
}

/** The receiver seen from the bench: start(), url, counts(), setDown(bool), stop(). */
export class WebhookReceiver {
  /** @param {{ secret: string, port?: number }} o secret: 'whsec_' + base64, the endpoint's secret. */
  constructor({ secret, port = 0 }) {
    this.secret = secret;
    this.port = port;
    this.shared = new SharedArrayBuffer(8 * NF);
    this.c = new Float64Array(this.shared);
    this.worker = null;
  }

  /** Starts the worker and its server; resolves once it listens. @throws when the worker fails to start. */
  async start() {
    this.worker = new Worker(new URL(import.meta.url), { workerData: { webhookReceiver: true, secret: this.secret, port: this.port, shared: this.shared } });
    this.port = await new Promise((res, rej) => {
      this.worker.once('error', rej);
      this.worker.once('exit', (code) => rej(new Error(`webhook receiver exited (${code})`)));
      this.worker.once('message', (m) => res(m.port));
    });
    this.worker.removeAllListeners('exit');
    this.worker.removeAllListeners('error');
    this.worker.on('error', (e) => { this.error = e; });
    this.command = `bench/lib/webhook-receiver.mjs: node:http on 127.0.0.1:${this.port} in a worker thread, standardwebhooks verify per request, 204 (or 503 during an outage)`;
  }

  get url() { return `http://127.0.0.1:${this.port}/hooks`; }

  /** true: answer 503 to everything (outage); false: verify and answer 204. */
  setDown(down) { this.c[F.mode] = down ? 1 : 0; }

  /** A snapshot of the counters: { requests, acked, distinct, maxId, minId, refused, badSignature, badBody }. */
  counts() {
    const o = {};
    for (const [k, i] of Object.entries(F)) if (k !== 'mode') o[k] = this.c[i];
    return o;
  }

  async stop() {
    if (!this.worker) return;
    const w = this.worker;
    this.worker = null;
    w.postMessage('stop');
    await Promise.race([new Promise((r) => w.once('message', r)), new Promise((r) => setTimeout(r, 2000))]);
    await w.terminate();
  }

  stopSync() { this.worker?.terminate(); this.worker = null; }
}
