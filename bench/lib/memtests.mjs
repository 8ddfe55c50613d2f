// Memory tests: RSS with many idle client connections, and RSS while one huge message streams
// through (client -> server -> sink).
import net from 'node:net';
import { BenchSmtpClient } from './smtp-client.mjs';
import { memSnapshot, startMemSampler } from './proc.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Opens `count` connections (from 127.0.0.2, .3, ... so no single source address runs short of
 * ports), waits for each greeting, and measures the server's memory while all sit idle.
 */
export async function idleConnections(server, { count, parallel = 200, timeoutMs = 180000, log }) {
  const before = await memSnapshot(server.rootPid);
  const sockets = [];
  let greeted = 0, failed = 0;
  const errors = new Map();
  const deadline = Date.now() + timeoutMs;
  const t0 = Date.now();
  let next = 0;
  const openOne = (i) => new Promise((resolve) => {
    const localAddress = `127.0.0.${2 + Math.floor(i / 2000)}`;
    const s = net.connect({ host: '127.0.0.1', port: server.port, localAddress });
    sockets.push(s);
    let done = false;
    const finish = (ok, why) => {
      if (done) return; done = true;
      clearTimeout(t);
      if (ok) greeted++; else { failed++; errors.set(why, (errors.get(why) ?? 0) + 1); s.destroy(); }
      resolve();
    };
    const t = setTimeout(() => finish(false, 'greeting timeout'), 30000);
    s.setEncoding('latin1');
    s.on('data', (d) => { if (d.startsWith('220')) finish(true); else finish(false, d.slice(0, 60)); });
    s.on('error', (e) => finish(false, e.code ?? e.message));
    s.on('close', () => finish(false, 'closed'));
  });
  const workers = [];
  for (let w = 0; w < parallel; w++) {
    workers.push((async () => {
      while (next < count && Date.now() < deadline && failed < 500) await openOne(next++);
    })());
  }
  await Promise.all(workers);
  const openMs = Date.now() - t0;
  log?.(`  ${greeted} connections greeted (${failed} failed) in ${openMs} ms; holding them`);
  // All idle now; take the highest of a few samples over 3 s (GC may run in between).
  let held = { rss: 0, pss: 0 };
  for (let i = 0; i < 6; i++) {
    await sleep(500);
    const m = await memSnapshot(server.rootPid);
    if (m.rss > held.rss) held = m;
  }
  for (const s of sockets) s.destroy();
  await sleep(1000);
  const after = await memSnapshot(server.rootPid);
  return {
    requested: count, greeted, failed, errors: Object.fromEntries(errors), openMs,
    rssBefore: before.rss, rssHeld: held.rss, pssHeld: held.pss, rssAfterClose: after.rss,
  };
}

/** Streams one message of `bytes` through the server and samples its memory every 50 ms. */
export async function bigMessage(server, sink, { bytes, timeoutMs = 300000 }) {
  await sleep(500);
  const before = await memSnapshot(server.rootPid);
  const sampler = startMemSampler(server.rootPid, 50);
  const base = sink.count;
  const t0 = Date.now();
  let error = null, acceptMs = null, e2eMs = null;
  try {
    const c = await BenchSmtpClient.connect({ port: server.port });
    await c.cmd('EHLO big.source.test');
    await c.cmd(`MAIL FROM:<big@source.test> SIZE=${bytes + 1000}`);
    await c.cmd('RCPT TO:<rcpt@sink.test>');
    await c.cmd('DATA', 3);
    const line = 'The quick brown fox jumps over the lazy dog 0123456789 abcdefghijklmnopqrstuv\r\n';
    const chunk = Buffer.from(line.repeat(Math.floor(65536 / line.length)));
    await c.write('From: <big@source.test>\r\nTo: <rcpt@sink.test>\r\nSubject: 100 MB\r\n\r\n');
    let sent = 0;
    while (sent < bytes) {
      if (Date.now() - t0 > timeoutMs) throw new Error('timeout while sending');
      if (!c.socket.write(chunk)) await new Promise((r) => c.socket.once('drain', r));
      sent += chunk.length;
    }
    await c.write('.\r\n');
    const r = await c.reply(timeoutMs);
    if (r.code !== 250) throw new Error(`end of data -> ${r.text}`);
    acceptMs = Date.now() - t0;
    await c.quit();
    const at = await sink.waitFor(base + 1, timeoutMs);
    if (at === null) throw new Error('the sink did not receive the message in time');
    e2eMs = at - t0;
  } catch (e) {
    error = String(e?.message ?? e);
  }
  await sleep(300);
  const s = await sampler.stop();
  return {
    bytes, acceptMs, e2eMs, error,
    rssBefore: before.rss, pssBefore: before.pss, rssPeak: s.peak.rss, pssPeak: s.peak.pss,
    rssGrowth: s.peak.rss - before.rss, pssGrowth: s.peak.pss - before.pss, samples: s.samples,
  };
}
