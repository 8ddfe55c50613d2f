/**
 * The PROXY protocol header parser (src/smtpd/proxy-header.ts), v1 text and v2 binary: complete
 * headers, every prefix of them ("more"), the bytes after them, the other version on a v1/v2-only
 * listener, LOCAL/UNSPEC/UNKNOWN, and malformed headers. Also the canonical address forms
 * (core/ip.ts) the header addresses come out in.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseProxyHeader, V2_SIGNATURE, V1_MAX } from '../../../src/smtpd/proxy-header.js';
import { canonicalIp, formatIpv6 } from '../../../src/core/ip.js';

/** A v2 header: command (0 LOCAL, 1 PROXY), family byte, address block, TLVs. */
function v2(cmd: number, fam: number, block: Buffer, tlvs = Buffer.alloc(0), version = 2): Buffer {
  const head = Buffer.alloc(4);
  head[0] = (version << 4) | cmd;
  head[1] = fam;
  head.writeUInt16BE(block.length + tlvs.length, 2);
  return Buffer.concat([V2_SIGNATURE, head, block, tlvs]);
}

function tcp4(src: string, dst: string, sport: number, dport: number): Buffer {
  const b = Buffer.alloc(12);
  src.split('.').forEach((o, i) => { b[i] = Number(o); });
  dst.split('.').forEach((o, i) => { b[4 + i] = Number(o); });
  b.writeUInt16BE(sport, 8);
  b.writeUInt16BE(dport, 10);
  return b;
}

test('v1 TCP4 and TCP6: endpoints, length, and every shorter prefix needs more', () => {
  const line = Buffer.from('PROXY TCP4 192.0.2.7 198.51.100.1 51234 25\r\n');
  const withRest = Buffer.concat([line, Buffer.from('EHLO x\r\n')]);
  const p = parseProxyHeader(withRest, 'v1');
  assert.equal(p.kind, 'header');
  if (p.kind !== 'header') return;
  assert.equal(p.length, line.length);
  assert.deepEqual(p.header, { version: 1, local: false, source: { address: '192.0.2.7', port: 51234 }, destination: { address: '198.51.100.1', port: 25 } });
  for (let i = 1; i < line.length; i++) assert.equal(parseProxyHeader(line.subarray(0, i), 'any').kind, 'more', `prefix ${i}`);
  const six = parseProxyHeader(Buffer.from('PROXY TCP6 2001:DB8:0:0::7 ::ffff:198.51.100.1 1 65535\r\n'), 'any');
  assert.equal(six.kind, 'header');
  if (six.kind === 'header') {
    assert.equal(six.header.source!.address, '2001:db8::7', 'canonical form');
    assert.equal(six.header.destination!.address, '198.51.100.1', 'IPv4-mapped as IPv4');
  }
  const unknown = parseProxyHeader(Buffer.from('PROXY UNKNOWN ffff:f...f:ffff 0 0\r\n'), 'v1');
  assert.deepEqual(unknown.kind === 'header' && unknown.header, { version: 1, local: true });
});

test('v1 malformed: refused with a reason', () => {
  const bad = [
    'PROXY TCP4 192.0.2.7 198.51.100.1 51234\r\n', // four fields
    'PROXY TCP4 192.0.2.7  198.51.100.1 1 2\r\n', // double space
    'PROXY TCP4 2001:db8::1 198.51.100.1 1 2\r\n', // family mismatch
    'PROXY TCP6 192.0.2.7 2001:db8::1 1 2\r\n',
    'PROXY TCP4 192.0.2.07 198.51.100.1 1 2\r\n', // leading zero
    'PROXY TCP4 192.0.2.7 198.51.100.1 65536 2\r\n', // port range
    'PROXY TCP4 192.0.2.7 198.51.100.1 01 2\r\n',
    'PROXY UDP4 192.0.2.7 198.51.100.1 1 2\r\n',
    'PROXY TCP4 192.0.2.7 198.51.100.1 1 2\n', // LF only
    'PROXY TCP4 192.0.2.\x017 198.51.100.1 1 2\r\n',
    'EHLO client.example\r\n', // no header at all
    'GET / HTTP/1.0\r\n',
  ];
  for (const b of bad) {
    const p = parseProxyHeader(Buffer.from(b, 'latin1'), 'any');
    assert.equal(p.kind, 'error', JSON.stringify(b));
  }
  const long = Buffer.from(`PROXY TCP4 ${'1'.repeat(V1_MAX)}`);
  assert.equal(parseProxyHeader(long, 'v1').kind, 'error', 'no CRLF within 107 bytes');
  assert.equal(parseProxyHeader(Buffer.from('PROXY TCP4 192.0.2.7 198.51.100.1 1 2\r\n'), 'v2').kind, 'error', 'v1 on a v2 listener');
});

