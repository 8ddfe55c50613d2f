/**
 * SSRF guard for webhook URLs: only http(s), and never to addresses inside the host or its network
 * that an outsider who can set a URL should not reach.
 *
 * Always refused: link-local (169.254.0.0/16, fe80::/10), cloud metadata (169.254.169.254,
 * fd00:ec2::254), unspecified / "this network" (0.0.0.0/8, ::), multicast and broadcast
 * (224.0.0.0/4, 255.255.255.255, ff00::/8).
 * Refused unless `allowPrivate`: loopback (127.0.0.0/8, ::1), private (10/8, 172.16/12,
 * 192.168/16, 100.64/10 shared address space, fc00::/7 unique local).
 * IPv4-mapped (::ffff:a.b.c.d) and NAT64 (64:ff9b::/96) addresses are judged by their IPv4 part.
 *
 * Literal addresses are checked at configuration load (`checkUrlStatic`); host names are resolved
 * and EVERY address checked before each request (`resolveAndCheck`). Residual risk: fetch resolves
 * the name again when it connects, so a name whose answers change between the two lookups (DNS
 * rebinding) can slip through; operators who fear that should configure literal addresses.
 */
import { BlockList, isIP } from 'node:net';
import { lookup as dnsLookup } from 'node:dns/promises';
import { WebhookTargetError } from './errors.js';

/** What kind of address an IP is, for the guard. */
export type AddressClass = 'public' | 'loopback' | 'private' | 'link-local' | 'metadata' | 'unspecified' | 'multicast' | 'reserved' | 'invalid';

function list(v4: Array<[string, number]>, v6: Array<[string, number]>): BlockList {
  const b = new BlockList();
  for (const [a, p] of v4) b.addSubnet(a, p, 'ipv4');
  for (const [a, p] of v6) b.addSubnet(a, p, 'ipv6');
  return b;
}

const METADATA = list([['169.254.169.254', 32]], [['fd00:ec2::254', 128]]);
const LINK_LOCAL = list([['169.254.0.0', 16]], [['fe80::', 10]]);
const UNSPECIFIED = list([['0.0.0.0', 8]], [['::', 128]]);
const MULTICAST = list([['224.0.0.0', 4], ['255.255.255.255', 32]], [['ff00::', 8]]);
const LOOPBACK = list([['127.0.0.0', 8]], [['::1', 128]]);
const PRIVATE = list([['10.0.0.0', 8], ['172.16.0.0', 12], ['192.168.0.0', 16], ['100.64.0.0', 10], ['192.0.0.0', 24], ['198.18.0.0', 15]],
  [['fc00::', 7], ['64:ff9b:1::', 48]]);
/**
 * Reserved for future use (240/4, RFC 6890) and discard-only (100::/64). The documentation ranges
 * (192.0.2/24, 2001:db8::/32...) stay "public": unrouted anyway, and tests and examples use them.
 */
const RESERVED = list([['240.0.0.0', 4]], [['100::', 64]]);

