/**
 * The PROXY protocol end to end (issue 12; HAProxy's specification): a real Postline in this
 * process (the abuse rig), real HAProxy in front with send-proxy (v1) and send-proxy-v2 (v2),
 * swaks and raw clients bound to 127.0.0.x behind it. The connection limits, the access list, the
 * blocklist, the Received field and the events see the proxied client and never count the proxy;
 * STARTTLS and implicit TLS (465) work behind a header; HAProxy's v2 LOCAL health checks use the
 * socket's address. Raw sockets: untrusted peers, malformed and misversioned headers, no header,
 * the header timeout, v2 LOCAL, and client bytes sent together with the header (pregreet).
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { RawSmtp } from '../helpers/raw-smtp.js';
import { PASSWORD, startRig, type Rig } from '../helpers/abuse-rig.js';
import { haproxyBinary, startHaproxy, type HaproxyHandle } from '../helpers/haproxy.js';
import { waitFor } from '../helpers/net.js';
import type { StoredEvent } from '../../src/events/record.js';

const hasHaproxy = haproxyBinary() !== undefined;

let rig: Rig;
let hap: HaproxyHandle | undefined;
const port = (name: string): number => rig.running.listeners.get(name)!.port;

before(async () => {
  rig = await startRig({ '2.0.0.127.bl.test': { a: ['127.0.0.2'] }, '9.0.0.127.bl.test': { a: ['127.0.0.2'] } }, {
    listeners: [
      { name: 'mx', address: '127.0.0.1', port: 0, role: 'mx', tls: 'none', proxyProtocol: 'v1' },
      { name: 'mx2', address: '127.0.0.1', port: 0, role: 'mx', tls: 'starttls', proxyProtocol: 'v2' },
      { name: 'sub', address: '127.0.0.1', port: 0, role: 'submission', tls: 'implicit', proxyProtocol: 'v2' },
      { name: 'any', address: '127.0.0.1', port: 0, role: 'mx', tls: 'none', proxyProtocol: 'any' },
    ],
    policy: {
      trustedProxies: ['127.0.0.1/32'],
      accessList: [{ network: '127.0.0.66/32', action: 'reject' }],
      dnsbl: { zones: [{ zone: 'bl.test', weight: 1 }], threshold: 1, timeoutMs: 1500 },
    },
    limits: { maxConnectionsPerIp: 2 },
    timeouts: { proxyHeaderMs: 400 },
  });
  if (hasHaproxy) {
    hap = await startHaproxy([
      { name: 'v1', target: port('mx'), proxy: 'v1' },
      { name: 'v2', target: port('mx2'), proxy: 'v2' },
      { name: 'smtps', target: port('sub'), proxy: 'v2' },
    ], { healthCheck: port('any') });
  }
});
after(async () => {
  await hap?.stop();
  await rig?.close();
});

function swaks(args: string[]): Promise<{ status: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn('swaks', ['--timeout', '20', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const t = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { out += d.toString(); });
    child.on('close', (status) => { clearTimeout(t); resolve({ status, out }); });
  });
}

/** The committed SMTP message whose body holds `tag`, with its Received field. */
async function message(tag: string): Promise<{ e: StoredEvent; received: string }> {
  for (let i = 0; i < 40; i++) {
    for (const e of (await rig.events()).filter((x) => x.type === 'message.received' && x.origin?.kind === 'smtp')) {
      const chunks: Buffer[] = [];
      try {
        for await (const c of rig.running.store.openBody(e.queueId!)) chunks.push(c as Buffer);
      } catch { continue; }
      const text = Buffer.concat(chunks).toString('utf8');
      if (text.includes(tag)) return { e, received: /(?:^|\r\n)(Received:[^]*?)(?=\r\n\S)/.exec(text)![1]! }; // ours: only our Authentication-Results is above it
    }
  }
  throw new Error(`no message with ${tag}`);
}

const skip = !hasHaproxy && 'haproxy not installed (Debian package haproxy)';

