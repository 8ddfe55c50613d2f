/**
 * The small parts of inbound verification: the Authentication-Results text and the authserv-id it
 * claims (RFC 8601 2.2, 5), pct= sampling (RFC 7489 6.6.4), when an ARC set may be added (RFC 8617
 * 5.1.1), and the resolver adapter's error codes and deadline.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { authResultsField, authservIdOf, claimsAuthservId, commentText, propValue } from '../../../src/auth/results.js';
import { sampled, heloCheckable, asResult } from '../../../src/auth/verify.js';
import { sealPlan } from '../../../src/auth/seal.js';
import { mailauthResolver } from '../../../src/auth/dns.js';
import { isHeaderFieldLine } from '../../../src/cleanup/modifiers.js';
import { DnsError, type Resolver } from '../../../src/dns/types.js';

test('Authentication-Results: one valid field, folded between results, ASCII only', () => {
  const f = authResultsField('mx.example.test', [
    { method: 'dkim', result: 'pass', props: [['header.i', '@example.com'], ['header.b', 'ab/c+d=']] },
    { method: 'spf', result: 'fail', comment: 'evil (comment) \\ with \r\n newline and caf\u00e9', props: [['smtp.mailfrom', 'a b@x.test'], ['smtp.helo', undefined]] },
    { method: 'dmarc', result: 'pass', props: [['header.from', 'd\u00f6main.test']] },
  ]);
  assert.ok(isHeaderFieldLine(f), f);
  assert.equal(f, 'Authentication-Results: mx.example.test;\r\n dkim=pass header.i=@example.com header.b="ab/c+d=";\r\n'
    + ' spf=fail (evil \\(comment\\) \\\\ with newline and caf?) smtp.mailfrom="a b@x.test";\r\n dmarc=pass\r\n');
  assert.match(authResultsField('mx.example.test', [{ method: 'dmarc', result: 'pass', props: [['header.from', 'd\u00f6main.test']] }], true), /header\.from="d\u00f6main\.test"/);
  assert.equal(authResultsField('mx.example.test', []), 'Authentication-Results: mx.example.test; none\r\n');
  assert.equal(commentText('x'.repeat(300)).length, 200);
  assert.equal(propValue('a@b.test'), 'a@b.test');
  assert.equal(propValue('bad\u0001'), undefined);
});

test('the authserv-id a field claims: comments, quoted strings, version, case', () => {
  assert.equal(authservIdOf(' mx.example.test; spf=pass'), 'mx.example.test');
  assert.equal(authservIdOf('(a (nested) comment)\r\n MX.Example.Test 1; none'), 'mx.example.test');
  assert.equal(authservIdOf('"mx.example.test"; dkim=pass'), 'mx.example.test');
  assert.equal(authservIdOf('mx.example.test;dkim=pass'), 'mx.example.test');
  assert.equal(authservIdOf(''), undefined);
  assert.ok(claimsAuthservId('MX.EXAMPLE.TEST; x=y', 'mx.example.test'));
  assert.ok(!claimsAuthservId('mx.example.test.evil; x=y', 'mx.example.test'));
  assert.ok(!claimsAuthservId('other.test; spf=pass smtp.mailfrom=mx.example.test', 'mx.example.test'));
});

test('pct= sampling: a failure not selected gets the next less strict policy', () => {
  assert.equal(sampled('reject', 100, () => 0.999), 'reject');
  assert.equal(sampled('reject', undefined, () => 0.999), 'reject');
  assert.equal(sampled('reject', 0, () => 0), 'quarantine');
  assert.equal(sampled('quarantine', 0, () => 0), 'none');
  assert.equal(sampled('reject', 30, () => 0.29), 'reject');
  assert.equal(sampled('reject', 30, () => 0.31), 'quarantine');
  assert.equal(sampled('none', 0, () => 0), 'none');
});

test('SPF helpers: which HELO names are checked, result words', () => {
  assert.ok(heloCheckable('mail.example.com'));
  for (const h of ['[192.0.2.1]', '192.0.2.1', 'localhost', '', undefined, 'bad_name.test']) assert.ok(!heloCheckable(h), String(h));
  assert.equal(asResult('temperr'), 'temperror');
  assert.equal(asResult('PASS'), 'pass');
  assert.equal(asResult('weird'), 'permerror');
});

test('ARC: which chains get a set, with which instance and cv=', () => {
  assert.deepEqual(sealPlan({ status: { result: 'none' } }, 0), { i: 1, cv: 'none' });
  assert.deepEqual(sealPlan({ status: { result: 'pass' } }, 3), { i: 4, cv: 'pass' });
  assert.deepEqual(sealPlan({ status: { result: 'fail', shouldSeal: true } }, 2), { i: 3, cv: 'fail' });
  assert.ok('skip' in sealPlan({ status: { result: 'fail' } }, 2));
  assert.ok('skip' in sealPlan({ status: { result: 'pass' } }, 50));
});

test('resolver adapter: node:dns codes, types, and the deadline', async () => {
  let slow: (() => void) | undefined;
  const r: Resolver = {
    resolveMx: async () => [], resolve4: async () => [], resolve6: async () => [],
    lookup: async (name: string, type: string) => {
      if (name === 'nx.test') throw new DnsError('nxdomain', 'nx', name);
      if (name === 'nodata.test') throw new DnsError('nodata', 'nodata', name);
      if (name === 'sf.test') throw new DnsError('temporary', 'SERVFAIL', name);
      if (name === 'slow.test') await new Promise<void>((res) => { slow = res; });
      return { records: (type === 'TXT' ? [['v=spf1 -all']] : ['192.0.2.1']) as never[], ttl: 60 };
    },
  };
  let deadline: number | undefined;
  const temp: string[] = [];
  const f = mailauthResolver(r, { deadline: () => deadline, onTemporary: (n) => temp.push(n) });
  assert.deepEqual(await f('ok.test', 'TXT'), [['v=spf1 -all']]);
  assert.deepEqual(await f('ok.test', 'a'), ['192.0.2.1']);
  const code = async (n: string, t = 'TXT') => f(n, t).then(() => 'ok', (e: { code: string }) => e.code);
  assert.equal(await code('nx.test'), 'ENOTFOUND');
  assert.equal(await code('nodata.test'), 'ENODATA');
  assert.equal(await code('sf.test'), 'ESERVFAIL');
  assert.equal(await code('ok.test', 'SPF'), 'ENODATA');
  deadline = Date.now() + 50;
  const t0 = Date.now();
  assert.equal(await code('slow.test'), 'ETIMEOUT');
  assert.ok(Date.now() - t0 < 1000);
  slow?.();
  deadline = Date.now() - 1;
  assert.equal(await code('ok.test'), 'ETIMEOUT');
  assert.deepEqual(temp, ['sf.test', 'slow.test', 'ok.test']);
});
