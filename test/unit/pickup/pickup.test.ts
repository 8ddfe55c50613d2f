import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, linkSync, mkdirSync, readdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { silentLogger } from '../../../src/core/log.js';
import { LocalUsers } from '../../../src/pickup/local-users.js';
import { MaildropPickup } from '../../../src/pickup/maildrop.js';
import { encodeEnvelope, parseAnswer, parseEnvelope, type SubmitAnswer } from '../../../src/pickup/protocol.js';
import { SubmitServer } from '../../../src/pickup/submit-server.js';
import { frameHeader } from '../../../src/pickup/feed.js';
import type { MessageOrigin } from '../../../src/core/session.js';
import { harness, type Harness } from '../cleanup/helpers.js';

const LIMITS = { maxMessageSize: 4096, maxRecipients: 5 };
const MESSAGE = Buffer.from('Subject: t\r\nFrom: a@x.test\r\n\r\nhello\r\n');
const envLine = (over: Record<string, unknown> = {}): Buffer =>
  over.raw !== undefined ? Buffer.from(`${over.raw as string}\n`) : encodeEnvelope({ envelope: { mailFrom: 'a@x.test', recipients: [{ address: 'b@y.test' }], bodyType: '7BIT', smtputf8: false, ...over }, user: 'alice' });

test('envelope lines: the submit verb only, addresses by the RFC 5321 grammar, bounds', () => {
  const ok = parseEnvelope(envLine().toString().trim(), LIMITS);
  assert.ok(ok.ok);
  assert.equal(ok.value.envelope.mailFrom, 'a@x.test');
  assert.equal(ok.value.user, 'alice');
  const code = (line: string): string => { const r = parseEnvelope(line, LIMITS); return r.ok ? 'ok' : `${r.reply.code} ${r.reply.enhanced}`; };
  assert.equal(code('{"op":"list"}'), '502 5.5.1');
  assert.equal(code('{"op":"flush","v":1}'), '502 5.5.1');
  assert.equal(code('not json'), '501 5.5.2');
  assert.equal(code('{"op":"submit","v":1,"from":"bad address","rcpt":[{"address":"b@y"}]}'), '553 5.1.7');
  assert.equal(code('{"op":"submit","v":1,"from":"","rcpt":[{"address":"no-domain"}]}'), '553 5.1.3');
  assert.equal(code('{"op":"submit","v":1,"from":"","rcpt":[]}'), '554 5.5.1');
  assert.equal(code(`{"op":"submit","v":1,"from":"","rcpt":${JSON.stringify(Array.from({ length: 6 }, (_, i) => ({ address: `r${i}@y` })))}}`), '552 5.5.3');
  assert.equal(code('{"op":"submit","v":1,"from":"","rcpt":[{"address":"b@y","notify":["NEVER","SUCCESS"]}]}'), '501 5.5.4');
  assert.equal(code('{"op":"submit","v":1,"from":"","rcpt":[{"address":"b@y"}],"user":"a b"}'), '501 5.5.2');
  assert.equal(code('{"op":"submit","v":1,"from":"","rcpt":[{"address":"b@y"}],"bodyType":"8BITMIME","ret":"HDRS","envid":"E1"}'), 'ok');
  const utf8 = parseEnvelope('{"op":"submit","v":1,"from":"","rcpt":[{"address":"jörg@y.test"}]}', LIMITS);
  assert.ok(utf8.ok && utf8.value.envelope.smtputf8);
});

/** A message in the socket's frames: one frame per piece, then the empty frame unless `unfinished`. */
const framed = (pieces: Buffer[], unfinished = false): Buffer[] => [...pieces.flatMap((p) => [frameHeader(p.length), p]), ...(unfinished ? [] : [frameHeader(0)])];

/** Sends raw bytes to the socket, half-closes, returns the answer line. */
function exchange(path: string, parts: Buffer[], opts: { dropBeforeEnd?: boolean } = {}): Promise<SubmitAnswer | undefined> {
  return new Promise((resolve) => {
    const s = createConnection({ path, allowHalfOpen: true });
    let text = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => { text += d; });
    s.on('error', () => {});
    s.on('close', () => resolve(parseAnswer(text.split('\n')[0] ?? '')));
    s.on('connect', () => {
      for (const p of parts) s.write(p);
      if (opts.dropBeforeEnd) setTimeout(() => s.destroy(), 50);
      else s.end();
    });
  });
}

async function withServer(fn: (h: Harness, path: string, refusals: MessageOrigin[]) => Promise<void>): Promise<void> {
  const h = await harness({ maxMessageSize: LIMITS.maxMessageSize });
  const path = join(h.dir, 'submit.sock');
  const refusals: MessageOrigin[] = [];
  const server = new SubmitServer({ socketPath: path, sink: h.cleanup, limits: () => LIMITS, maxConnections: 4, idleTimeoutMs: 5000, logger: silentLogger(), rejected: (o) => refusals.push(o) });
  await server.start();
  try {
    await fn(h, path, refusals);
  } finally {
    await server.stop();
    await h.close();
  }
}

test('submit socket: mode 0666; a message goes through cleanup with origin local (claimed user) and a Received field', async () => {
  await withServer(async (h, path) => {
    assert.equal(statSync(path).mode & 0o777, 0o666);
    const a = await exchange(path, [envLine(), ...framed([MESSAGE.subarray(0, 10), MESSAGE.subarray(10)])]);
    assert.ok(a?.ok, JSON.stringify(a));
    assert.match(a.reply, /^250 2\.0\.0 Ok: queued as /);
    const m = await h.store.get(a.queueId!);
    assert.deepEqual(m?.origin, { kind: 'local', localUser: 'alice', localUserSource: 'claimed' });
    const chunks: Buffer[] = [];
    for await (const c of h.store.openBody(a.queueId!)) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString();
    assert.match(text, /^Received: by mx\.postline\.test \(Postline, from user alice\) id \S+\r\n\tfor <b@y\.test>; /);
    assert.match(text, /\r\nDate: .+\r\nMessage-ID: <.+@mx\.postline\.test>\r\n\r\nhello\r\n$/); // added by cleanup for local mail
  });
});

