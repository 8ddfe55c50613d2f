// Load generator for bench/destinations.mjs, in a worker thread: `count` messages over `sessions`
// persistent SMTP sessions, message i to r{i}@d{i mod domains}.test (one recipient each), so the
// load is spread round-robin over the destination domains (smtp-source has one fixed recipient).
// Each session takes the next message number from a shared counter and sends EHLO once, then
// MAIL, RCPT, DATA, the body with its final ".\r\n" in one write, one command at a time.
// Posts { accepted, errors, firstAcceptAt, lastAcceptAt, startedAt, bodyBytes } (ms epoch).
import { parentPort, workerData } from 'node:worker_threads';
import { BenchSmtpClient, makeMessage } from './smtp-client.mjs';

const { port, count, sessions, domains, size, timeoutMs } = workerData;
const startedAt = Date.now();
const deadline = startedAt + timeoutMs;
let next = 0;
let accepted = 0;
let firstAcceptAt = null;
let lastAcceptAt = null;
const errors = [];
const bodyBytes = Buffer.byteLength(makeMessage(size, 'spread.0') + '.\r\n');

async function session(s) {
  let c = null;
  let failures = 0;
  while (next < count && Date.now() < deadline && failures < 20) {
    const i = next++;
    try {
      if (!c) { c = await BenchSmtpClient.connect({ port }); await c.cmd(`EHLO load${s}.source.test`); }
      await c.cmd('MAIL FROM:<bench@source.test>');
      await c.cmd(`RCPT TO:<r${i}@d${i % domains}.test>`);
      await c.cmd('DATA', 3);
      await c.write(makeMessage(size, `spread.${i}`) + '.\r\n');
      const r = await c.reply();
      if (r.code !== 250) throw new Error(`end of data -> ${r.text}`);
      lastAcceptAt = Date.now();
      firstAcceptAt ??= lastAcceptAt;
      accepted++;
    } catch (e) {
      failures++;
      if (errors.length < 10) errors.push(`message ${i}: ${String(e?.message ?? e)}`);
      c?.destroy();
      c = null;
    }
  }
  if (c) await c.quit();
}

await Promise.all(Array.from({ length: sessions }, (_, s) => session(s)));
parentPort.postMessage({ accepted, attempted: Math.min(next, count), errors, startedAt, firstAcceptAt, lastAcceptAt, bodyBytes });
