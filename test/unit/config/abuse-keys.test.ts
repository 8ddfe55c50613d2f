/**
 * The abuse-resistance keys of the configuration (issue 12): defaults, strictness, CIDR checks,
 * blocklist code patterns, and that SIGHUP applies `policy.*` and the new `limits.*` keys.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { configSchema } from '../../../src/config/schema.js';
import { applyLiveConfig } from '../../../src/config/live.js';
import { checkLabel, LabelSet } from '../../../src/metrics/labels.js';

test('defaults: everything off but the data rate, tarpit and AUTH throttle', () => {
  const c = configSchema.parse({});
  assert.equal(c.limits.perClient.connectionsPerMinute, 0);
  assert.equal(c.limits.perClient.perNetwork.recipientsPerMinute, 0);
  assert.deepEqual(c.limits.minDataRate, { bytes: 15_000, windowMs: 30_000 });
  assert.equal(c.limits.softErrorLimit, 10);
  assert.equal(c.limits.auth.maxFailuresPerAddress, 10);
  assert.equal(c.timeouts.greetPauseMs, 0);
  assert.deepEqual(c.policy.dnsbl.zones, []);
  assert.equal(c.policy.dnsbl.action, 'rcpt');
  assert.equal(c.policy.dnsblNegativeTtlS, 300);
  assert.equal(c.policy.dns, undefined);
});

test('bad values are refused naming the key', () => {
  const bad = (raw: unknown): string => {
    const r = configSchema.safeParse(raw);
    assert.equal(r.success, false);
    return r.error!.issues.map((i) => i.path.join('.')).join(',');
  };
  assert.equal(bad({ limits: { exemptNetworks: ['10.0.0.0/33'] } }), 'limits.exemptNetworks.0');
  assert.equal(bad({ policy: { accessList: [{ network: 'nope', action: 'permit' }] } }), 'policy.accessList.0.network');
  assert.equal(bad({ policy: { dnsbl: { zones: [{ zone: 'bl.test', codes: ['127.0.0'] }] } } }), 'policy.dnsbl.zones.0.codes.0');
  assert.equal(bad({ policy: { dnsbl: { action: 'data' } } }), 'policy.dnsbl.action');
  assert.equal(bad({ limits: { perClient: { connectionsPerHour: 3 } } }), 'limits.perClient');
  const ok = configSchema.parse({ policy: { dnsbl: { zones: [{ zone: 'zen.example', weight: 2, codes: ['127.0.0.[2..11]', '127.0.[0;1].2'] }] }, accessList: [{ network: '2001:db8::/32', action: 'reject' }] } });
  assert.equal(ok.policy.dnsbl.zones[0]!.ipv6, false);
});

test('SIGHUP applies policy.* and the new limits', () => {
  const running = configSchema.parse({});
  const fresh = configSchema.parse({ policy: { dnsbl: { zones: [{ zone: 'bl.test' }] } }, limits: { perClient: { messagesPerMinute: 5 } }, timeouts: { greetPauseMs: 100 } });
  const res = applyLiveConfig(running, fresh);
  assert.ok(res.applied.includes('policy.dnsbl'));
  assert.ok(res.applied.includes('limits.perClient'));
  assert.ok(res.applied.includes('timeouts.greetPauseMs'));
  assert.deepEqual(res.needRestart, []);
  assert.equal(running.policy.dnsbl.zones[0]!.zone, 'bl.test');
});

test('metric label of a check: fixed names, capped zone names, none, other', () => {
  const zones = new LabelSet(2);
  assert.equal(checkLabel(undefined, zones), 'none');
  assert.equal(checkLabel('rate:perNetwork.messagesPerMinute', zones), 'rate:perNetwork.messagesPerMinute');
  assert.equal(checkLabel('auth-throttle', zones), 'auth-throttle');
  assert.equal(checkLabel('dnsbl:a.test', zones), 'dnsbl:a.test');
  assert.equal(checkLabel('dnsbl:b.test', zones), 'dnsbl:b.test');
  assert.equal(checkLabel('dnsbl:c.test', zones), 'dnsbl:other');
  assert.equal(checkLabel('rate:foo', zones), 'other');
});
