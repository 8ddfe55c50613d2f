/**
 * AUTH throttling across sessions (src/policy/auth-throttle.ts) with a fake clock and a recorded
 * sleep: limits per (user, address), per address and per network; unknown users count the same; a
 * locked pair leaves the user free from another address; the concurrent-check cap. Prints the
 * guesses-per-hour figures the issue asks for ("FIGURE").
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AuthThrottle, type AuthLimits } from '../../../src/policy/auth-throttle.js';
import { configSchema } from '../../../src/config/schema.js';

const defaults = (): AuthLimits => configSchema.parse({}).limits.auth;

function make(limits: Partial<AuthLimits> = {}) {
  let now = 3_600_000 * 10;
  const sleeps: number[] = [];
  const l = { ...defaults(), ...limits };
  const th = new AuthThrottle(() => l, () => ({ v4: 24, v6: 64 }), 100_000, () => now, async (ms) => { sleeps.push(ms); now += ms; });
  return { th, sleeps, advance: (ms: number) => { now += ms; }, now: () => now };
}

/** Guesses answered by a real check (not 454) from `addresses` at user `user` within one hour. */
async function guessesPerHour(th: AuthThrottle, addresses: string[], user: string, advance: (ms: number) => void): Promise<number> {
  let checked = 0;
  for (let round = 0; round < 60; round++) { // one round a minute for an hour
    for (const a of addresses) {
      for (let k = 0; k < 5; k++) {
        const v = await th.attempt(a, user, async () => false);
        if (!v.ok && !v.reply) checked++;
      }
    }
    advance(60_000);
  }
  return checked;
}

test('per (user, address): after maxFailuresPerUserAddress the pair gets 454 without a check; other addresses still work', async () => {
  const { th } = make();
  let checks = 0;
  const verify = (ok: boolean) => async () => { checks++; return ok; };
  for (let i = 0; i < 5; i++) assert.deepEqual(await th.attempt('192.0.2.1', 'alice', verify(false)), { ok: false });
  const locked = await th.attempt('192.0.2.1', 'alice', verify(true));
  assert.equal(locked.ok, false);
  assert.match(`${(locked as { reply?: { code: number; enhanced?: string } }).reply?.code} ${(locked as { reply?: { enhanced?: string } }).reply?.enhanced}`, /^454 4\.7\.0$/);
  assert.equal(checks, 5, 'refused before hashing');
  assert.deepEqual(await th.attempt('198.51.100.9', 'alice', verify(true)), { ok: true }, 'not locked out from another address');
});

test('per address: unknown users count the same; per network: neighbours share the count', async () => {
  const { th } = make();
  for (let i = 0; i < 10; i++) await th.attempt('192.0.2.1', `nobody${i}`, async () => false);
  const r = await th.attempt('192.0.2.1', 'someone-else', async () => true);
  assert.equal(r.ok, false);
  assert.equal((r as { reply?: { check?: string } }).reply?.check, 'auth-throttle');
  // 30 failures from the /24 in all (10 already): 20 more from neighbours, then the network is throttled
  for (let i = 0; i < 20; i++) await th.attempt(`192.0.2.${10 + (i % 2)}`, `u${i}`, async () => false);
  const n = await th.attempt('192.0.2.200', 'fresh', async () => true);
  assert.equal(n.ok, false, 'a fresh address of the same /24 is throttled');
  const v6 = await th.attempt('2001:db8::1', 'fresh', async () => true);
  assert.equal(v6.ok, true);
});

test('growing delay: failureDelayMs doubled per earlier failure, capped', async () => {
  const { th, sleeps } = make({ failureDelayMs: 100, maxFailureDelayMs: 1000, maxFailuresPerAddress: 100, maxFailuresPerUserAddress: 100 });
  for (let i = 0; i < 6; i++) await th.attempt('192.0.2.1', 'alice', async () => false);
  assert.deepEqual(sleeps, [100, 200, 400, 800, 1000, 1000]);
});

