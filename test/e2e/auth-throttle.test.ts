/**
 * AUTH throttling end to end (issue 12 "AUTH"): guesses across sessions from clients bound to
 * 127.0.0.2 and up, counted per (user, address), per address and per network; 454 4.7.0 before any
 * hashing; another address is not locked out; a real user's AUTH time while 50 addresses guess;
 * equal timing for an unknown user and a wrong password (statistical, bounded); no password in
 * the log or the events. Figures are printed as "FIGURE".
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { RawSmtp } from '../helpers/raw-smtp.js';
import { PASSWORD, startRig, type Rig } from '../helpers/abuse-rig.js';

const rigs: Rig[] = [];
after(async () => { for (const r of rigs) await r.close().catch(() => {}); });

/** One session: EHLO, AUTH PLAIN, QUIT. @returns the AUTH reply and its time, ms. */
async function authOnce(port: number, from: string, user: string, pass: string): Promise<{ code: number; text: string; ms: number }> {
  const { c } = await RawSmtp.open(port, { localAddress: from });
  try {
    await c.ehlo();
    const t0 = performance.now();
    const r = await c.authPlain(user, pass);
    return { ...r, ms: performance.now() - t0 };
  } finally {
    await c.quit();
  }
}

const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]!; };

test('guesses across sessions: the pair, the address and the network are throttled with 454 4.7.0; another address still logs in', async () => {
  const rig = await startRig({}, { limits: { auth: { failureDelayMs: 20, maxFailureDelayMs: 100 } } });
  rigs.push(rig);
  for (let i = 0; i < 5; i++) assert.equal((await authOnce(rig.sub, '127.0.0.2', 'alice', `wrong${i}`)).code, 535);
  const locked = await authOnce(rig.sub, '127.0.0.2', 'alice', PASSWORD);
  assert.equal(locked.text, '454 4.7.0 Too many authentication failures, try again later', 'even the right password: the pair is locked');
  assert.equal((await authOnce(rig.sub, '127.0.0.3', 'alice', PASSWORD)).code, 235, 'a locked pair does not lock the user out from another address');
  // unknown users count the same: 10 failures from one address, then 454 for anyone
  for (let i = 0; i < 10; i++) assert.equal((await authOnce(rig.sub, '127.0.0.4', `ghost${i}`, 'x')).code, 535);
  assert.equal((await authOnce(rig.sub, '127.0.0.4', 'alice', PASSWORD)).code, 454);
  // the mx listener shares the counts (one table for every listener)
  assert.equal((await authOnce(rig.mx, '127.0.0.4', 'alice', PASSWORD)).code, 454);
  const evs = (await rig.events()).filter((e) => e.type === 'message.rejected' && e.reason === 'auth');
  assert.ok(evs.length >= 3 && evs.every((e) => e.check === 'auth-throttle' && e.reply!.startsWith('454 4.7.0')));
  assert.match(rig.log(), /"check":"auth-throttle".*"msg":"authentication refused"/);
  // no credentials in the log or the events (the user name is logged, the password never)
  const blob = Buffer.from(`\0alice\0${PASSWORD}`).toString('base64');
  const events = JSON.stringify(await rig.events());
  for (const secret of [PASSWORD, Buffer.from(PASSWORD).toString('base64'), blob]) {
    assert.ok(!rig.log().includes(secret), `log holds ${secret}`);
    assert.ok(!events.includes(secret), `events hold ${secret}`);
  }
});

test('FIGURE a real user\'s AUTH time while 50 addresses guess', async () => {
  const rig = await startRig({});
  rigs.push(rig);
  const idle: number[] = [];
  for (let i = 0; i < 5; i++) {
    const r = await authOnce(rig.sub, '127.0.0.20', 'alice', PASSWORD);
    assert.equal(r.code, 235);
    idle.push(r.ms);
  }
  let stop = false;
  let guesses = 0;
  let throttled = 0;
  const guessers = Array.from({ length: 50 }, async (_, i) => {
    const from = `127.0.1.${i + 1}`;
    const end = Date.now() + 15_000;
    while (!stop && Date.now() < end) {
      const r = await authOnce(rig.sub, from, i % 2 ? 'alice' : `nobody${i}`, `guess-${guesses}`).catch(() => undefined);
      if (r?.code === 535) guesses++;
      else if (r?.code === 454) throttled++;
    }
  });
  await new Promise((r) => setTimeout(r, 500));
  const busy: number[] = [];
  for (let i = 0; i < 5; i++) {
    const r = await authOnce(rig.sub, '127.0.0.20', 'alice', PASSWORD);
    assert.equal(r.code, 235);
    busy.push(r.ms);
    await new Promise((res) => setTimeout(res, 300));
  }
  stop = true;
  await Promise.all(guessers);
  console.log(`FIGURE real user AUTH time: idle median ${median(idle).toFixed(0)} ms, while 50 addresses guess median ${median(busy).toFixed(0)} ms (max ${Math.max(...busy).toFixed(0)} ms); guesses checked ${guesses}, refused with 454 ${throttled}`);
  assert.ok(guesses <= 30, `the /24 holds: ${guesses} guesses checked`);
  assert.ok(median(busy) < 5000);
});

test('unknown user and wrong password take the same time (medians within 25% or 15 ms)', async () => {
  const rig = await startRig({}, { limits: { auth: { failureDelayMs: 0, maxFailuresPerUserAddress: 1000, maxFailuresPerAddress: 1000, maxFailuresPerNetwork: 1000 } } });
  rigs.push(rig);
  const unknown: number[] = [];
  const wrong: number[] = [];
  for (let i = 0; i < 16; i++) { // interleaved, so load changes hit both alike
    const u = await authOnce(rig.sub, '127.0.0.30', `nobody${i}`, 'pw');
    const w = await authOnce(rig.sub, '127.0.0.30', 'alice', `pw${i}`);
    assert.equal(u.code, 535);
    assert.equal(w.code, 535);
    unknown.push(u.ms);
    wrong.push(w.ms);
  }
  const mu = median(unknown); const mw = median(wrong);
  console.log(`FIGURE AUTH timing: unknown user median ${mu.toFixed(1)} ms, wrong password median ${mw.toFixed(1)} ms`);
  assert.ok(Math.abs(mu - mw) <= Math.max(15, 0.25 * Math.max(mu, mw)), `${mu} vs ${mw}`);
});
