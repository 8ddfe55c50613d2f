/** local.routes: match order, local domains, next hops by transport; config checks. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { configSchema } from '../../../src/config/schema.js';
import { createRouter } from '../../../src/routing/router.js';
import { compileLocalRoutes, localNextHop } from '../../../src/routing/local-routes.js';
import { nextHopKey, transportOf } from '../../../src/routing/types.js';

const base = { listeners: [{ name: 'mx', port: 2525 }] };

test('the most specific route wins: address, domain, *.parent (longest), then * for local domains only', () => {
  const cfg = configSchema.parse({
    ...base,
    relay: { localDomains: ['plain.example'] },
    local: {
      routes: [
        { match: '*', transport: 'maildir', target: '/var/mail/{domain}/{user}' },
        { match: 'Bob@Example.TEST', transport: 'http', target: 'https://hooks.test/in' },
        { match: 'example.test', transport: 'lmtp', target: 'unix:/run/dovecot/lmtp' },
        { match: '*.test', transport: 'lmtp', target: '127.0.0.1:24' },
        { match: '*.deep.test', transport: 'smtp', target: '[127.0.0.7]:2600' },
        { match: 'gone.test', mode: 'bounce' },
      ],
    },
  });
  const r = createRouter(cfg);
  assert.deepEqual(r.route('bob@example.test'), { kind: 'http', url: 'https://hooks.test/in', bounceOn4xx: false });
  assert.deepEqual(r.route('carol@EXAMPLE.test'), { kind: 'lmtp', target: 'unix:/run/dovecot/lmtp' });
  assert.deepEqual(r.route('x@a.deep.test'), { kind: 'host', host: '127.0.0.7', port: 2600, tls: 'opportunistic' });
  assert.deepEqual(r.route('x@other.test'), { kind: 'lmtp', target: '127.0.0.1:24' });
  assert.deepEqual(r.route('x@gone.test'), { kind: 'internal', name: 'bounce' });
  // "*" covers the local domains without a route of their own; other domains take MX as before.
  assert.deepEqual(r.route('x@plain.example'), { kind: 'maildir', path: '/var/mail/{domain}/{user}' });
  assert.equal(r.route('x@example.com').kind, 'mx');
  assert.equal(transportOf(r.route('x@plain.example')), 'maildir');
  assert.equal(transportOf(r.route('x@example.com')), 'smtp');
  assert.equal(nextHopKey(r.route('carol@example.test')), 'lmtp:unix:/run/dovecot/lmtp');
});

test('local domains: relay.localDomains and every domain a route names; address literals never match', () => {
  const t = compileLocalRoutes([
    { match: 'a@one.test', mode: 'reject', bounceOn4xx: false },
    { match: 'two.test', mode: 'hold', bounceOn4xx: false },
    { match: '*.three.test', mode: 'accept', transport: 'maildir', target: '/m', bounceOn4xx: false },
    { match: '*', mode: 'accept', transport: 'maildir', target: '/m', bounceOn4xx: false },
  ], ['Zero.Test']);
  for (const d of ['zero.test', 'one.test', 'two.test', 'x.three.test']) assert.ok(t.isLocalDomain(d), d);
  assert.equal(t.isLocalDomain('three.test'), false);
  assert.equal(t.isLocalDomain('else.test'), false);
  assert.equal(t.find('a@[127.0.0.1]'), undefined);
  assert.equal(t.find('b@one.test')?.match, '*');
  assert.equal(t.find('x@else.test'), undefined);
  assert.equal(localNextHop(t.find('A@one.test')!)?.kind, 'internal');
  assert.equal(localNextHop(t.find('x@two.test')!), undefined, 'hold without a transport takes the normal route once released');
});

test('config: accept needs a transport and a target of its shape', () => {
  const bad = (route: object) => configSchema.safeParse({ ...base, local: { routes: [route] } }).success === false;
  assert.ok(bad({ match: 'x.test' }));
  assert.ok(bad({ match: 'x.test', transport: 'maildir' }));
  assert.ok(bad({ match: 'x.test', transport: 'http', target: 'ftp://x' }));
  assert.ok(bad({ match: 'x.test', transport: 'lmtp', target: 'nohost' }));
  assert.ok(bad({ match: 'a@b@c', transport: 'maildir', target: '/m' }));
  assert.ok(bad({ match: 'x.test', transport: 'pigeon', target: '/m' }));
  assert.ok(!bad({ match: 'x.test', transport: 'lmtp', target: '[::1]:24' }));
  assert.ok(!bad({ match: 'x.test', mode: 'reject' }));
});