test('v2 PROXY TCP4 and TCP6 with TLVs; LOCAL and UNSPEC use the socket; prefixes need more', () => {
  const h = v2(1, 0x11, tcp4('192.0.2.9', '198.51.100.2', 40000, 587), Buffer.from([0x04, 0x00, 0x02, 0x00, 0x00])); // a NOOP TLV
  const p = parseProxyHeader(Buffer.concat([h, Buffer.from([0x16, 0x03, 0x01])]), 'v2');
  assert.equal(p.kind, 'header');
  if (p.kind === 'header') {
    assert.equal(p.length, h.length);
    assert.deepEqual(p.header.source, { address: '192.0.2.9', port: 40000 });
    assert.deepEqual(p.header.destination, { address: '198.51.100.2', port: 587 });
  }
  for (let i = 1; i < h.length; i++) assert.equal(parseProxyHeader(h.subarray(0, i), 'any').kind, 'more', `prefix ${i}`);
  const b6 = Buffer.alloc(36);
  b6.writeUInt16BE(0x2001, 0); b6.writeUInt16BE(0x0db8, 2); b6[15] = 5; // 2001:db8::5
  b6[26] = 0xff; b6[27] = 0xff; b6[28] = 10; b6[31] = 1; // ::ffff:10.0.0.1
  b6.writeUInt16BE(1234, 32); b6.writeUInt16BE(25, 34);
  const p6 = parseProxyHeader(v2(1, 0x21, b6), 'any');
  assert.equal(p6.kind === 'header' && p6.header.source!.address, '2001:db8::5');
  assert.equal(p6.kind === 'header' && p6.header.destination!.address, '10.0.0.1');
  const local = parseProxyHeader(v2(0, 0x11, tcp4('1.2.3.4', '5.6.7.8', 1, 2)), 'v2');
  assert.deepEqual(local.kind === 'header' && local.header, { version: 2, local: true });
  const unspec = parseProxyHeader(v2(1, 0x00, Buffer.alloc(0)), 'any');
  assert.deepEqual(unspec.kind === 'header' && unspec.header, { version: 2, local: true });
});

test('v2 malformed: version, command, family, short block, bad TLVs, oversize, on a v1 listener', () => {
  const block = tcp4('192.0.2.9', '198.51.100.2', 1, 2);
  const cases: Array<[string, Buffer]> = [
    ['version 1', v2(1, 0x11, block, undefined, 1)],
    ['command 2', v2(2, 0x11, block)],
    ['UDP4', v2(1, 0x12, block)],
    ['UNIX', v2(1, 0x31, Buffer.alloc(216))],
    ['short TCP4', v2(1, 0x11, block.subarray(0, 11))],
    ['short TCP6', v2(1, 0x21, Buffer.alloc(35))],
    ['TLV runs past the end', v2(1, 0x11, block, Buffer.from([0x04, 0x00, 0x05, 0x00]))],
    ['TLV header cut', v2(1, 0x11, block, Buffer.from([0x04, 0x00]))],
  ];
  for (const [what, buf] of cases) assert.equal(parseProxyHeader(buf, 'any').kind, 'error', what);
  const huge = Buffer.concat([V2_SIGNATURE, Buffer.from([0x21, 0x11, 0xff, 0xff])]);
  assert.equal(parseProxyHeader(huge, 'v2').kind, 'error', 'a 65535-byte block is refused before it is read');
  assert.equal(parseProxyHeader(v2(1, 0x11, block), 'v1').kind, 'error', 'v2 on a v1 listener');
  assert.equal(parseProxyHeader(Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0b]), 'v2').kind, 'error', 'bad signature byte');
});

test('canonical address text: RFC 5952 IPv6, IPv4-mapped as IPv4, strict IPv4', () => {
  assert.equal(canonicalIp('2001:0DB8:0000:0000:0000:0000:0000:0001'), '2001:db8::1');
  assert.equal(canonicalIp('2001:db8:0:1:0:0:0:1'), '2001:db8:0:1::1');
  assert.equal(canonicalIp('2001:db8:0:0:1:0:0:1'), '2001:db8::1:0:0:1', 'first of equal runs');
  assert.equal(canonicalIp('::'), '::');
  assert.equal(canonicalIp('::FFFF:192.0.2.1'), '192.0.2.1');
  assert.equal(canonicalIp('fe80::1%eth0'), undefined);
  assert.equal(canonicalIp('192.0.2.01'), undefined);
  assert.equal(canonicalIp('192.0.2.256'), undefined);
  assert.equal(canonicalIp('example.com'), undefined);
  assert.equal(formatIpv6([0x2001, 0xdb8, 0, 1, 1, 1, 1, 1]), '2001:db8:0:1:1:1:1:1', 'a single zero group is not "::"');
});
