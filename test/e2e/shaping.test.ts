/**
 * Traffic shaping end to end (issue 14) with `postline serve` and real receivers on loopback: a
 * scripted raw SMTP server (counts connections, messages per connection, arrival times; answers
 * 421 4.7.28 or 451 on demand) and smtp-sink. Connection and per-connection limits, connection and
 * message rates measured at the receiver, a "slow down" reply suspending the destination and its
 * resumption, the operator's suspend / resume / bounce / destinations commands, a suspension
 * surviving a restart, and a rule changed by SIGHUP. Every message is delivered exactly once.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { PostlineProcess } from '../helpers/postline-process.js';
import { SmtpSink } from '../helpers/smtp-sink.js';
import { startSmtpPeer, type PeerScript, type SmtpPeer } from '../helpers/smtp-peer.js';
import { RawSmtp } from '../helpers/raw-smtp.js';
import { freePort, waitFor } from '../helpers/net.js';

const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
});

async function peer(script: PeerScript = {}): Promise<SmtpPeer> {
  const p = await startSmtpPeer(script);
  cleanups.push(() => p.close());
  return p;
}

async function sink(): Promise<SmtpSink> {
  const s = await new SmtpSink().start(await freePort());
  cleanups.push(() => s.cleanup());
  return s;
}

/** Sends one message per recipient (`perSession` per SMTP session), each with its own Subject. */
async function send(port: number, rcpts: string[], perSession = 100): Promise<void> {
  for (let i = 0; i < rcpts.length; i += perSession) {
    const { c } = await RawSmtp.open(port);
    await c.ehlo();
    for (const to of rcpts.slice(i, i + perSession)) {
      const r = await c.send('sender@origin.test', [to], Buffer.from(`From: sender@origin.test\r\nTo: ${to}\r\nSubject: shaping ${to}\r\n\r\nbody\r\n`));
      assert.equal(r.final?.code, 250, JSON.stringify(r));
    }
    await c.quit();
  }
}

const rcpts = (n: number, domain: string, prefix = 'r'): string[] => Array.from({ length: n }, (_, i) => `${prefix}${i}@${domain}`);

/** The delivery section: one route per domain to a loopback port, a 100 ms scan, plus `extra`. */
const delivery = (routes: Record<string, number>, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  routes: Object.entries(routes).map(([domain, port]) => ({ domain, host: '127.0.0.1', port, tls: 'none' })),
  scanIntervalMs: 100, ...extra,
});

function postline(d: Record<string, unknown>, opts: { http?: boolean } = {}): PostlineProcess {
  const pl = new PostlineProcess({ config: { delivery: d }, ...(opts.http ? { http: true } : {}) });
  cleanups.push(() => pl.cleanup());
  return pl;
}

/** Most items of sorted `times` (ms) within any window of `ms`. */
function mostWithin(times: readonly number[], ms: number): number {
  let best = 0;
  for (let i = 0, j = 0; i < times.length; i++) {
    while (times[i]! - times[j]! >= ms) j++;
    best = Math.max(best, i - j + 1);
  }
  return best;
}