/** The 8 hextets of an IPv6 address (a valid one: isIP said 6), an embedded dotted quad included. */
function hextets(ip6: string): number[] {
  let s = ip6.toLowerCase();
  const quad = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(s);
  if (quad) {
    const [a, b, c, d] = quad.slice(1).map(Number) as [number, number, number, number];
    s = s.slice(0, quad.index) + `${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = s.includes('::') ? s.split('::') as [string, string] : [s, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const fill = tail === undefined ? [] : new Array(8 - h.length - t.length).fill('0');
  return [...h, ...fill, ...t].map((x) => parseInt(x, 16));
}

/**
 * The IPv4 address an IPv6 address stands for, or undefined: IPv4-mapped (::ffff:0:0/96),
 * IPv4-compatible (::/96, deprecated), NAT64 well-known (64:ff9b::/96) and 6to4 (2002::/16), in any
 * spelling (hex or dotted, compressed or not).
 */
function embeddedV4(ip6: string): string | undefined {
  const x = hextets(ip6);
  if (x.length !== 8 || x.some((n) => !Number.isInteger(n))) return undefined;
  const v4 = (hi: number, lo: number): string => `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  const zeros = (from: number, to: number): boolean => x.slice(from, to).every((n) => n === 0);
  if (zeros(0, 5) && x[5] === 0xffff) return v4(x[6]!, x[7]!);
  if (zeros(0, 6) && (x[6] !== 0 || x[7]! > 1)) return v4(x[6]!, x[7]!);
  if (x[0] === 0x64 && x[1] === 0xff9b && zeros(2, 6)) return v4(x[6]!, x[7]!);
  if (x[0] === 0x2002) return v4(x[1]!, x[2]!);
  return undefined;
}

/** Classifies one IP address (IPv4 or IPv6, brackets allowed). */
export function classifyAddress(address: string): AddressClass {
  let a = address.trim();
  if (a.startsWith('[') && a.endsWith(']')) a = a.slice(1, -1);
  const zone = a.indexOf('%');
  if (zone >= 0) a = a.slice(0, zone);
  let family = isIP(a);
  if (!family) return 'invalid';
  if (family === 6) {
    const v4 = embeddedV4(a);
    if (v4 && isIP(v4) === 4) { a = v4; family = 4; }
  }
  const t = family === 4 ? 'ipv4' : 'ipv6';
  if (METADATA.check(a, t)) return 'metadata';
  if (LINK_LOCAL.check(a, t)) return 'link-local';
  if (UNSPECIFIED.check(a, t)) return 'unspecified';
  if (MULTICAST.check(a, t)) return 'multicast';
  if (LOOPBACK.check(a, t)) return 'loopback';
  if (PRIVATE.check(a, t)) return 'private';
  if (RESERVED.check(a, t)) return 'reserved';
  return 'public';
}

/** Why `address` is refused, or undefined when it may be used. */
export function refusalOf(address: string, allowPrivate: boolean): string | undefined {
  const c = classifyAddress(address);
  if (c === 'public') return undefined;
  if (allowPrivate && (c === 'loopback' || c === 'private')) return undefined;
  if (c === 'invalid') return `"${address}" is not an IP address`;
  return `${address} is a ${c} address${c === 'loopback' || c === 'private' ? ' (set allowPrivate: true to allow it)' : ''}`;
}

/** The host part of a URL without IPv6 brackets. */
function hostOf(url: URL): string {
  const h = url.hostname;
  return h.startsWith('[') && h.endsWith(']') ? h.slice(1, -1) : h;
}

/**
 * Checks what can be checked without DNS: the URL parses, its scheme is http or https, it carries
 * no user:password, and a literal IP host is allowed. Used at configuration load.
 * @returns the reason it is refused, or undefined.
 */
export function checkUrlStatic(raw: string, allowPrivate: boolean): string | undefined {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return `"${raw}" is not a URL`;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return `only http and https URLs are allowed, not ${url.protocol.replace(/:$/, '')}`;
  if (url.username || url.password) return 'a webhook URL must not carry a user name or password (use the signing secret)';
  const host = hostOf(url);
  if (!host) return 'the URL has no host';
  if (isIP(host)) return refusalOf(host, allowPrivate);
  return undefined;
}

/** A name lookup returning every address (node:dns/promises lookup with all: true by default). */
export type LookupAll = (host: string) => Promise<Array<{ address: string; family: number }>>;

const systemLookup: LookupAll = (host) => dnsLookup(host, { all: true, verbatim: true });

/**
 * Checks a URL before a request: the static checks, then (for a host name) resolves it and checks
 * every address it has; one refused address refuses the URL.
 * @returns the checked addresses of a host name (the request connects to these only: http-post.ts
 *          pins its lookup), or [] for a literal address.
 * @throws WebhookTargetError when refused or the name does not resolve.
 */
export async function resolveAndCheck(raw: string, allowPrivate: boolean, lookup: LookupAll = systemLookup): Promise<Array<{ address: string; family: number }>> {
  const why = checkUrlStatic(raw, allowPrivate);
  if (why) throw new WebhookTargetError(`webhook URL refused: ${why}`);
  const host = hostOf(new URL(raw));
  if (isIP(host)) return [];
  let addrs: Array<{ address: string; family: number }>;
  try {
    addrs = await lookup(host);
  } catch (err) {
    throw new WebhookTargetError(`cannot resolve ${host}: ${(err as Error).message}`);
  }
  if (addrs.length === 0) throw new WebhookTargetError(`${host} has no addresses`);
  for (const { address } of addrs) {
    const r = refusalOf(address, allowPrivate);
    if (r) throw new WebhookTargetError(`webhook URL refused: ${host} resolves to ${r}`);
  }
  return addrs;
}
