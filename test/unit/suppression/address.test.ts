/** The keys of the suppression list (src/suppression/address.ts) and the CSV/JSON exchange formats (csv.ts). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { addressKey, recipientKey, reasonOf, scopeKey, senderScope, SuppressionInputError, wildcardOf } from '../../../src/suppression/address.js';
import { entriesFromCsv, entriesFromJson, parseCsv, toCsv } from '../../../src/suppression/csv.js';
import { normalizeEntries } from '../../../src/suppression/admin.js';

test('addressKey: lower case, A-label domain, *@domain for a whole domain; bad input named', () => {
  assert.equal(addressKey('Bob@Example.NET'), 'bob@example.net');
  assert.equal(addressKey(' <Bob@Example.NET.> '), 'bob@example.net');
  assert.equal(addressKey('User@Bücher.Example'), 'user@xn--bcher-kva.example');
  assert.equal(addressKey('*@Example.com'), '*@example.com');
  assert.equal(addressKey('@example.com'), '*@example.com');
  assert.equal(addressKey('"A b"@Example.com'), '"a b"@example.com', 'a quoted local part, split at the last @');
  assert.equal(recipientKey('"A b"@Example.com'), '"a b"@example.com', 'the same key as RCPT gives');
  for (const bad of ['no-at-sign', 'a@', 'a@-bad-.example', 'a b@example.com', 'a*b@example.com', 'a@exa mple.com', 'a@[192.0.2.1]']) {
    assert.throws(() => addressKey(bad), (e: unknown) => e instanceof SuppressionInputError && e.code === 'ERR_SUPPRESSION_INPUT' && e.field === 'address', bad);
  }
});

test('recipientKey, senderScope, scopeKey, reasonOf', () => {
  assert.equal(recipientKey('Bob@EXAMPLE.net'), 'bob@example.net');
  assert.equal(recipientKey('bob@bücher.example'), 'bob@xn--bcher-kva.example');
  assert.equal(recipientKey('postmaster'), undefined);
  assert.equal(recipientKey('a@[192.0.2.1]'), undefined, 'an address literal is never on the list');
  assert.equal(wildcardOf('bob@example.net'), '*@example.net');
  assert.equal(senderScope('News@Shop.Test'), 'shop.test');
  assert.equal(senderScope(''), undefined);
  assert.equal(scopeKey(undefined), '*');
  assert.equal(scopeKey(''), '*');
  assert.equal(scopeKey('Shop.TEST'), 'shop.test');
  assert.equal(scopeKey('news@shop.test'), 'shop.test', 'an address stands for its domain');
  assert.throws(() => scopeKey('not a domain'), SuppressionInputError);
  assert.equal(reasonOf(undefined), 'manual');
  assert.equal(reasonOf('complaint'), 'complaint');
  assert.throws(() => reasonOf('spam'), /known: hard-bounce, soft-bounce, complaint, unsubscribe, manual/);
});

test('normalizeEntries: every entry checked first, the item named; duplicates keep the last', () => {
  const now = 1000;
  const e = normalizeEntries([{ address: 'A@x.test' }, { address: 'a@X.test', reason: 'complaint', description: 'line\r\nbreak' }, { address: '*@y.test', scope: 'Shop.test' }], 'import', now);
  assert.deepEqual(e, [
    { scope: '*', address: 'a@x.test', reason: 'complaint', source: 'import', description: 'line break', createdAt: now },
    { scope: 'shop.test', address: '*@y.test', reason: 'manual', source: 'import', createdAt: now },
  ]);
  assert.throws(() => normalizeEntries([{ address: 'ok@x.test' }, { address: 'nope' }], 'import', now), (err: unknown) => err instanceof SuppressionInputError && err.field === '1.address' && /^item 1: /.test(err.message));
  assert.throws(() => normalizeEntries([{ address: 'ok@x.test', expiresAt: 999 }], 'api', now), /expiresAt must be a time in the future/);
});

test('CSV: RFC 4180 quoting both ways; import by header names or without a header; JSON arrays, pages and lines', () => {
  const csv = toCsv([{ scope: '*', address: 'a@x.test', reason: 'manual', source: 'operator', description: 'says "no", twice\nreally', createdAt: 0, expiresAt: 86_400_000 }]);
  assert.equal(csv, 'address,scope,reason,description,source,createdAt,expiresAt\r\na@x.test,*,manual,"says ""no"", twice\nreally",operator,1970-01-01T00:00:00.000Z,1970-01-02T00:00:00.000Z\r\n');
  assert.deepEqual(parseCsv(csv)[1], ['a@x.test', '*', 'manual', 'says "no", twice\nreally', 'operator', '1970-01-01T00:00:00.000Z', '1970-01-02T00:00:00.000Z']);
  assert.deepEqual(entriesFromCsv(csv), [{ address: 'a@x.test', scope: '*', reason: 'manual', description: 'says "no", twice\nreally', expiresAt: 86_400_000 }]);
  assert.deepEqual(entriesFromCsv('\uFEFFb@x.test,shop.test,complaint\nc@x.test\n\n'), [{ address: 'b@x.test', scope: 'shop.test', reason: 'complaint' }, { address: 'c@x.test' }]);
  assert.deepEqual(entriesFromCsv('Reason,Address\nunsubscribe,d@x.test\n'), [{ address: 'd@x.test', reason: 'unsubscribe' }]);
  assert.throws(() => entriesFromCsv('address,scope\n,*\n'), /line 2: no address/);
  assert.throws(() => parseCsv('"open'), /unclosed quote/);
  assert.deepEqual(entriesFromJson('[{"address":"a@x.test","reason":"manual","expiresAt":"1970-01-02T00:00:00Z"}]'), [{ address: 'a@x.test', reason: 'manual', expiresAt: 86_400_000 }]);
  assert.deepEqual(entriesFromJson('{"items":[{"address":"a@x.test","scope":"*"}],"next":"x"}'), [{ address: 'a@x.test', scope: '*' }]);
  assert.deepEqual(entriesFromJson('{"address":"a@x.test"}\n{"address":"b@x.test"}\n'), [{ address: 'a@x.test' }, { address: 'b@x.test' }]);
  assert.throws(() => entriesFromJson('[{"scope":"*"}]'), /entry 0: needs an address/);
});
