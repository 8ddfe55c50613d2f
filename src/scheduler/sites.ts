/**
 * Sites: destinations grouped by the MX hosts that serve them (issue 14: "all domains hosted at
 * one provider share limits"). The site of an MX next hop is its set of MX host names and port
 * ("site:alt1.aspmx.l.google.com,aspmx.l.google.com:25"), looked up before dispatch through the
 * shaping's cached MX lookup; other next hops, and MX hops whose lookup found nothing, are their
 * own site (the next-hop key).
 *
 * What is per site: the dispatcher's connection cap and its waiting queue, the dead-destination
 * cache and head-of-line guard (destinations.ts), and the agent's connection pool (a connection to
 * a provider's MX serves every domain hosted there, under the same TLS plan). What stays per
 * next hop (domain): routing, TLS policy and MTA-STS, shaping rules and rates, suspensions, and
 * the `nextHop` of events. The cap of a site is that of the domain last seen in it (a rule by MX
 * host suffix, `*.google.com`, gives all of them the same one).
 */
import type { NextHop } from '../routing/types.js';

const SITE_MARK = 'site:';

export class Sites {
  /** Site key -> the next-hop key last seen in it (whose shaping rule sets the site's cap). */
  private readonly representative = new Map<string, string>();

  /**
   * @param mxNames the cached MX host names of a domain (shaping.ts mxNamesOf); never rejects
   * @param enabled live switch (delivery.sites)
   */
  constructor(private readonly o: { readonly mxNames?: (domain: string) => Promise<readonly string[]>; readonly enabled: () => boolean }) {}

  /** The site of `hop` (next-hop key `key`). Never rejects. */
  async of(key: string, hop: NextHop): Promise<string> {
    if (hop.kind !== 'mx' || !this.o.mxNames || !this.o.enabled()) return key;
    const names = await this.o.mxNames(hop.domain);
    if (names.length === 0) return key;
    const site = `${SITE_MARK}${[...new Set(names)].sort().join(',')}:${hop.port}`;
    this.representative.set(site, key);
    if (this.representative.size > 100_000) this.representative.delete(this.representative.keys().next().value!);
    return site;
  }

  /** The next-hop key whose limits stand for `siteOrKey` (itself when it is not a site key). */
  destinationOf(siteOrKey: string): string {
    return siteOrKey.startsWith(SITE_MARK) ? (this.representative.get(siteOrKey) ?? siteOrKey) : siteOrKey;
  }
}
