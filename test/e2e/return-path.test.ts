/**
 * Signed per-recipient return paths end to end (issue 10 §2): with bounces.domain set, mail from
 * a trusted client leaves with one transaction per recipient, each MAIL FROM a return path that
 * names its queue entry and recipient; mail from outside keeps its reverse-path.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { PostlineProcess } from '../helpers/postline-process.js';
import { RawSmtp } from '../helpers/raw-smtp.js';
import { waitFor } from '../helpers/net.js';
import { startCapturePeer, type CapturePeer } from '../helpers/capture-peer.js';
import { ReturnPaths } from '../../src/bounce/return-path.js';
import { loadOrCreateSecret } from '../../src/core/secret-file.js';
import { join } from 'node:path';
import type { StoredEvent } from '../../src/events/record.js';

let hop: CapturePeer;
let pl: PostlineProcess;

before(async () => {
  hop = await startCapturePeer();
  pl = new PostlineProcess({
    config: {
      bounces: { domain: 'bounces.origin.test' },
      relay: { trustedNetworks: ['127.0.0.1/32'], localDomains: ['local.test'] },
      local: { routes: [{ match: 'local.test', transport: 'smtp', target: `127.0.0.1:${hop.port}` }] },
      delivery: { routes: [{ domain: 'dest.test', host: '127.0.0.1', port: hop.port, tls: 'none' }], scanIntervalMs: 100, retry: { initialMs: 60_000, maxMs: 60_000, jitter: 0 } },
    },
  });
  await pl.start();
});

after(async () => {
  await pl?.cleanup();
  await hop?.close();
});

async function send(from: string, rcpts: string[], localAddress?: string): Promise<string> {
  const { c } = await RawSmtp.open(pl.port(), localAddress ? { localAddress } : {});
  try {
    await c.ehlo();
    const r = await c.send(from, rcpts, Buffer.from(`From: ${from}\r\nSubject: rp\r\n\r\nbody\r\n`));
    assert.equal(r.final?.code, 250, JSON.stringify(r));
    return /queued as (\S+)/.exec(r.final!.text)?.[1] ?? '';
  } finally {
    await c.quit();
  }
}

test('mail of a trusted client: one transaction per recipient, each with its own signed return path', async () => {
  await send('app@origin.test', ['a@dest.test', 'b@dest.test', 'c@dest.test']);
  await waitFor('three transactions', () => hop.messages.length >= 3 || undefined, 20_000);
  const paths = new ReturnPaths({ domain: 'bounces.origin.test', key: loadOrCreateSecret(join(pl.dir, 'var'), 'return-path.key') });
  const byRcpt = new Map(hop.messages.map((m) => [m.recipients.join(','), m.mailFrom]));
  const ids = new Set<string>();
  ['a@dest.test', 'b@dest.test', 'c@dest.test'].forEach((rcpt, idx) => {
    const from = byRcpt.get(rcpt);
    assert.ok(from, `a transaction for ${rcpt} alone`);
    const t = paths.decode(from!);
    assert.ok(t, `${from} is a valid return path`);
    assert.equal(t!.idx, idx);
    ids.add(t!.queueId);
  });
  assert.equal(ids.size, 1, 'all name the same queue entry');
});

test('mail from outside to a local domain keeps its own reverse-path', async () => {
  hop.messages.length = 0;
  await send('someone@elsewhere.test', ['x@local.test', 'y@local.test'], '127.0.0.2');
  const m = await waitFor('delivery', () => hop.messages[0], 20_000);
  assert.equal(m.mailFrom, 'someone@elsewhere.test');
  assert.deepEqual(m.recipients, ['x@local.test', 'y@local.test'], 'one transaction for both');
});

const events = async (...args: string[]): Promise<StoredEvent[]> => {
  const r = await pl.cli(['events', '--json', ...args]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as StoredEvent);
};

/** A remote MTA (127.0.0.2, not trusted) hands Postline a report addressed to `to`. */
async function report(to: string, body: string): Promise<void> {
  const { c } = await RawSmtp.open(pl.port(), { localAddress: '127.0.0.2' });
  try {
    await c.ehlo();
    const r = await c.send('', [to], Buffer.from(body.replace(/\r?\n/g, '\r\n')));
    assert.equal(r.final?.code, 250, JSON.stringify(r));
  } finally {
    await c.quit();
  }
}

