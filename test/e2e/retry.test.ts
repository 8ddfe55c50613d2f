/**
 * Retry and outage, end to end with real receivers (Postfix's smtp-sink): a receiver that answers 4xx
 * and later 250; a receiver that is down across a Postline restart; a 5xx that produces a DSN that
 * reaches the sender.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { PostlineProcess } from '../helpers/postline-process.js';
import { SmtpSink } from '../helpers/smtp-sink.js';
import { RawSmtp } from '../helpers/raw-smtp.js';
import { freePort, waitFor } from '../helpers/net.js';

const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
});

const fastRetry = { initialMs: 400, maxMs: 1000, multiplier: 1, jitter: 0 };

function message(subject: string): Buffer {
  return Buffer.from(`From: sender@origin.test\r\nTo: rcpt@remote.test\r\nSubject: ${subject}\r\nMessage-ID: <${subject.replace(/\W/g, '')}@origin.test>\r\n\r\nBody of ${subject}.\r\n`);
}

async function submit(port: number, items: Array<{ from: string; to: string; subject: string }>): Promise<string[]> {
  const { c, greeting } = await RawSmtp.open(port);
  assert.equal(greeting.code, 220);
  await c.ehlo();
  const ids: string[] = [];
  for (const it of items) {
    const r = await c.send(it.from, [it.to], message(it.subject));
    assert.equal(r.final?.code, 250, JSON.stringify(r));
    ids.push(/queued as (\S+)/.exec(r.final!.text)![1]!);
  }
  await c.quit();
  return ids;
}

test('a receiver that answers 451 gets the message on a later try once it answers 250', async () => {
  const port = await freePort();
  const soft = await new SmtpSink(['-r', '.']).start(port); // 4xx to the end of DATA
  cleanups.push(() => soft.cleanup());
  const pl = new PostlineProcess({ config: { delivery: { relayhost: { host: '127.0.0.1', port, tls: 'none' }, retry: fastRetry, scanIntervalMs: 100 } } });
  cleanups.push(() => pl.cleanup());
  await pl.start();
  const [id] = await submit(pl.port(), [{ from: 'sender@origin.test', to: 'later@remote.test', subject: 'retry-451' }]);
  await waitFor('a deferral in the log', () => pl.logs().some((l) => l.queueId === id && l.status === 'deferred'), 20_000);
  await soft.stop();
  const good = await new SmtpSink().start(port);
  cleanups.push(() => good.cleanup());
  const m = await waitFor('the message at the sink', () => good.messages().find((x) => x.rcptArgs.some((r) => r.includes('later@remote.test'))), 30_000);
  assert.match(m.data.toString(), /Subject: retry-451/);
  assert.equal(good.messages().length, 1, 'delivered once');
  await waitFor('the queue to empty', async () => (await pl.cli(['queue', 'list', '--json'])).stdout.trim() === '[]', 20_000);
});

test('a receiver that is down gets every queued message once it is up, across a Postline restart', async () => {
  const port = await freePort(); // nothing listens here yet
  const pl = new PostlineProcess({ config: { delivery: { relayhost: { host: '127.0.0.1', port, tls: 'none' }, retry: { ...fastRetry, initialMs: 60_000, maxMs: 60_000 }, scanIntervalMs: 100 } } });
  cleanups.push(() => pl.cleanup());
  await pl.start();
  const items = Array.from({ length: 5 }, (_, i) => ({ from: 'sender@origin.test', to: `down${i}@remote.test`, subject: `down-${i}` }));
  const ids = await submit(pl.port(), items);
  await waitFor('every message deferred', () => ids.every((id) => pl.logs().some((l) => l.queueId === id && l.status === 'deferred')), 20_000);
  const listed = await pl.cli(['queue', 'list']);
  assert.equal(listed.code, 0, listed.stderr);
  for (const id of ids) assert.match(listed.stdout, new RegExp(id));

  assert.equal(await pl.stop(), 0, 'SIGTERM exits cleanly');
  await pl.start();
  const sink = await new SmtpSink().start(port);
  cleanups.push(() => sink.cleanup());
  const flushed = await pl.cli(['queue', 'flush']);
  assert.equal(flushed.code, 0, flushed.stderr + flushed.stdout);
  await waitFor('all five at the sink', () => items.every((it) => sink.messages().some((m) => m.rcptArgs.some((r) => r.includes(it.to)))), 30_000);
  assert.equal(sink.messages().length, 5, 'each message exactly once');
});

test('a 550 produces an RFC 3464 DSN that reaches the sender', async () => {
  const hard = await new SmtpSink(['-f', 'RCPT']).start();
  const home = await new SmtpSink().start();
  cleanups.push(() => hard.cleanup(), () => home.cleanup());
  const pl = new PostlineProcess({
    config: {
      delivery: {
        routes: [
          { domain: 'origin.test', host: '127.0.0.1', port: home.port, tls: 'none' },
          { domain: 'rejecting.test', host: '127.0.0.1', port: hard.port, tls: 'none' },
        ],
        retry: fastRetry,
        scanIntervalMs: 100,
      },
    },
  });
  cleanups.push(() => pl.cleanup());
  await pl.start();
  const [id] = await submit(pl.port(), [{ from: 'sender@origin.test', to: 'nobody@rejecting.test', subject: 'will-bounce' }]);
  const dsn = await waitFor('the DSN at the sender', () => home.messages().find((m) => m.rcptArgs.some((r) => r.includes('sender@origin.test'))), 30_000);
  assert.match(dsn.mailArgs, /^<>/, 'a DSN comes from the null reverse-path');
  const text = dsn.data.toString('latin1');
  assert.match(text, /Content-Type: multipart\/report;[\s\S]*report-type="?delivery-status/i);
  assert.match(text, /Content-Type: message\/delivery-status/i);
  assert.match(text, /Reporting-MTA: dns; ?mx\.postline\.test/i);
  assert.match(text, /Final-Recipient: rfc822; ?nobody@rejecting\.test/i);
  assert.match(text, /Action: failed/i);
  assert.match(text, /Status: 5\.\d+\.\d+/);
  assert.match(text, /Diagnostic-Code: smtp; ?5\d\d/i);
  assert.match(text, /Subject: will-bounce/, 'the original (or its headers) is attached');
  assert.ok(!/Original-Recipient:/i.test(text), 'no ORCPT was given');
  assert.ok(text.includes(id!), 'the DSN names the queue ID');
});