test('HAProxy send-proxy (v1): swaks from 127.0.0.5; Received, events and logs name the client, not the proxy', { skip }, async () => {
  const r = await swaks(['--server', `127.0.0.1:${hap!.ports.get('v1')}`, '--local-interface', '127.0.0.5', '--from', 'a@example.org', '--to', 'known@local.test', '--header', 'Subject: via-haproxy-v1']);
  assert.equal(r.status, 0, r.out);
  const { e, received } = await message('via-haproxy-v1');
  assert.equal(e.origin?.clientAddress, '127.0.0.5');
  assert.equal(e.origin?.proxyAddress, '127.0.0.1');
  assert.match(received, /^Received: from [^ ]+ \(\[127\.0\.0\.5\]\)\r\n\tby mx\.postline\.test/);
  assert.match(rig.log(), /"client":"127\.0\.0\.5","port":\d+,"proxy":"127\.0\.0\.1","via":"proxy-v1","msg":"session start"/);
});

test('HAProxy send-proxy-v2 with STARTTLS: swaks --tls from 127.0.0.6', { skip }, async () => {
  const r = await swaks(['--server', `127.0.0.1:${hap!.ports.get('v2')}`, '--local-interface', '127.0.0.6', '--tls', '--from', 'a@example.org', '--to', 'known@local.test', '--header', 'Subject: via-haproxy-v2']);
  assert.equal(r.status, 0, r.out);
  const { e, received } = await message('via-haproxy-v2');
  assert.equal(e.origin?.clientAddress, '127.0.0.6');
  assert.match(received, /^Received: from [^ ]+ \(\[127\.0\.0\.6\]\)\r\n\t\(using TLSv1\.[23] with cipher /);
});

test('HAProxy send-proxy-v2 in front of implicit TLS (465): swaks --tlsc with AUTH from 127.0.0.7', { skip }, async () => {
  const r = await swaks(['--server', `127.0.0.1:${hap!.ports.get('smtps')}`, '--local-interface', '127.0.0.7', '--tlsc', '--auth', 'PLAIN', '--auth-user', 'alice', '--auth-password', PASSWORD,
    '--from', 'alice@local.test', '--to', 'known@local.test', '--header', 'Subject: via-haproxy-smtps']);
  assert.equal(r.status, 0, r.out);
  const { e } = await message('via-haproxy-smtps');
  assert.equal(e.origin?.clientAddress, '127.0.0.7');
  assert.equal(e.origin?.authUser, 'alice');
});

test('behind HAProxy: the access list, the per-address connection limit and the blocklist see the client; the proxy is not counted', { skip }, async () => {
  const v1 = hap!.ports.get('v1')!;
  const denied = await RawSmtp.open(v1, { localAddress: '127.0.0.66' });
  assert.match(denied.greeting.text, /^554 5\.7\.1 Service unavailable; Client host \[127\.0\.0\.66\] blocked by local policy/);
  denied.c.destroy();
  // maxConnectionsPerIp 2: two from 127.0.0.8 fit, the third is refused; 127.0.0.12 through the same proxy still gets in
  const held = [await RawSmtp.open(v1, { localAddress: '127.0.0.8' }), await RawSmtp.open(v1, { localAddress: '127.0.0.8' })];
  for (const h of held) assert.equal(h.greeting.code, 220);
  const third = await RawSmtp.open(v1, { localAddress: '127.0.0.8' });
  assert.equal(third.greeting.text, '421 4.7.0 Too many connections, try again later');
  third.c.destroy();
  const other = await RawSmtp.open(v1, { localAddress: '127.0.0.12' });
  assert.equal(other.greeting.code, 220, 'the proxy (127.0.0.1) carries three connections and is not limited');
  await other.c.quit();
  for (const h of held) await h.c.quit();
  // the blocklist looks up the proxied address
  const listed = await RawSmtp.open(v1, { localAddress: '127.0.0.9' });
  await listed.c.ehlo();
  await listed.c.cmd('MAIL FROM:<a@example.org>');
  assert.equal((await listed.c.cmd('RCPT TO:<known@local.test>')).text, '554 5.7.1 Service unavailable; Client host [127.0.0.9] blocked using bl.test');
  await listed.c.quit();
  const rej = (await rig.events()).filter((e) => e.type === 'message.rejected');
  assert.ok(rej.some((e) => e.check === 'access' && e.origin?.clientAddress === '127.0.0.66'));
  assert.ok(rej.some((e) => e.check === 'dnsbl:bl.test' && e.origin?.clientAddress === '127.0.0.9'));
  assert.ok(!rej.some((e) => e.origin?.clientAddress === '127.0.0.1'), 'nothing is held against the proxy');
});

test('HAProxy health checks (send-proxy-v2, LOCAL command, smtpchk EHLO) pass and use the socket address', { skip }, async () => {
  await waitFor('a passing health check', () => /Health check for server be_health\/postline succeeded/.test(hap!.output()), 10_000);
  assert.match(rig.log(), /"listener":"any"[^\n]*"client":"127\.0\.0\.1","port":\d+,"msg":"session start"/);
});

// ---- raw sockets ---------------------------------------------------------------------------

/** Connects (from `from`), writes `bytes`, and collects what comes back until the server closes (or `ms`). */
function exchange(p: number, bytes: Buffer | string, opts: { from?: string; ms?: number } = {}): Promise<{ data: string; closedAfterMs: number }> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const s: Socket = connect({ host: '127.0.0.1', port: p, ...(opts.from ? { localAddress: opts.from } : {}) }, () => { if (bytes.length) s.write(bytes); });
    let data = '';
    const timer = setTimeout(() => { s.destroy(); resolve({ data, closedAfterMs: -1 }); }, opts.ms ?? 5000);
    s.on('data', (d) => { data += d.toString('latin1'); });
    s.on('error', () => {});
    s.on('close', () => { clearTimeout(timer); resolve({ data, closedAfterMs: Date.now() - t0 }); });
    s.once('error', (err) => { if (!s.remotePort) reject(err); });
  });
}