test('maxConnections, messagesPerConnection and connectionsPerMinute, counted at a raw server', async (t) => {
  const p = await peer();
  const pl = postline(delivery({ 'conn.test': p.port }, {
    shaping: [{ match: `[127.0.0.1]:${p.port}`, maxConnections: 2, messagesPerConnection: 4, connectionsPerMinute: 60 }],
  }));
  await pl.start();
  await send(pl.port(), rcpts(40, 'conn.test'));
  await waitFor('40 messages at the server', () => p.messages().length >= 40 || undefined, 60_000, 100);
  await new Promise((r) => setTimeout(r, 300)); // nothing more comes
  const sessions = p.sessions.filter((s) => s.messages.length > 0);
  assert.equal(p.messages().length, 40);
  assert.equal(new Set(p.messages().flatMap((m) => m.rcpts)).size, 40, 'every message exactly once');
  assert.ok(p.maxConcurrent() <= 2, `connections at once: ${p.maxConcurrent()}`);
  for (const s of sessions) assert.ok(s.messages.length <= 4, `session ${s.id} carried ${s.messages.length} messages`);
  assert.ok(sessions.length >= 10, `sessions: ${sessions.length}`);
  // 60 a minute, burst 6: the first six at once, then one a second.
  const opened = p.sessions.map((s) => s.openedAt).sort((a, b) => a - b);
  assert.ok(mostWithin(opened, 1000) <= 7, `connections within a second: ${mostWithin(opened, 1000)}`);
  assert.ok(opened.at(-1)! - opened[0]! >= 3000, `connections spread over ${opened.at(-1)! - opened[0]!} ms`);
  t.diagnostic(`40 messages: ${sessions.length} connections, at most ${p.maxConcurrent()} at once, at most ${Math.max(...sessions.map((x) => x.messages.length))} per connection, connections opened over ${opened.at(-1)! - opened[0]!} ms`);
  await pl.stop();
});

test('messagesPerSecond 20: 200 messages take at least 9 s at smtp-sink, never more than the limit in a second, no attempt counted', async (t) => {
  const s = await sink();
  const pl = postline(delivery({ 'rate.test': s.port }, { shaping: [{ match: 'rate.test', messagesPerSecond: 20 }] }));
  await pl.start();
  await send(pl.port(), rcpts(200, 'rate.test'), 200);
  await waitFor('200 at smtp-sink', () => s.messages().length >= 200 || undefined, 60_000, 200);
  const got = s.messages();
  assert.equal(got.length, 200);
  assert.equal(new Set(got.flatMap((m) => m.rcptArgs)).size, 200, 'every message exactly once');
  const times = got.map((m) => statSync(m.file).mtimeMs).sort((a, b) => a - b);
  const span = times.at(-1)! - times[0]!;
  assert.ok(span >= 9000, `200 messages arrived within ${span} ms`);
  assert.ok(mostWithin(times, 1000) <= 24, `messages within one second: ${mostWithin(times, 1000)}`);
  t.diagnostic(`200 messages at smtp-sink over ${Math.round(span)} ms (${(199 / span * 1000).toFixed(1)}/s), at most ${mostWithin(times, 1000)} within a second`);
  assert.equal(pl.logs().filter((l) => l.status === 'deferred').length, 0, 'rate-limited mail is postponed, never deferred');
  await pl.stop();
});

test('a 421 4.7.28 reply suspends the destination (no connection until durationMs), then it resumes', async () => {
  let t421 = 0;
  const p = await peer({
    reply: (cmd) => {
      if (!/^MAIL/i.test(cmd) || t421 > 0) return undefined;
      t421 = Date.now();
      return '421 4.7.28 [127.0.0.1] Our system has detected an unusual rate of unsolicited mail: temporarily rate limited.\nDROP';
    },
  });
  const pl = postline(delivery({ 'gm.test': p.port }, {
    throttlePatterns: [{ match: '^4\\d\\d 4\\.7\\.28\\b', action: 'suspend', durationMs: 5000 }],
    retry: { initialMs: 2000, maxMs: 2000, jitter: 0 },
  }));
  await pl.start();
  await send(pl.port(), ['first@gm.test']);
  await waitFor('the 421', () => t421 > 0 || undefined, 20_000, 50);
  await send(pl.port(), rcpts(10, 'gm.test'));
  await new Promise((r) => setTimeout(r, 1000));
  assert.equal(p.sessions.length, 1, 'no connection while suspended');
  const d = await pl.cli(['queue', 'destinations', '--json']);
  assert.equal(d.code, 0, d.stderr);
  const [state] = JSON.parse(d.stdout) as Array<{ destination: string; state: string; source: string; reason: string; until: number }>;
  assert.deepEqual([state!.destination, state!.state, state!.source], [`host:127.0.0.1:${p.port}`, 'suspended', 'reply']);
  assert.match(state!.reason, /^421 4\.7\.28 /);
  assert.match((await pl.cli(['queue', 'destinations'])).stdout, /suspended +\d{4}-.* reply +421 4\.7\.28/);
  await waitFor('all 11 delivered after the suspension', () => p.messages().length >= 11 || undefined, 30_000, 100);
  for (const s of p.sessions.slice(1)) assert.ok(s.openedAt >= t421 + 4900, `a connection ${s.openedAt - t421} ms after the 421`);
  assert.equal(new Set(p.messages().flatMap((m) => m.rcpts)).size, 11, 'every message exactly once');
  await waitFor('the resume logged', () => pl.logs().some((l) => l.msg === 'destination resumed: its suspension ended') || undefined, 5000, 100);
  assert.ok(pl.logs().some((l) => typeof l.msg === 'string' && l.msg.startsWith('destination suspended: a reply matched')));
  await pl.stop();
});