const dsn = (rcpt: string, status: string, diag: string): string => `From: MAILER-DAEMON@mx.dest.test
To: bounce-target
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="b1"

--b1
Content-Type: text/plain

Your message could not be delivered.

--b1
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.dest.test

Final-Recipient: rfc822; ${rcpt}
Action: failed
Status: ${status}
Diagnostic-Code: smtp; ${diag}

--b1
Content-Type: text/rfc822-headers

From: app@origin.test
Subject: rp
--b1--
`;

test('an asynchronous bounce to a return path becomes recipient.bounced for the right queue entry and recipient; a forged one is ignored', async () => {
  hop.messages.length = 0;
  await send('app@origin.test', ['gone@dest.test', 'ok@dest.test']);
  const first = await waitFor('two transactions', () => (hop.messages.length >= 2 ? hop.messages : undefined), 20_000);
  const toGone = first.find((m) => m.recipients[0] === 'gone@dest.test')!.mailFrom;
  const paths = new ReturnPaths({ domain: 'bounces.origin.test', key: loadOrCreateSecret(join(pl.dir, 'var'), 'return-path.key') });
  const target = paths.decode(toGone)!;
  // A forged return path (another MAC) for the other recipient: accepted, read, ignored.
  const forged = first.find((m) => m.recipients[0] === 'ok@dest.test')!.mailFrom.replace(/-[0-9a-z]{16}@/, '-0000000000000000@');
  await report(forged, dsn('ok@dest.test', '5.1.1', '550 5.1.1 no such user'));
  await report(toGone, dsn('gone@dest.test', '5.1.1', '550 5.1.1 <gone@dest.test>: Recipient address rejected: User unknown'));
  const bounced = await waitFor('the asynchronous bounce event', async () => (await events('--type', 'recipient.bounced', '--queue-id', target.queueId)).find((e) => e.feedback), 20_000, 200);
  assert.equal(bounced.recipient, 'gone@dest.test');
  assert.equal(bounced.dsn, '5.1.1');
  assert.equal(bounced.bounceClass, 'InvalidRecipient');
  assert.equal(bounced.feedback?.kind, 'dsn');
  await new Promise((r) => setTimeout(r, 500));
  const all = (await events('--type', 'recipient.bounced')).filter((e) => e.feedback);
  assert.equal(all.length, 1, 'the forged report made no event');
  assert.ok(!all.some((e) => e.recipient === 'ok@dest.test'));
});

test('a complaint (ARF) to a return path becomes recipient.complained', async () => {
  hop.messages.length = 0;
  await send('app@origin.test', ['reader@dest.test']);
  const m = await waitFor('delivery', () => hop.messages[0], 20_000);
  const arf = `From: feedback@fbl.dest.test
To: fbl
Subject: complaint
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="f1"

--f1
Content-Type: text/plain

This is an email abuse report.

--f1
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: ExampleFBL/1.0
Version: 1
Original-Rcpt-To: reader@dest.test

--f1
Content-Type: text/rfc822-headers

From: app@origin.test
To: reader@dest.test
Subject: rp
--f1--
`;
  await report(m.mailFrom, arf);
  const ev = await waitFor('the complaint event', async () => (await events('--type', 'recipient.complained')).find((e) => e.recipient === 'reader@dest.test'), 20_000, 200);
  assert.equal(ev.feedback?.feedbackType, 'abuse');
  assert.equal(ev.queueId, paths().decode(m.mailFrom)!.queueId);
});

const paths = () => new ReturnPaths({ domain: 'bounces.origin.test', key: loadOrCreateSecret(join(pl.dir, 'var'), 'return-path.key') });
