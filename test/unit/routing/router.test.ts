/** Router: routes, relayhost, MX; IDN domains as A-labels. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { configSchema } from '../../../src/config/schema.js';
import { createRouter } from '../../../src/routing/router.js';
import { nextHopKey } from '../../../src/routing/types.js';

const base = { listeners: [{ name: 'mx', port: 2525 }] };

test('MX by default, domain lower-cased A-label, mxPort and tls from config', () => {
  const r = createRouter(configSchema.parse({ ...base, delivery: { mxPort: 2600, tls: 'none' } }));
  assert.deepEqual(r.route('Bob@Example.COM'), { kind: 'mx', domain: 'example.com', port: 2600, tls: 'none' });
  assert.deepEqual(r.route('x@Bücher.Example'), { kind: 'mx', domain: 'xn--bcher-kva.example', port: 2600, tls: 'none' });
  assert.equal(nextHopKey(r.route('a@example.com')), 'mx:example.com:2600');
});

test('routes first (exact and *.subdomain), then relayhost', () => {
  const cfg = configSchema.parse({
    ...base,
    delivery: {
      routes: [
        { domain: 'exact.test', host: '127.0.0.5', port: 2601, tls: 'none' },
        { domain: '*.sub.test', host: 'relay.sub.test', auth: { username: 'u', password: 'p' } },
      ],
      relayhost: { host: 'smart.test', port: 587, tls: 'starttls' },
    },
  });
  const r = createRouter(cfg);
  assert.deepEqual(r.route('a@EXACT.test'), { kind: 'host', host: '127.0.0.5', port: 2601, tls: 'none' });
  assert.deepEqual(r.route('a@x.y.sub.test'), { kind: 'host', host: 'relay.sub.test', port: 25, tls: 'opportunistic', auth: { username: 'u', password: 'p' } });
  // "*.sub.test" does not match sub.test itself; it falls to the relayhost.
  assert.deepEqual(r.route('a@sub.test'), { kind: 'host', host: 'smart.test', port: 587, tls: 'starttls', mxLookup: false });
  assert.deepEqual(r.route('a@other.test'), { kind: 'host', host: 'smart.test', port: 587, tls: 'starttls', mxLookup: false });
});

test('address literal goes to that address', () => {
  const r = createRouter(configSchema.parse(base));
  assert.deepEqual(r.route('a@[127.0.0.9]'), { kind: 'host', host: '127.0.0.9', port: 25, tls: 'opportunistic' });
  assert.deepEqual(r.route('a@[IPv6:::1]'), { kind: 'host', host: '::1', port: 25, tls: 'opportunistic' });
});
