/** The `suppression` section of the configuration: defaults, strictness, and that SIGHUP applies it. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { configSchema } from '../../../src/config/schema.js';
import { applyLiveConfig } from '../../../src/config/live.js';

test('suppression defaults: on, reject, 5 soft bounces, per sender domain', () => {
  assert.deepEqual(configSchema.parse({}).suppression, { enabled: true, mode: 'reject', softBounceLimit: 5, scope: 'sender-domain' });
  const c = configSchema.parse({ suppression: { mode: 'drop', softBounceLimit: 0, scope: 'global' } });
  assert.deepEqual(c.suppression, { enabled: true, mode: 'drop', softBounceLimit: 0, scope: 'global' });
});

test('suppression: bad values are refused naming the key', () => {
  const bad = (raw: unknown): string => {
    const r = configSchema.safeParse(raw);
    assert.equal(r.success, false);
    return r.error!.issues.map((i) => i.path.join('.')).join(',');
  };
  assert.equal(bad({ suppression: { mode: 'bounce' } }), 'suppression.mode');
  assert.equal(bad({ suppression: { softBounceLimit: -1 } }), 'suppression.softBounceLimit');
  assert.equal(bad({ suppression: { softBounceLimit: 2.5 } }), 'suppression.softBounceLimit');
  assert.equal(bad({ suppression: { scope: 'tenant' } }), 'suppression.scope');
  assert.equal(bad({ suppression: { enabled: 'yes' } }), 'suppression.enabled');
  assert.equal(bad({ suppression: { hardBounceLimit: 1 } }), 'suppression');
});

test('suppression: SIGHUP applies the section in place', () => {
  const running = configSchema.parse({});
  const res = applyLiveConfig(running, configSchema.parse({ suppression: { mode: 'drop', softBounceLimit: 3 } }));
  assert.deepEqual(res.applied.filter((k) => k.startsWith('suppression.')).sort(), ['suppression.mode', 'suppression.softBounceLimit']);
  assert.deepEqual(res.needRestart, []);
  assert.equal(running.suppression.mode, 'drop');
  assert.equal(running.suppression.softBounceLimit, 3);
});
