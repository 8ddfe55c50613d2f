/**
 * The PROXY protocol header (HAProxy's "PROXY protocol" specification, versions 1 and 2): the
 * first bytes a load balancer sends on a connection, naming the client it accepted.
 *
 * Owns: parsing a header from the bytes received so far, strictly. No I/O (socket-peek.ts reads).
 * - v1: one text line `PROXY TCP4|TCP6 SRC DST SPORT DPORT\r\n` (at most 107 bytes), or
 *   `PROXY UNKNOWN ...\r\n` (the real connection endpoints apply).
 * - v2: the 12-byte signature, version 2, command LOCAL (health checks: the real endpoints) or
 *   PROXY, family INET/INET6 over STREAM (TCP) with their address block, or UNSPEC (the real
 *   endpoints); TLVs after the addresses are checked for shape and otherwise ignored. UDP and
 *   UNIX-socket families are refused (no SMTP over them).
 * Addresses come out in one canonical text form (core/ip.ts canonicalIp / formatIpv6).
 */
import { isIP } from 'node:net';
import { canonicalIp, formatIpv6 } from '../core/ip.js';

/** Which header versions a listener takes (listeners[].proxyProtocol). */
export type ProxyMode = 'v1' | 'v2' | 'any';

/** One end of the proxied connection. */
export interface ProxyEndpoint {
  readonly address: string;
  readonly port: number;
}

/** A parsed header. */
export interface ProxyHeader {
  readonly version: 1 | 2;
  /**
   * True when the header names no client (v2 LOCAL, v2 UNSPEC, v1 UNKNOWN): the connection's own
   * endpoints apply (the proxy talks for itself, e.g. a health check).
   */
  readonly local: boolean;
  /** The client (absent when `local`). */
  readonly source?: ProxyEndpoint;
  /** The address the client connected to at the proxy (absent when `local`). */
  readonly destination?: ProxyEndpoint;
}

/** The parse of the bytes so far: need more, a header and its length in bytes, or why it is refused. */
export type ProxyParse =
  | { readonly kind: 'more' }
  | { readonly kind: 'header'; readonly header: ProxyHeader; readonly length: number }
  | { readonly kind: 'error'; readonly reason: string };

/** The v2 signature: \r\n\r\n\0\r\nQUIT\n. */
export const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V1_PREFIX = Buffer.from('PROXY ', 'latin1');
/** Longest v1 line, CRLF included (the specification's bound). */
export const V1_MAX = 107;
/** Longest v2 address-and-TLV block accepted, bytes (the format allows 65535; HAProxy's TCP headers are far shorter). */
export const V2_MAX_BLOCK = 4096;

const more = { kind: 'more' } as const;
const fail = (reason: string): ProxyParse => ({ kind: 'error', reason });

/** True when `buf` could still become `prefix` (it is a prefix of it, or the other way round). */
function startsLike(buf: Buffer, prefix: Buffer): boolean {
  const n = Math.min(buf.length, prefix.length);
  return buf.subarray(0, n).equals(prefix.subarray(0, n));
}

/**
 * Parses a PROXY header at the start of `buf` (the bytes received so far).
 * @param mode which versions are accepted; the other version is refused as soon as it is recognised.
 * @returns `more` while the header is incomplete, `header` with its length (the bytes after it
 *   belong to the client), or `error` with a reason for the log.
 */
export function parseProxyHeader(buf: Buffer, mode: ProxyMode): ProxyParse {
  if (buf.length === 0) return more;
  const v1 = startsLike(buf, V1_PREFIX);
  const v2 = startsLike(buf, V2_SIGNATURE);
  if (v1) return mode === 'v2' ? fail('a v1 header on a v2 listener') : parseV1(buf);
  if (v2) return mode === 'v1' ? fail('a v2 header on a v1 listener') : parseV2(buf);
  return fail('no PROXY header');
}

const PORT = /^(0|[1-9]\d{0,4})$/;

function endpoint(addr: string, port: string, family: 4 | 6): ProxyEndpoint | undefined {
  const a = isIP(addr) === family ? canonicalIp(addr) : undefined;
  if (a === undefined || !PORT.test(port) || Number(port) > 65535) return undefined;
  return { address: a, port: Number(port) };
}

