/**
 * Outbound at scale, end to end (issue 14) with real TCP peers on loopback: a host that accepts
 * and never greets (stalled), one that hangs up at once (dead), and smtp-sink. Head-of-line
 * blocking, the dead-destination cache, bulk flush by domain, and shutdown with stuck deliveries.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { PostlineProcess } from '../helpers/postline-process.js';
import { SmtpSink } from '../helpers/smtp-sink.js';
import { RawSmtp } from '../helpers/raw-smtp.js';
import { freePort, waitFor } from '../helpers/net.js';

const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
});

/** A TCP peer: 'stall' accepts and says nothing; 'hangup' closes each connection at once. Counts connections. */
async function peer(kind: 'stall' | 'hangup'): Promise<{ port: number; connections: () => number; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  let n = 0;
  const server: Server = createServer((s) => {
    n++;
    if (kind === 'hangup') return void s.destroy();
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
  });
  const port = await freePort();
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  const close = async (): Promise<void> => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  };
  cleanups.push(close);
  return { port, connections: () => n, close };
}

async function send(port: number, rcpts: string[], perSession = 200): Promise<void> {
  for (let i = 0; i < rcpts.length; i += perSession) {
    const { c } = await RawSmtp.open(port);
    await c.ehlo();
    for (const to of rcpts.slice(i, i + perSession)) {
      const r = await c.send('sender@origin.test', [to], Buffer.from(`From: sender@origin.test\r\nTo: ${to}\r\nSubject: scale\r\n\r\nbody\r\n`));
      assert.equal(r.final?.code, 250, JSON.stringify(r));
    }
    await c.quit();
  }
}

function routed(routes: Record<string, number>, delivery: Record<string, unknown> = {}): PostlineProcess {
  const pl = new PostlineProcess({
    config: {
      delivery: {
        routes: Object.entries(routes).map(([domain, port]) => ({ domain, host: '127.0.0.1', port, tls: 'none' })),
        scanIntervalMs: 100, ...delivery,
      },
    },
  });
  cleanups.push(() => pl.cleanup());
  return pl;
}

test('head-of-line: 1,500 queued for a host that never greets do not hold up mail for a healthy one', async () => {
  const stall = await peer('stall');
  const sinkPort = await freePort();
  const sink = await new SmtpSink().start(sinkPort);
  cleanups.push(() => sink.cleanup());
  const pl = routed({ 'stall.test': stall.port, 'ok.test': sinkPort }, { maxActiveMessages: 200 });
  await pl.start();
  await send(pl.port(), Array.from({ length: 1500 }, (_, i) => `r${i}@stall.test`));
  const t0 = Date.now();
  await send(pl.port(), Array.from({ length: 200 }, (_, i) => `r${i}@ok.test`));
  await waitFor('200 at the healthy sink', () => sink.messages().length >= 200 || undefined, 60_000, 100);
  const ms = Date.now() - t0;
  assert.equal(sink.messages().length, 200);
  assert.ok(stall.connections() <= 10, `connections to the stalled host: ${stall.connections()} (connectionsPerDestination 10)`);
  assert.ok(ms < 30_000, `healthy mail took ${ms} ms behind the stalled backlog`);
  // Shutdown with stuck deliveries: aborted after delivery.shutdownGraceMs, exit within 5 s, nothing lost.
  const s0 = Date.now();
  pl.signal('SIGTERM');
  await pl.exited(10_000);
  const stopMs = Date.now() - s0;
  assert.ok(stopMs < 5000, `stopped in ${stopMs} ms`);
  await pl.start();
  const list = JSON.parse((await pl.cli(['queue', 'list', '--json'])).stdout) as unknown[];
  assert.equal(list.length, 1500, 'every stalled message still queued after the stop');
  await pl.stop();
});

test('dead destination: a handful of connections, the rest deferred without connecting; bulk flush by domain', async () => {
  const dead = await peer('hangup');
  const sinkPort = await freePort();
  const sink = await new SmtpSink().start(sinkPort);
  cleanups.push(() => sink.cleanup());
  const pl = routed({ 'dead.test': dead.port, 'ok.test': sinkPort }, { retry: { initialMs: 60_000, maxMs: 60_000, jitter: 0 } });
  await pl.start();
  await send(pl.port(), Array.from({ length: 300 }, (_, i) => `r${i}@dead.test`));
  await send(pl.port(), Array.from({ length: 20 }, (_, i) => `r${i}@ok.test`));
  await waitFor('the healthy mail delivered', () => sink.messages().length >= 20 || undefined, 30_000, 100);
  await waitFor('every dead.test message deferred', () => pl.logs().filter((l) => l.status === 'deferred').length >= 300 || undefined, 30_000, 100);
  assert.ok(dead.connections() <= 12, `connections to the dead host: ${dead.connections()}`);
  const suspended = pl.logs().filter((l) => typeof l.reply === 'string' && (l.reply as string).startsWith('delivery temporarily suspended'));
  assert.ok(suspended.length >= 280, `deferred without connecting: ${suspended.length}`);
  // The host comes back (a sink on its port); flushing dead.test sends everything at once, and
  // the CLI answers with the count, not after the deliveries.
  await dead.close();
  const back = await new SmtpSink().start(dead.port);
  cleanups.push(() => back.cleanup());
  const f = await pl.cli(['queue', 'flush', '--domain', 'dead.test']);
  assert.equal(f.code, 0, f.stderr);
  assert.match(f.stdout, /flushed 300 messages/);
  // A flush also clears the dead mark (like Postfix's): everything goes now, not after the 60 s.
  await waitFor('300 at the returned host', () => back.messages().length >= 300 || undefined, 30_000, 200);
  assert.equal(back.messages().length, 300);
  await pl.stop();
});