test('at most maxConcurrentChecks password checks run at once; beyond maxQueuedChecks 454 at once', async () => {
  const { th } = make({ maxConcurrentChecks: 2, maxQueuedChecks: 3, failureDelayMs: 0, maxFailuresPerAddress: 1000, maxFailuresPerNetwork: 1000 });
  let running = 0;
  let peak = 0;
  const releases: (() => void)[] = [];
  const verify = () => new Promise<boolean>((resolve) => { running++; peak = Math.max(peak, running); releases.push(() => { running--; resolve(false); }); });
  const all = Array.from({ length: 6 }, (_, i) => th.attempt(`192.0.2.${i + 1}`, 'alice', verify));
  await new Promise((r) => setImmediate(r));
  const sixth = await all[5]!;
  assert.equal((sixth as { reply?: { check?: string } }).reply?.check, 'auth-busy');
  for (let i = 0; i < 20 && releases.length; i++) { releases.shift()!(); await new Promise((r) => setImmediate(r)); }
  await Promise.all(all.slice(0, 5));
  assert.equal(peak, 2);
  assert.equal(th.stats.maxRunning, 2);
});

/**
 * Guesses that got a real check (not 454) within one simulated hour: every minute each address
 * sends `perMinute` guesses (its failure delays and 454 waits advance the clock too).
 */
async function hour(addresses: string[], user: (i: number) => string, perMinute: number): Promise<number> {
  const { th, advance, now } = make();
  const start = now();
  let checked = 0;
  let i = 0;
  while (now() - start < 3_600_000) {
    for (const a of addresses) for (let k = 0; k < perMinute; k++) {
      if (now() - start >= 3_600_000) break;
      const v = await th.attempt(a, user(i++), async () => false);
      if (!v.ok && !v.reply) checked++;
    }
    advance(60_000);
  }
  return checked;
}

test('FIGURE guesses per hour with the default limits', async () => {
  const one = await hour(['192.0.2.1'], () => 'alice', 5);
  console.log(`FIGURE AUTH guesses per hour from one address at one user: ${one}`);
  assert.ok(one <= 5 * 2);
  const any = await hour(['192.0.2.1'], (i) => `u${i}`, 20);
  console.log(`FIGURE AUTH guesses per hour from one address, any users: ${any}`);
  assert.ok(any <= 10 * 2);
  const net = await hour(Array.from({ length: 64 }, (_, i) => `2001:db8:0:1::${(i + 1).toString(16)}`), (i) => `u${i}`, 1);
  console.log(`FIGURE AUTH guesses per hour from one /64 (64 addresses): ${net}`);
  assert.ok(net <= 30 * 2);
  const many = await hour(Array.from({ length: 1000 }, (_, i) => `2001:db8:${(i + 1).toString(16)}::1`), () => 'alice', 1);
  console.log(`FIGURE AUTH guesses per hour at one user from 1,000 addresses (different /64s): ${many}`);
  assert.ok(many <= 5000 * 2);
});

test('a client without failures waits ahead of guessing ones for a check slot', async () => {
  const { th } = make({ maxConcurrentChecks: 1, failureDelayMs: 0 });
  await th.attempt('192.0.2.1', 'x', async () => false); // 192.0.2.0/24 now has a failure
  const order: string[] = [];
  let release!: () => void;
  const first = th.attempt('198.51.100.1', 'alice', () => new Promise<boolean>((r) => { release = () => r(true); }));
  await new Promise((r) => setImmediate(r));
  const guesser = th.attempt('192.0.2.1', 'y', async () => { order.push('guesser'); return false; });
  const clean = th.attempt('203.0.113.5', 'bob', async () => { order.push('clean'); return true; });
  await new Promise((r) => setImmediate(r));
  release();
  await Promise.all([first, guesser, clean]);
  assert.deepEqual(order, ['clean', 'guesser']);
});
