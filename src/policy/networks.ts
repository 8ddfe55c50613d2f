/**
 * Trusted networks: CIDR lists matched with node:net BlockList (IPv4 and IPv6, RFC 4632 / RFC 4291).
 * IPv4-mapped IPv6 client addresses ("::ffff:127.0.0.1") match IPv4 networks.
 */
import { BlockList, isIP } from 'node:net';
import { ConfigError } from '../core/errors.js';

export class NetworkList {
  private readonly list = new BlockList();

  /**
   * @param cidrs e.g. ["127.0.0.0/8", "::1/128", "192.0.2.7"] (a bare address is a /32 or /128).
   * @throws ConfigError naming the bad entry.
   */
  constructor(cidrs: readonly string[], key = 'relay.trustedNetworks') {
    cidrs.forEach((c, i) => {
      const [addr, bits] = c.trim().split('/');
      const family = isIP(addr ?? '');
      if (!family) throw new ConfigError(`${key}.${i}: "${c}" is not an address or CIDR network`, `${key}.${i}`);
      const max = family === 4 ? 32 : 128;
      const prefix = bits === undefined ? max : Number(bits);
      if (!Number.isInteger(prefix) || prefix < 0 || prefix > max) {
        throw new ConfigError(`${key}.${i}: bad prefix length in "${c}"`, `${key}.${i}`);
      }
      this.list.addSubnet(addr!, prefix, family === 4 ? 'ipv4' : 'ipv6');
    });
  }

  /** True when `address` (IPv4, IPv6 or IPv4-mapped IPv6) is inside one of the networks. */
  contains(address: string): boolean {
    const a = normalizeAddress(address);
    const family = isIP(a);
    if (!family) return false;
    return this.list.check(a, family === 4 ? 'ipv4' : 'ipv6');
  }
}

/** Strips the IPv4-mapped prefix (core/ip.ts). */
import { normalizeAddress } from '../core/ip.js';
export { normalizeAddress };
