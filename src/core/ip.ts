/**
 * Client address normalisation shared by smtpd and policy: one rule, applied once per connection;
 * and the one canonical text form of an address given as text (PROXY v1, XCLIENT) or as bytes
 * (PROXY v2), so one client never counts under two spellings (RFC 5952 for IPv6).
 */
import { isIP } from 'node:net';

/** Strips the IPv4-mapped prefix: "::ffff:10.0.0.1" -> "10.0.0.1" (IPv4 clients on dual-stack sockets count as IPv4). */
export function normalizeAddress(address: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return m ? m[1]! : address;
}

/**
 * The eight 16-bit groups of an IPv6 address ("2001:db8::1", "::ffff:1.2.3.4").
 * @returns undefined when `a` is not an IPv6 address.
 */
export function ipv6Groups(a: string): number[] | undefined {
  if (isIP(a) !== 6) return undefined;
  let s = a.toLowerCase();
  const pct = s.indexOf('%');
  if (pct >= 0) s = s.slice(0, pct);
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(s);
  if (v4) {
    const o = v4.slice(1, 5).map(Number) as [number, number, number, number];
    s = `${s.slice(0, v4.index)}${((o[0] << 8) | o[1]).toString(16)}:${((o[2] << 8) | o[3]).toString(16)}`;
  }
  const [head = '', rest] = s.split('::');
  const parse = (part: string): number[] => (part === '' ? [] : part.split(':').map((x) => parseInt(x, 16)));
  const h = parse(head);
  const r = rest === undefined ? [] : parse(rest);
  const groups = rest === undefined ? h : [...h, ...new Array<number>(Math.max(0, 8 - h.length - r.length)).fill(0), ...r];
  return groups.length === 8 ? groups : undefined;
}

/**
 * RFC 5952 text of eight 16-bit groups: lower-case hex, no leading zeros, the longest run of two or
 * more zero groups (the first of equal runs) as "::"; an IPv4-mapped address as "::ffff:a.b.c.d".
 */
export function formatIpv6(g: readonly number[]): string {
  if (g.length !== 8) throw new RangeError('formatIpv6: eight groups expected');
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) {
    return `::ffff:${g[6]! >> 8}.${g[6]! & 255}.${g[7]! >> 8}.${g[7]! & 255}`;
  }
  let best = -1, bestLen = 0;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) { best = i; bestLen = j - i; }
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

/**
 * The canonical text of an IP address given as text: IPv4 as four decimal octets without leading
 * zeros (a leading zero is refused: some parsers read it as octal), IPv6 in RFC 5952 form, an
 * IPv4-mapped IPv6 address as plain IPv4 (normalizeAddress). No zone index ("%eth0").
 * @returns undefined when `text` is not an address.
 */
export function canonicalIp(text: string): string | undefined {
  const fam = isIP(text);
  if (fam === 4) return /^(0|[1-9]\d{0,2})(\.(0|[1-9]\d{0,2})){3}$/.test(text) ? text : undefined;
  if (fam !== 6 || text.includes('%')) return undefined;
  const g = ipv6Groups(text);
  return g ? normalizeAddress(formatIpv6(g)) : undefined;
}
