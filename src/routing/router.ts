/**
 * Routing: recipient address → next hop (like Postfix's transport_maps, relayhost, then MX).
 *
 * RFCs: RFC 5321 5.1 (MX lookup for the domain; address literals go straight to that address),
 * RFC 5890 (IDN domains compared and looked up as A-labels). Owns: the order of route table,
 * relayhost and MX; it does no DNS itself.
 */
import { isIP } from 'node:net';
import type { PostlineConfig, RouteConfig } from '../config/schema.js';
import { domainOf, domainKey } from '../core/envelope.js';
import { compileLocalRoutes, configuredLocalRoutes, localNextHop } from './local-routes.js';
import type { NextHop } from './types.js';

export interface Router {
  /**
   * Next hop for one recipient address ("local@domain"). Order: `local.routes` (local-routes.ts:
   * address, domain, "*.parent", "*" for local domains), then `delivery.routes` (exact domain or
   * "*.domain" for its subdomains), then `delivery.relayhost`, then MX for the domain (A-label, lower
   * case) on `delivery.mxPort`. An address literal ("[192.0.2.1]", "[IPv6:...]") goes to that address.
   * Never throws.
   */
  route(recipientAddress: string): NextHop;
}

const aLabel = domainKey;

function routeMatches(route: RouteConfig, domain: string): boolean {
  const pattern = route.domain.trim();
  if (pattern.startsWith('*.')) {
    const parent = aLabel(pattern.slice(2));
    return domain.endsWith('.' + parent);
  }
  return aLabel(pattern) === domain;
}

function addressLiteral(domain: string): string | undefined {
  if (!domain.startsWith('[') || !domain.endsWith(']')) return undefined;
  const inner = domain.slice(1, -1).replace(/^ipv6:/i, '');
  return isIP(inner) ? inner : undefined;
}

/**
 * The `delivery.routes` entry for a recipient address (exact domain, or "*.domain" for its
 * subdomains; first match), or undefined (also for an address literal). Never throws.
 */
export function routeFor(routes: readonly RouteConfig[], recipientAddress: string): RouteConfig | undefined {
  const raw = domainOf(recipientAddress);
  if (addressLiteral(raw)) return undefined;
  const domain = aLabel(raw);
  return routes.find((r) => routeMatches(r, domain));
}

/**
 * Creates a router over `config.local.routes` and `config.delivery` (routes, relayhost, mxPort,
 * tls), read at each call (a SIGHUP reload applies to the next delivery).
 */
export function createRouter(config: PostlineConfig): Router {
  const d = config.delivery;
  // Compiled again when a reload (config/live.ts) replaced local.routes or relay.localDomains.
  let compiledFrom: [unknown, unknown] = [undefined, undefined];
  let local = compileLocalRoutes([]);
  const localRoutes = () => {
    if (compiledFrom[0] !== config.local.routes || compiledFrom[1] !== config.relay.localDomains) {
      local = configuredLocalRoutes(config);
      compiledFrom = [config.local.routes, config.relay.localDomains];
    }
    return local;
  };
  return {
    route(recipientAddress: string): NextHop {
      const table = localRoutes();
      const lr = table.size > 0 ? table.find(recipientAddress) : undefined;
      const lh = lr && localNextHop(lr);
      if (lh) return lh;
      const raw = domainOf(recipientAddress);
      const literal = addressLiteral(raw);
      const domain = literal ? raw : aLabel(raw);
      const route = literal ? undefined : d.routes.find((r) => routeMatches(r, domain));
      if (route) return { kind: 'host', host: route.host, port: route.port, tls: route.tls, ...(route.auth ? { auth: route.auth } : {}) };
      if (d.relayhost) {
        const h = d.relayhost;
        return { kind: 'host', host: h.host, port: h.port, tls: h.tls, mxLookup: h.mxLookup, ...(h.auth ? { auth: h.auth } : {}) };
      }
      if (literal) return { kind: 'host', host: literal, port: d.mxPort, tls: d.tls };
      return { kind: 'mx', domain, port: d.mxPort, tls: d.tls };
    },
  };
}
