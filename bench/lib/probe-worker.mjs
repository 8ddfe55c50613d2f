// Latency probe, run in a worker thread beside smtp-source (which reports no latency).
// It sends one message at a time, paced by intervalMs, in the same mode as the load (a new
// connection per message, or one connection for all), and timestamps each accept: the time from
// writing the body with its final ".\r\n" to reading the 250 reply. Its own event loop keeps the
// main thread's /proc sampling from skewing the timestamps.
import { parentPort, workerData } from 'node:worker_threads';
import { BenchSmtpClient, makeMessage } from './smtp-client.mjs';

const { port, size, intervalMs, reuse, maxSamples, maxMs } = workerData;
let stopping = false;
parentPort.on('message', (m) => { if (m === 'stop') stopping = true; });

const latenciesMs = [];
let accepted = 0;
const errors = [];
const started = Date.now();
const body = makeMessage(size, 'probe') + '.\r\n';
let client = null;

async function session() {
  const c = await BenchSmtpClient.connect({ port });
  await c.cmd('EHLO probe.source.test');
  return c;
}

while (!stopping && latenciesMs.length < maxSamples && Date.now() - started < maxMs && errors.length < 20) {
  const t0 = Date.now();
  try {
    if (!client) client = await session();
    await client.cmd('MAIL FROM:<probe@source.test>');
    await client.cmd('RCPT TO:<rcpt@sink.test>');
    await client.cmd('DATA', 3);
    const sent = process.hrtime.bigint();
    await client.write(body);
    const r = await client.reply();
    const ms = Number(process.hrtime.bigint() - sent) / 1e6;
    if (r.code !== 250) throw new Error(`end of data -> ${r.text}`);
    latenciesMs.push(ms);
    accepted++;
    if (!reuse) { await client.quit(); client = null; }
  } catch (e) {
    errors.push(String(e?.message ?? e));
    client?.destroy();
    client = null;
  }
  const wait = intervalMs - (Date.now() - t0);
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
}
if (client) await client.quit();
parentPort.postMessage({ latenciesMs, accepted, errors });