/** v1: "PROXY" SP ( "TCP4" | "TCP6" ) SP src SP dst SP sport SP dport CRLF, or "PROXY UNKNOWN" ... CRLF. */
function parseV1(buf: Buffer): ProxyParse {
  const lf = buf.indexOf(0x0a);
  if (lf < 0) return buf.length >= V1_MAX ? fail('v1 line longer than 107 bytes') : more;
  if (lf + 1 > V1_MAX) return fail('v1 line longer than 107 bytes');
  if (lf === 0 || buf[lf - 1] !== 0x0d) return fail('v1 line not ended by CRLF');
  const line = buf.subarray(0, lf - 1);
  if (!line.every((b) => b >= 0x20 && b < 0x7f)) return fail('v1 line with a control or non-ASCII byte');
  const parts = line.toString('latin1').split(' ');
  if (parts[1] === 'UNKNOWN') return { kind: 'header', header: { version: 1, local: true }, length: lf + 1 };
  if (parts.length !== 6) return fail('v1 line without exactly five fields');
  const [, proto, src = '', dst = '', sport = '', dport = ''] = parts;
  if (proto !== 'TCP4' && proto !== 'TCP6') return fail(`v1 protocol "${proto}" is neither TCP4, TCP6 nor UNKNOWN`);
  const family = proto === 'TCP4' ? 4 : 6;
  const source = endpoint(src, sport, family);
  const destination = endpoint(dst, dport, family);
  if (!source || !destination) return fail(`v1 ${proto} addresses or ports malformed`);
  return { kind: 'header', header: { version: 1, local: false, source, destination }, length: lf + 1 };
}

function ipv4(b: Buffer, at: number): string {
  return `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;
}

function ipv6(b: Buffer, at: number): string {
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push(b.readUInt16BE(at + i * 2));
  return canonicalIp(formatIpv6(g))!;
}

/** True when `tlv` is a well-formed sequence of type(1) length(2) value TLVs. */
function tlvsWellFormed(tlv: Buffer): boolean {
  let i = 0;
  while (i < tlv.length) {
    if (i + 3 > tlv.length) return false;
    i += 3 + tlv.readUInt16BE(i + 1);
  }
  return i === tlv.length;
}

/** v2: signature, ver_cmd, fam, len (big-endian), then `len` bytes of addresses and TLVs. */
function parseV2(buf: Buffer): ProxyParse {
  if (buf.length < 16) return more;
  const verCmd = buf[12]!;
  if (verCmd >> 4 !== 2) return fail(`v2 version ${verCmd >> 4} (only 2 exists)`);
  const cmd = verCmd & 0x0f;
  if (cmd > 1) return fail(`v2 command ${cmd} is neither LOCAL nor PROXY`);
  const len = buf.readUInt16BE(14);
  if (len > V2_MAX_BLOCK) return fail(`v2 block of ${len} bytes (at most ${V2_MAX_BLOCK} accepted)`);
  if (buf.length < 16 + len) return more;
  const block = buf.subarray(16, 16 + len);
  const length = 16 + len;
  const fam = buf[13]!;
  if (cmd === 0) return { kind: 'header', header: { version: 2, local: true }, length }; // LOCAL: the block is ignored
  if (fam === 0x00) return { kind: 'header', header: { version: 2, local: true }, length }; // UNSPEC
  if (fam === 0x11) {
    if (len < 12) return fail('v2 TCP4 block shorter than 12 bytes');
    if (!tlvsWellFormed(block.subarray(12))) return fail('v2 TLVs malformed');
    return {
      kind: 'header', length,
      header: { version: 2, local: false, source: { address: ipv4(block, 0), port: block.readUInt16BE(8) }, destination: { address: ipv4(block, 4), port: block.readUInt16BE(10) } },
    };
  }
  if (fam === 0x21) {
    if (len < 36) return fail('v2 TCP6 block shorter than 36 bytes');
    if (!tlvsWellFormed(block.subarray(36))) return fail('v2 TLVs malformed');
    return {
      kind: 'header', length,
      header: { version: 2, local: false, source: { address: ipv6(block, 0), port: block.readUInt16BE(32) }, destination: { address: ipv6(block, 16), port: block.readUInt16BE(34) } },
    };
  }
  return fail(`v2 address family 0x${fam.toString(16).padStart(2, '0')} not supported (TCP over IPv4 or IPv6 only)`);
}
