/**
 * Minimum data rate (limits.minDataRate) end to end: 1,000 connections from 127.0.0.2..11 trickle
 * DATA at 1 byte a second; each gets 421 4.4.2 when its window ends, and meanwhile a real client's
 * time to 250 stays close to its idle value (the figure is printed as "FIGURE"). A BDAT trickler is
 * closed the same way; a normal client is never touched.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { RawSmtp } from '../helpers/raw-smtp.js';
import { startRig, type Rig } from '../helpers/abuse-rig.js';

const rigs: Rig[] = [];
after(async () => { for (const r of rigs) await r.close().catch(() => {}); });

const N = Number(process.env.POSTLINE_SLOWLORIS_N ?? 1000);
const WINDOW_MS = 12_000;
const body = Buffer.from('Subject: t\r\nFrom: a@example.org\r\n\r\n' + 'x'.repeat(2000) + '\r\n');
const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]!; };

/** Times `n` whole transactions over one session from `from`, ms each (MAIL to the final 250). */
async function timeToQueued(port: number, from: string, n: number): Promise<number[]> {
  const { c } = await RawSmtp.open(port, { localAddress: from });
  await c.ehlo();
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const r = await c.send('a@example.org', ['known@local.test'], body);
    assert.equal(r.final?.code, 250, JSON.stringify(r));
    out.push(performance.now() - t0);
  }
  await c.quit();
  return out;
}

interface Trickler { sock: Socket; got: string }

/** Opens a connection, sends EHLO/MAIL/RCPT/DATA, and waits for 354. */
function trickler(port: number, from: string): Promise<Trickler> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host: '127.0.0.1', port, localAddress: from });
    const t: Trickler = { sock, got: '' };
    const timer = setTimeout(() => reject(new Error(`no 354 for ${from}: ${t.got}`)), 30_000);
    sock.on('error', () => {});
    sock.on('data', (d) => {
      t.got += d.toString('latin1');
      if (/^220 /m.test(t.got) && !t.got.includes('250')) sock.write('EHLO slow.example\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<known@local.test>\r\nDATA\r\n');
      if (/^354 /m.test(t.got)) { clearTimeout(timer); resolve(t); }
    });
  });
}

test(`FIGURE ${N} connections trickling DATA at 1 B/s get 421 4.4.2; a real client's time to 250 meanwhile`, async () => {
  const rig = await startRig({}, { limits: { minDataRate: { bytes: 100, windowMs: WINDOW_MS }, maxConnections: 2000, maxConnectionsPerIp: 100 } });
  rigs.push(rig);
  await timeToQueued(rig.mx, '127.0.0.40', 3); // warm-up
  const idle = await timeToQueued(rig.mx, '127.0.0.40', 15);
  const ts: Trickler[] = [];
  const t0 = Date.now();
  for (let i = 0; i < N; i += 50) {
    ts.push(...await Promise.all(Array.from({ length: Math.min(50, N - i) }, (_, k) => trickler(rig.mx, `127.0.0.${2 + Math.floor((i + k) / 100)}`))));
  }
  const setupMs = Date.now() - t0;
  const drip = setInterval(() => { for (const t of ts) if (!t.sock.destroyed) t.sock.write('x'); }, 1000);
  try {
    const busy = await timeToQueued(rig.mx, '127.0.0.40', 15);
    const deadline = Date.now() + WINDOW_MS + 20_000;
    while (Date.now() < deadline && ts.some((t) => !/421 4\.4\.2/.test(t.got))) await new Promise((r) => setTimeout(r, 200));
    const kicked = ts.filter((t) => /421 4\.4\.2 .*data rate too low/.test(t.got)).length;
    console.log(`FIGURE slowloris: ${N} tricklers (set up in ${setupMs} ms), real client time to 250: idle median ${median(idle).toFixed(1)} ms, under trickle median ${median(busy).toFixed(1)} ms (max ${Math.max(...busy).toFixed(1)} ms); ${kicked}/${N} got 421 4.4.2`);
    assert.equal(kicked, N);
    assert.ok(median(busy) <= Math.max(2 * median(idle), median(idle) + 40), `${median(busy)} vs idle ${median(idle)}`);
  } finally {
    clearInterval(drip);
    for (const t of ts) t.sock.destroy();
  }
  const evs = (await rig.events()).filter((e) => e.type === 'message.rejected' && e.check === 'data-rate');
  assert.equal(evs.length, N);
  assert.ok(evs.every((e) => e.reason === 'data' && e.reply!.startsWith('421 4.4.2')));
});

test('BDAT trickle is closed with 421 4.4.2 too; trusted clients have no minimum rate', async () => {
  const rig = await startRig({}, { limits: { minDataRate: { bytes: 100, windowMs: 600 } } });
  rigs.push(rig);
  for (const [from, expectKick] of [['127.0.0.2', true], ['127.0.0.1', false]] as const) {
    const { c } = await RawSmtp.open(rig.mx, { localAddress: from });
    await c.ehlo();
    await c.cmd('MAIL FROM:<a@example.org>');
    await c.cmd('RCPT TO:<known@local.test>');
    c.write('BDAT 40 LAST\r\n');
    const data = Buffer.from('Subject: x\r\n\r\n' + 'y'.repeat(24) + '\r\n');
    for (let i = 0; i < data.length; i += 4) {
      c.write(data.subarray(i, i + 4));
      await new Promise((r) => setTimeout(r, 150));
    }
    const r = await c.read(5000);
    if (expectKick) assert.match(r.text, /^421 4\.4\.2 /);
    else assert.equal(r.code, 250);
    c.destroy();
  }
});