const V2SIG = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
function v2tcp4(src: string, sport: number, cmd = 0x21): Buffer {
  const b = Buffer.alloc(16 + 12);
  V2SIG.copy(b);
  b[12] = cmd; b[13] = 0x11; b.writeUInt16BE(12, 14);
  src.split('.').forEach((o, i) => { b[16 + i] = Number(o); });
  [127, 0, 0, 1].forEach((o, i) => { b[20 + i] = o; });
  b.writeUInt16BE(sport, 24); b.writeUInt16BE(25, 26);
  return b;
}

test('raw: an untrusted peer, a malformed header, the other version, no header: closed without a word', async () => {
  const untrusted = await exchange(port('mx'), 'PROXY TCP4 192.0.2.1 127.0.0.1 1000 25\r\n', { from: '127.0.0.2' });
  assert.equal(untrusted.data, '');
  assert.ok(untrusted.closedAfterMs >= 0 && untrusted.closedAfterMs < 1000, `closed at once (${untrusted.closedAfterMs} ms)`);
  for (const [what, p, bytes] of [
    ['malformed v1', port('mx'), 'PROXY TCP4 192.0.2.1 127.0.0.1 1000\r\n'],
    ['v1 address of the wrong family', port('any'), 'PROXY TCP4 2001:db8::1 127.0.0.1 1000 25\r\n'],
    ['v2 on a v1 listener', port('mx'), v2tcp4('192.0.2.1', 1000)],
    ['v1 on a v2 listener', port('mx2'), 'PROXY TCP4 192.0.2.1 127.0.0.1 1000 25\r\n'],
    ['no header at all', port('any'), 'EHLO client.example\r\n'],
    ['a TLS ClientHello instead of a header', port('sub'), Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5])],
  ] as const) {
    const r = await exchange(p, bytes);
    assert.equal(r.data, '', what);
    assert.ok(r.closedAfterMs >= 0 && r.closedAfterMs < 1000, `${what}: closed at once (${r.closedAfterMs} ms)`);
  }
  assert.match(rig.log(), /"peer":"127\.0\.0\.2"[^\n]*peer not in policy\.trustedProxies, connection closed/);
  assert.match(rig.log(), /"reason":"a v2 header on a v1 listener","msg":"PROXY header refused, connection closed"/);
});

