/**
 * applyLiveConfig (SIGHUP reload, src/config/live.ts): live keys are copied in place, restart-only
 * keys are reported and left alone.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateConfig } from '../../../src/config/load.js';
import { applyLiveConfig } from '../../../src/config/live.js';

const base = { hostname: 'mx.test', dataDir: '/tmp/x', listeners: [{ name: 'mx', port: 2525 }] };

test('live keys are applied in place; restart-only keys are listed and kept', () => {
  const running = validateConfig(base, '/tmp', {});
  const limits = running.limits;
  const fresh = validateConfig({
    ...base, hostname: 'other.test',
    limits: { maxRecipients: 5 },
    relay: { localDomains: ['example.test'] },
    delivery: {
      relayhost: { host: '127.0.0.1', port: 2600 }, connectTimeoutMs: 1234, maxConnections: 7,
      tlsPolicies: [{ match: '.example.test', mode: 'verify' }], mtaSts: { enabled: false }, chunking: false,
    },
  }, '/tmp', {});
  const res = applyLiveConfig(running, fresh);
  assert.equal(running.limits, limits, 'the same object is updated (sessions hold it)');
  assert.equal(running.limits.maxRecipients, 5);
  assert.deepEqual(running.relay.localDomains, ['example.test']);
  assert.equal(running.delivery.relayhost?.port, 2600);
  assert.equal(running.delivery.connectTimeoutMs, 1234);
  assert.deepEqual([running.delivery.tlsPolicies[0]?.mode, running.delivery.mtaSts.enabled, running.delivery.chunking], ['verify', false, false], 'TLS rules, MTA-STS and chunking are live');
  assert.equal(running.delivery.maxConnections, 100, 'connection caps need a restart');
  assert.equal(running.hostname, 'mx.test');
  assert.ok(res.applied.includes('limits.maxRecipients') && res.applied.includes('delivery.relayhost'));
  assert.deepEqual(res.needRestart.sort(), ['delivery.maxConnections', 'hostname']);
  const again = applyLiveConfig(running, validateConfig(base, '/tmp', {}));
  assert.equal(running.delivery.relayhost, undefined, 'a removed key is removed');
  assert.ok(again.applied.includes('delivery.relayhost'));
});

test('auth and arc are taken over whole', () => {
  const running = validateConfig(base, '/tmp', {});
  const fresh = validateConfig({ ...base, auth: { dmarc: { reject: true } }, arc: { domain: 'a.test', selector: 's', privateKey: '/k.pem' } }, '/tmp', {});
  const res = applyLiveConfig(running, fresh);
  assert.equal(running.auth.dmarc.reject, true);
  assert.equal(running.arc?.domain, 'a.test');
  assert.ok(res.applied.includes('auth') && res.applied.includes('arc'));
  applyLiveConfig(running, validateConfig(base, '/tmp', {}));
  assert.equal(running.arc, undefined, 'arc removed again');
});