test('queue suspend, destinations, resume and bounce; the destinations gauge', async () => {
  const ok = await sink();
  const deferring = await peer({ reply: (cmd) => (/^RCPT/i.test(cmd) ? '451 4.3.0 try again later' : undefined) });
  const pl = postline(delivery({ 'susp.test': ok.port, 'ok.test': ok.port, 'origin.test': ok.port, 'bnc.test': deferring.port }, {
    retry: { initialMs: 60_000, maxMs: 60_000, jitter: 0 },
  }), { http: true });
  await pl.start();
  const sus = await pl.cli(['queue', 'suspend', 'susp.test']);
  assert.equal(sus.code, 0, sus.stderr);
  assert.equal(sus.stdout, 'susp.test: suspended until resumed\n');
  await send(pl.port(), rcpts(5, 'susp.test'));
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(ok.messages().length, 0, 'nothing sent while suspended');
  assert.match((await pl.cli(['queue', 'destinations'])).stdout, /^susp\.test +suspended +until resumed +operator +suspended by the operator$/m);
  const metrics = await (await fetch(`http://127.0.0.1:${pl.httpPort}/metrics`)).text();
  assert.match(metrics, /^postline_destinations\{state="suspended"\} 1$/m);
  const res = await pl.cli(['queue', 'resume', 'susp.test']);
  assert.equal(res.code, 0, res.stderr);
  await waitFor('the 5 after the resume', () => ok.messages().length >= 5 || undefined, 10_000, 100);
  assert.equal((await pl.cli(['queue', 'resume', 'susp.test'])).code, 1, 'nothing left to resume');
  assert.equal((await pl.cli(['queue', 'suspend', 'not a name'])).code, 1);
  // Bounce: 3 messages deferred at bnc.test, and one with a recipient there and one at ok.test.
  await send(pl.port(), rcpts(3, 'bnc.test'));
  const { c } = await RawSmtp.open(pl.port());
  await c.ehlo();
  assert.equal((await c.send('sender@origin.test', ['x@bnc.test', 'y@ok.test'], Buffer.from('Subject: two\r\n\r\nbody\r\n'))).final?.code, 250);
  await c.quit();
  await waitFor('4 bnc.test recipients deferred', () => pl.logs().filter((l) => l.status === 'deferred').length >= 4 || undefined, 20_000, 100);
  const b = await pl.cli(['queue', 'bounce', '--domain', 'bnc.test']);
  assert.equal(b.code, 0, b.stderr);
  assert.equal(b.stdout, 'bounced 4 messages\n');
  await waitFor('4 DSNs and y@ok.test', () => ok.messages().length >= 5 + 4 + 1 || undefined, 20_000, 100);
  const dsns = ok.messages().filter((m) => m.rcptArgs.some((r) => r.includes('sender@origin.test')));
  assert.equal(dsns.length, 4);
  for (const m of dsns) {
    const text = m.data.toString();
    assert.match(text, /Status: 5\.0\.0/);
    assert.match(text, /message bounced by the administrator/);
  }
  assert.equal((await pl.cli(['queue', 'bounce', '--sender', 'nobody@origin.test'])).stdout, 'bounced 0 messages\n');
  assert.deepEqual(JSON.parse((await pl.cli(['queue', 'list', '--json'])).stdout), [], 'nothing left queued');
  await pl.stop();
});