test('raw: the header timeout (timeouts.proxyHeaderMs 400) closes a silent or a slow peer', async () => {
  const silent = await exchange(port('any'), '');
  assert.equal(silent.data, '');
  assert.ok(silent.closedAfterMs >= 350 && silent.closedAfterMs < 2000, `closed after ${silent.closedAfterMs} ms`);
  const partial = await exchange(port('any'), 'PROXY TCP4 192.0.2.1 ');
  assert.ok(partial.closedAfterMs >= 350 && partial.closedAfterMs < 2000, `closed after ${partial.closedAfterMs} ms`);
  assert.match(rig.log(), /no complete PROXY header within 400 ms/);
});

test('raw: v1 and v2 on an "any" listener; v2 LOCAL keeps the socket address; bytes after the header are the client\'s (pregreet)', async () => {
  for (const header of [Buffer.from('PROXY TCP4 127.0.0.20 127.0.0.1 40000 25\r\n'), v2tcp4('127.0.0.21', 40001)]) {
    const s = connect({ host: '127.0.0.1', port: port('any') });
    await new Promise<void>((r) => s.once('connect', () => r()));
    s.write(header);
    const { c, greeting } = await RawSmtp.wrap(s);
    assert.equal(greeting.code, 220);
    await c.ehlo();
    assert.equal((await c.cmd('MAIL FROM:<a@example.org>')).code, 250);
    assert.equal((await c.cmd('RCPT TO:<x@remote.example>')).text, '554 5.7.1 Relay access denied', 'the proxied client is not trusted');
    await c.quit();
  }
  const local = connect({ host: '127.0.0.1', port: port('any') });
  await new Promise<void>((r) => local.once('connect', () => r()));
  local.write(v2tcp4('192.0.2.1', 1000, 0x20)); // LOCAL: the addresses in the block are ignored
  const l = await RawSmtp.wrap(local);
  await l.c.ehlo();
  await l.c.cmd('MAIL FROM:<a@example.org>');
  assert.equal((await l.c.cmd('RCPT TO:<x@remote.example>')).code, 250, 'LOCAL: the socket address 127.0.0.1 is trusted');
  await l.c.quit();
  // the client's first command arrives in the same packet as the header: with a greeting pause it is a pregreet
  rig.running.config.timeouts.greetPauseMs = 300;
  try {
    const r = await exchange(port('any'), Buffer.concat([v2tcp4('127.0.0.22', 40002), Buffer.from('EHLO early.example\r\n')]), { ms: 3000 });
    assert.match(r.data, /^220-mx\.postline\.test ESMTP Postline\r\n554 5\.5\.1 /);
  } finally {
    rig.running.config.timeouts.greetPauseMs = 0;
  }
  const pre = (await rig.events()).filter((e) => e.type === 'message.rejected' && e.check === 'pregreet');
  assert.equal(pre.at(-1)?.origin?.clientAddress, '127.0.0.22');
});

test('raw: a v2 header then a TLS handshake on the implicit-TLS listener, client bytes in the header\'s packet', async () => {
  const s = connect({ host: '127.0.0.1', port: port('sub') });
  await new Promise<void>((r) => s.once('connect', () => r()));
  s.write(v2tcp4('127.0.0.23', 40003));
  const t = tlsConnect({ socket: s, rejectUnauthorized: false, servername: 'mx.postline.test' });
  await new Promise<void>((resolve, reject) => { t.once('secureConnect', () => resolve()); t.once('error', reject); });
  const { c, greeting } = await RawSmtp.wrap(t);
  assert.equal(greeting.code, 220);
  await c.ehlo();
  assert.equal((await c.authPlain('alice', PASSWORD)).code, 235);
  await c.quit();
  assert.match(rig.log(), /"client":"127\.0\.0\.23","port":40003,"proxy":"127\.0\.0\.1","via":"proxy-v2","msg":"session start"/);
});
