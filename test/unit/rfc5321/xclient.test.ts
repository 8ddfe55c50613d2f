/**
 * XCLIENT and XFORWARD argument grammar (src/rfc5321/xclient.ts, postfix.org XCLIENT_README and
 * XFORWARD_README): xtext values, [UNAVAILABLE] / [TEMPUNAVAIL] in any case, IPV6: addresses,
 * case-insensitive names, and 501 5.5.4 for everything malformed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseXclient, parseXforward } from '../../../src/rfc5321/xclient.js';
import { replyToString } from '../../../src/core/reply.js';

test('XCLIENT: every attribute, xtext, special values, IPV6: prefix, last one wins', () => {
  const r = parseXclient('NAME=Spike.Porcupine.Org ADDR=168.100.189.2 PORT=4321 proto=esmtp HELO=spike+2Bx LOGIN=al+2Bice DESTADDR=IPv6:2001:DB8::25 DESTPORT=25');
  assert.ok(r.ok);
  assert.deepEqual(r.value, { name: 'spike.porcupine.org', addr: '168.100.189.2', port: 4321, proto: 'ESMTP', helo: 'spike+x', login: 'al+ice', destaddr: '2001:db8::25', destport: 25 });
  const u = parseXclient('NAME=[tempunavail] ADDR=[UNAVAILABLE] PORT=[Unavailable] HELO=[UNAVAILABLE] LOGIN=[UNAVAILABLE]');
  assert.ok(u.ok);
  assert.deepEqual(u.value, { name: null, addr: null, port: null, helo: null, login: null });
  const mapped = parseXclient('ADDR=IPV6:::ffff:192.0.2.1 ADDR=192.0.2.9');
  assert.ok(mapped.ok);
  assert.equal(mapped.value.addr, '192.0.2.9', 'the later ADDR wins');
  const m2 = parseXclient('ADDR=IPV6:::ffff:192.0.2.1');
  assert.equal(m2.ok && m2.value.addr, '192.0.2.1', 'IPv4-mapped becomes IPv4');
});

test('XCLIENT: malformed attributes get 501 5.5.4 naming them', () => {
  const cases: Array<[string, RegExp]> = [
    ['', /needs attribute=value/],
    ['ADDR', /expects attribute=value/],
    ['=1.2.3.4', /expects attribute=value/],
    ['FOO=bar', /bad XCLIENT attribute name: FOO/],
    ['IDENT=x', /bad XCLIENT attribute name: IDENT/],
    ['ADDR=2001:db8::1', /ADDR syntax/], // IPv6 needs the prefix
    ['ADDR=IPV6:1.2.3.4', /ADDR syntax/],
    ['ADDR=1.2.3', /ADDR syntax/],
    ['ADDR=[1.2.3.4]', /ADDR syntax/],
    ['PORT=65536', /PORT syntax/],
    ['PORT=-1', /PORT syntax/],
    ['PROTO=LMTP', /PROTO syntax/],
    ['NAME=bad+20name', /NAME syntax/],
    ['NAME=a..b', /NAME syntax/],
    [`HELO=${'h'.repeat(256)}`, /HELO syntax/],
    ['HELO=a+0Ab', /not valid xtext/], // a control character
    ['HELO=a+2bb', /not valid xtext/], // lower-case hex
    ['LOGIN=a=b', /not valid xtext/],
  ];
  for (const [arg, re] of cases) {
    const r = parseXclient(arg);
    assert.equal(r.ok, false, arg);
    if (!r.ok) {
      assert.match(replyToString(r.reply), /^501 5\.5\.4 /, arg);
      assert.match(replyToString(r.reply), re, arg);
    }
  }
});

test('XFORWARD: attributes, [UNAVAILABLE] erases, non-IP ADDR kept, SOURCE checked, specials refused', () => {
  const r = parseXforward('NAME=spike.porcupine.org ADDR=IPV6:2001:DB8::1 PORT=25 PROTO=ESMTP HELO=[192.0.2.1] IDENT=4Ab12C source=local');
  assert.ok(r.ok);
  assert.deepEqual(r.value, { name: 'spike.porcupine.org', addr: '2001:db8::1', port: '25', proto: 'ESMTP', helo: '[192.0.2.1]', ident: '4Ab12C', source: 'LOCAL' });
  const u = parseXforward('ADDR=[UNAVAILABLE] NAME=localhost ADDR=unix:/run/x');
  assert.ok(u.ok);
  assert.deepEqual(u.value, { addr: 'unix:/run/x', name: 'localhost' });
  for (const bad of ['LOGIN=x', 'SOURCE=elsewhere', 'PORT=x', `PROTO=${'P'.repeat(65)}`, 'NAME=a(b)', 'HELO=a;b', 'NAME=a+20b', 'IDENT=']) {
    const p = parseXforward(bad);
    assert.equal(p.ok, false, bad);
    if (!p.ok) assert.match(replyToString(p.reply), /^501 5\.5\.4 /);
  }
});