test('suspensions survive a restart; a suspension written with the server stopped applies at start', async () => {
  const a = await sink();
  const b = await sink();
  const pl = postline(delivery({ 'keep.test': a.port, 'off.test': b.port }));
  await pl.start();
  assert.match((await pl.cli(['queue', 'suspend', `[127.0.0.1]:${a.port}`, '--for', '1h'])).stdout, new RegExp(`^\\[127\\.0\\.0\\.1\\]:${a.port}: suspended until \\d{4}-`));
  await pl.stop();
  const off = await pl.cli(['queue', 'suspend', 'off.test']);
  assert.equal(off.code, 0, off.stderr);
  assert.match(off.stdout, /off\.test: suspended until resumed \(no server is running/);
  await pl.start();
  const listed = JSON.parse((await pl.cli(['queue', 'destinations', '--json'])).stdout) as Array<{ destination: string }>;
  assert.deepEqual(listed.map((x) => x.destination).sort(), [`[127.0.0.1]:${a.port}`, 'off.test']);
  await send(pl.port(), [...rcpts(2, 'keep.test'), ...rcpts(2, 'off.test')]);
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(a.messages().length + b.messages().length, 0, 'both still suspended after the restart');
  assert.equal((await pl.cli(['queue', 'resume', `[127.0.0.1]:${a.port}`])).code, 0);
  await waitFor('keep.test delivered', () => a.messages().length >= 2 || undefined, 10_000, 100);
  assert.equal(b.messages().length, 0);
  assert.equal((await pl.cli(['queue', 'resume', 'off.test'])).code, 0);
  await waitFor('off.test delivered', () => b.messages().length >= 2 || undefined, 10_000, 100);
  assert.equal(a.messages().length + b.messages().length, 4);
  await pl.stop();
});

test('SIGHUP: a new rule applies to the next deliveries', async (t) => {
  const p = await peer();
  const d = delivery({ 'hup.test': p.port });
  const pl = postline(d);
  await pl.start();
  await send(pl.port(), rcpts(20, 'hup.test', 'a'));
  await waitFor('20 before the reload', () => p.messages().length >= 20 || undefined, 20_000, 50);
  const before = p.messages().map((m) => m.at!).sort((x, y) => x - y);
  assert.ok(before.at(-1)! - before[0]! < 3000, `unshaped: ${before.at(-1)! - before[0]!} ms`);
  pl.configOverride = { delivery: { ...d, shaping: [{ match: 'hup.test', messagesPerSecond: 5 }] } };
  await pl.writeConfig();
  pl.signal('SIGHUP');
  await waitFor('the reload', () => pl.logs().some((l) => l.msg === 'traffic shaping reloaded; it applies to the next delivery') || undefined, 10_000, 50);
  await send(pl.port(), rcpts(20, 'hup.test', 'b'));
  await waitFor('20 after the reload', () => p.messages().length >= 40 || undefined, 30_000, 100);
  const afterTimes = p.messages().slice(20).map((m) => m.at!).sort((x, y) => x - y);
  const span = afterTimes.at(-1)! - afterTimes[0]!;
  assert.ok(span >= 3300, `20 at 5 a second took ${span} ms`);
  t.diagnostic(`20 messages before the reload over ${before.at(-1)! - before[0]!} ms, after it (5/s) over ${span} ms`);
  assert.equal(new Set(p.messages().flatMap((m) => m.rcpts)).size, 40, 'every message exactly once');
  await pl.stop();
});
