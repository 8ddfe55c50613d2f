/** RFC 6533 3 utf-8-addr-xtext for "utf-8" ORCPT values: encoding, decoding, and ORCPT parsing. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decodeUtf8AddrXtext, decodeXtext, encodeUtf8AddrXtext } from '../../../src/rfc5321/xtext.js';
import { parseOrcpt } from '../../../src/rfc5321/params.js';

test('utf-8-addr-xtext: QCHARs stay; "+", "=", "\\", space and non-ASCII become \\x{HEX}', () => {
  assert.equal(encodeUtf8AddrXtext('jörg@example.de'), 'j\\x{F6}rg@example.de');
  assert.equal(encodeUtf8AddrXtext('a+b=c\\d e'), 'a\\x{2B}b\\x{3D}c\\x{5C}d\\x{20}e');
  assert.equal(encodeUtf8AddrXtext('用户@例子.广告'), '\\x{7528}\\x{6237}@\\x{4F8B}\\x{5B50}.\\x{5E7F}\\x{544A}');
  assert.equal(encodeUtf8AddrXtext('😀@x'), '\\x{1F600}@x');
});

test('utf-8-addr-xtext is valid xtext: an xtext decoder passes it through unchanged', () => {
  const enc = encodeUtf8AddrXtext('jörg+1@example.de');
  assert.equal(decodeXtext(enc), enc);
});

test('decoding: escapes, xtext "+HH" escapes too; malformed escapes are refused', () => {
  assert.equal(decodeUtf8AddrXtext('j\\x{F6}rg@example.de'), 'jörg@example.de');
  assert.equal(decodeUtf8AddrXtext('j\\x{f6}rg@example.de'), 'jörg@example.de');
  assert.equal(decodeUtf8AddrXtext('j+C3+B6rg@example.de'), 'jörg@example.de');
  assert.equal(decodeUtf8AddrXtext('a\\b@x'), undefined);
  assert.equal(decodeUtf8AddrXtext('a\\x{D800}@x'), undefined);
  assert.equal(decodeUtf8AddrXtext('a\\x{110000}@x'), undefined);
  assert.equal(decodeUtf8AddrXtext('a\\x{0A}@x'), undefined);
  assert.equal(decodeUtf8AddrXtext('a\\x{F6@x'), undefined);
  fc.assert(fc.property(fc.string({ unit: 'grapheme' }).filter((s) => !/[\u0000-\u001f\u007f]/.test(s) && s.length > 0),
    (s) => decodeUtf8AddrXtext(encodeUtf8AddrXtext(s)) === s), { numRuns: 300 });
});

test('ORCPT=utf-8;... is decoded with RFC 6533 escapes; rfc822 stays plain xtext', () => {
  assert.deepEqual(parseOrcpt('utf-8;j\\x{F6}rg@example.de'), { addrType: 'utf-8', address: 'jörg@example.de' });
  assert.deepEqual(parseOrcpt('UTF-8;j+C3+B6rg@example.de'), { addrType: 'utf-8', address: 'jörg@example.de' });
  assert.deepEqual(parseOrcpt('rfc822;a\\x{F6}@x'), { addrType: 'rfc822', address: 'a\\x{F6}@x' });
  assert.equal(parseOrcpt('utf-8;a\\q@x'), undefined);
});
