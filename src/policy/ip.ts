/**
 * Address helpers for the abuse checks: IPv6 expansion (RFC 4291 2.2), the network an address
 * belongs to (/24, /64 by default) and the reversed names DNS lists are queried under (RFC 5782
 * 2.1 reversed octets for IPv4, 2.4 reversed nibbles for IPv6).
 */
import { isIP } from 'node:net';
import { ipv6Groups } from '../core/ip.js';

/** The eight groups of an IPv6 address (core/ip.ts). */
export { ipv6Groups };

/**
 * The network of an address as a map key: "1.2.3.0/24", "2001:db8:0:1::/64" style (groups in hex).
 * Unknown strings are returned as they are (each its own network).
 */
export function networkKey(address: string, v4Prefix = 24, v6Prefix = 64): string {
  const fam = isIP(address);
  if (fam === 4) {
    const o = address.split('.').map(Number);
    const n = (((o[0]! << 24) >>> 0) + (o[1]! << 16) + (o[2]! << 8) + o[3]!) >>> 0;
    const masked = v4Prefix === 0 ? 0 : (n & ((0xffffffff << (32 - v4Prefix)) >>> 0)) >>> 0;
    return `${masked >>> 24}.${(masked >>> 16) & 255}.${(masked >>> 8) & 255}.${masked & 255}/${v4Prefix}`;
  }
  if (fam === 6) {
    const g = ipv6Groups(address)!;
    const out: string[] = [];
    for (let i = 0; i < 8; i++) {
      const bits = Math.max(0, Math.min(16, v6Prefix - i * 16));
      out.push((bits === 0 ? 0 : g[i]! & ((0xffff << (16 - bits)) & 0xffff)).toString(16));
    }
    return `${out.join(':')}/${v6Prefix}`;
  }
  return address;
}

/**
 * The name to look up in a DNS list (RFC 5782 2.1 and 2.4): "2.0.0.127.ZONE" for 127.0.0.2,
 * 32 reversed nibbles for IPv6. @returns undefined for a string that is not an address.
 */
export function reversedName(address: string, zone: string): string | undefined {
  const fam = isIP(address);
  if (fam === 4) return `${address.split('.').reverse().join('.')}.${zone}`;
  if (fam === 6) {
    const g = ipv6Groups(address);
    if (!g) return undefined;
    const hex = g.map((x) => x.toString(16).padStart(4, '0')).join('');
    return `${[...hex].reverse().join('.')}.${zone}`;
  }
  return undefined;
}
