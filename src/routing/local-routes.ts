/**
 * The `local.routes` table, compiled for lookups: which route a recipient address takes, and which
 * domains are local (relay.localDomains plus every domain a route names). Used by the router (the
 * next hop of a local recipient), by policy (reject mode at RCPT, local domains) and by cleanup
 * (hold mode). Pure; no I/O.
 *
 * Match order (most specific first): the address, the domain, "*.parent" patterns (longest parent
 * first), then "*" for any local domain. Domains compare as lower-case A-labels (RFC 5890), local
 * parts case-insensitively (as Postfix's lookup tables do by default).
 */
import type { LocalRouteConfig } from '../config/local-schema.js';
import type { PostlineConfig } from '../config/schema.js';
import { splitAddress, domainKey } from '../core/envelope.js';
import type { NextHop } from './types.js';

const aLabel = domainKey;

/** The compiled table. */
export interface LocalRoutes {
  /** The route of `address` ("local@domain"), or undefined when none matches. */
  find(address: string): LocalRouteConfig | undefined;
  /** True when `domain` is local: in relay.localDomains or named by a route (exact or by a "*." pattern). */
  isLocalDomain(domain: string): boolean;
  /** Number of routes (0: the table is empty and every lookup is a miss). */
  readonly size: number;
}

/**
 * Compiles `routes` (config `local.routes`, in order; the first of equal specificity wins) with
 * the configured local domains (`relay.localDomains` names).
 */
export function compileLocalRoutes(routes: readonly LocalRouteConfig[], localDomains: readonly string[] = []): LocalRoutes {
  const byAddress = new Map<string, LocalRouteConfig>();
  const byDomain = new Map<string, LocalRouteConfig>();
  const byParent: { parent: string; route: LocalRouteConfig }[] = [];
  let catchAll: LocalRouteConfig | undefined;
  const domains = new Set(localDomains.map(aLabel));
  for (const r of routes) {
    const m = r.match.trim();
    if (m === '*') {
      catchAll ??= r;
    } else if (m.includes('@')) {
      const { local, domain } = splitAddress(m);
      const key = `${local.toLowerCase()}@${aLabel(domain)}`;
      if (!byAddress.has(key)) byAddress.set(key, r);
      domains.add(aLabel(domain));
    } else if (m.startsWith('*.')) {
      byParent.push({ parent: aLabel(m.slice(2)), route: r });
    } else {
      const d = aLabel(m);
      if (!byDomain.has(d)) byDomain.set(d, r);
      domains.add(d);
    }
  }
  byParent.sort((a, b) => b.parent.length - a.parent.length);
  const parentOf = (domain: string): LocalRouteConfig | undefined => byParent.find((p) => domain.endsWith('.' + p.parent))?.route;
  const isLocalDomain = (domain: string): boolean => {
    const d = aLabel(domain);
    return domains.has(d) || parentOf(d) !== undefined;
  };
  return {
    size: routes.length,
    isLocalDomain,
    find(address: string): LocalRouteConfig | undefined {
      if (routes.length === 0) return undefined;
      const { local, domain: raw } = splitAddress(address);
      if (raw.startsWith('[')) return undefined; // address literals are never local routes
      const domain = aLabel(raw);
      return byAddress.get(`${local.toLowerCase()}@${domain}`) ?? byDomain.get(domain) ?? parentOf(domain)
        ?? (catchAll && domains.has(domain) ? catchAll : undefined);
    },
  };
}

/** "host:port", "[host]:port" or "host" to host and port (default `defaultPort`). */
function hostPort(target: string, defaultPort: number): { host: string; port: number } {
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(target) ?? /^([^:]+)(?::(\d+))?$/.exec(target);
  return { host: m?.[1] ?? target, port: m?.[2] ? Number(m[2]) : defaultPort };
}

/**
 * The next hop of a local route, or undefined when the route does not deliver through a transport
 * of its own (hold without a transport: the mail takes the normal route once released).
 * bounce and reject modes go to the internal "bounce" consumer, which bounces each recipient
 * (reject only reaches it for mail queued before the route was changed).
 */
export function localNextHop(route: LocalRouteConfig): NextHop | undefined {
  if (route.mode === 'bounce' || route.mode === 'reject') return { kind: 'internal', name: 'bounce' };
  if (!route.transport || !route.target) return undefined;
  switch (route.transport) {
    case 'lmtp': return { kind: 'lmtp', target: route.target };
    case 'maildir': return { kind: 'maildir', path: route.target };
    case 'http': return { kind: 'http', url: route.target, bounceOn4xx: route.bounceOn4xx };
    case 'internal': return { kind: 'internal', name: route.target };
    case 'smtp': {
      const { host, port } = hostPort(route.target, 25);
      return { kind: 'host', host, port, tls: 'opportunistic' };
    }
  }
}

/**
 * The local routes of a configuration: `local.routes`, then (when `bounces.domain` is set and no
 * route names it) that domain to the internal feedback consumer, so the mail that comes back to
 * our return paths is accepted and read. Local domains: relay.localDomains.
 */
export function configuredLocalRoutes(config: Pick<PostlineConfig, 'local' | 'relay' | 'bounces'>): LocalRoutes {
  const routes = [...(config.local?.routes ?? [])];
  const bd = config.bounces?.domain?.toLowerCase().replace(/\.$/, '');
  if (bd && !routes.some((r) => r.match.toLowerCase() === bd)) {
    routes.push({ match: bd, mode: 'accept', transport: 'internal', target: 'feedback', bounceOn4xx: false });
  }
  return compileLocalRoutes(routes, config.relay.localDomains.map((d) => (typeof d === 'string' ? d : d.domain)));
}