test('submit socket: other verbs, a message over limits.maxMessageSize and a dropped connection queue nothing', async () => {
  await withServer(async (h, path, refusals) => {
    const verb = await exchange(path, [Buffer.from('{"op":"delete","id":"01M96JWBTNRR4GTH9P"}\n')]);
    assert.equal(verb?.ok, false);
    assert.match(verb!.reply, /^502 5\.5\.1/);
    const big = await exchange(path, [envLine(), ...framed([MESSAGE, Buffer.alloc(LIMITS.maxMessageSize, 0x61)])]);
    assert.equal(big?.ok, false);
    assert.match(big!.reply, /^552 5\.3\.4/);
    assert.equal(big!.code, 'ERR_SIZE');
    const dropped = await exchange(path, [envLine(), ...framed([MESSAGE.subarray(0, 12)], true)], { dropBeforeEnd: true });
    assert.equal(dropped, undefined);
    // Ended (half-closed) without the empty frame: a client that died, not a message.
    const unfinished = await exchange(path, [envLine(), ...framed([MESSAGE], true)]);
    assert.equal(unfinished, undefined);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal((await h.store.loadAll()).length, 0);
    assert.equal(refusals.length, 1); // the size refusal (a bad verb has no origin to record)
    assert.equal(refusals[0]!.kind, 'local');
  });
});

test('maildrop: 1733 directory; good files queued and deleted; symlink, FIFO, hard link, oversize, bad envelope moved aside; temp files ignored', async () => {
  const h = await harness({ maxMessageSize: LIMITS.maxMessageSize });
  const dir = join(h.dir, 'maildrop');
  await MaildropPickup.prepare(dir);
  assert.equal(statSync(dir).mode & 0o7777, 0o1733);
  const good = 'm.1700000000000.1.0000000000000001';
  writeFileSync(join(dir, good), Buffer.concat([envLine(), MESSAGE]));
  writeFileSync(join(h.dir, 'secret'), Buffer.concat([envLine(), MESSAGE]));
  symlinkSync(join(h.dir, 'secret'), join(dir, 'm.1700000000000.1.0000000000000002'));
  linkSync(join(h.dir, 'secret'), join(dir, 'm.1700000000000.1.0000000000000003'));
  execFileSync('mkfifo', [join(dir, 'm.1700000000000.1.0000000000000004')]);
  writeFileSync(join(dir, 'm.1700000000000.1.0000000000000005'), Buffer.concat([envLine(), Buffer.alloc(LIMITS.maxMessageSize + 10, 0x61)]));
  writeFileSync(join(dir, 'm.1700000000000.1.0000000000000006'), Buffer.concat([Buffer.from('{"op":"list"}\n'), MESSAGE]));
  writeFileSync(join(dir, 't.1700000000000.1.0000000000000007'), Buffer.concat([envLine(), MESSAGE]));
  mkdirSync(join(dir, 'm.1700000000000.1.0000000000000008'));
  const refusals: MessageOrigin[] = [];
  const pickup = new MaildropPickup({ dir, sink: h.cleanup, limits: () => LIMITS, users: new LocalUsers(), scanIntervalMs: 60_000, concurrency: 3, logger: silentLogger(), rejected: (o) => refusals.push(o) });
  try {
    await pickup.start();
    await pickup.idle();
    assert.deepEqual(pickup.counts, { queued: 1, rejected: 6, kept: 0 });
    assert.deepEqual(readdirSync(dir).sort(), ['rejected', 't.1700000000000.1.0000000000000007']);
    assert.equal(readdirSync(join(dir, 'rejected')).length, 6);
    const all = await h.store.loadAll();
    assert.equal(all.length, 1);
    const uid = process.getuid!();
    assert.equal(all[0]!.origin.kind, 'local');
    assert.equal(all[0]!.origin.localUid, uid);
    assert.equal(all[0]!.origin.localUserSource, 'uid');
    assert.equal(all[0]!.origin.localUser, new LocalUsers().userName(uid)); // the owner's name, not the claimed "alice"
    assert.equal(refusals.length, 6);
    assert.ok(existsSync(join(h.dir, 'secret')), 'the symlink target is left alone');
  } finally {
    await pickup.stop();
    await h.close();
  }
});

test('maildrop: a file dropped while running is picked up through the directory watch', async () => {
  const h = await harness({ maxMessageSize: LIMITS.maxMessageSize });
  const dir = join(h.dir, 'maildrop');
  const pickup = new MaildropPickup({ dir, sink: h.cleanup, limits: () => LIMITS, users: new LocalUsers(), scanIntervalMs: 60_000, concurrency: 2, logger: silentLogger() });
  try {
    await pickup.start();
    await pickup.idle();
    writeFileSync(join(dir, 't.1700000000000.1.00000000000000aa'), Buffer.concat([envLine(), MESSAGE]));
    execFileSync('mv', [join(dir, 't.1700000000000.1.00000000000000aa'), join(dir, 'm.1700000000000.1.00000000000000aa')]);
    const deadline = Date.now() + 10_000;
    while (pickup.counts.queued < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(pickup.counts.queued, 1);
    assert.deepEqual(readdirSync(dir), ['rejected']);
  } finally {
    await pickup.stop();
    await h.close();
  }
});
