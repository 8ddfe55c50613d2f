/**
 * Next hops: where the mail for one recipient domain goes next (like Postfix's nexthop + transport).
 */

import type { HopTlsSetting } from '../config/delivery-tls.js';

/** The older TLS names of a next hop: none; opportunistic STARTTLS; required STARTTLS; implicit TLS (port 465 style). */
export type ClientTlsMode = 'none' | 'opportunistic' | 'starttls' | 'implicit';

/**
 * TLS toward a next hop as configured: a level name ('none' | 'opportunistic' | 'required' |
 * 'verify' | 'secure', and the older 'starttls' / 'implicit') or the object form
 * { mode, caFile?, servername?, implicit }. delivery/tls-policy.ts turns it (and the matching
 * delivery.tlsPolicies rule, and MTA-STS) into what the connection does.
 */
export type HopTls = HopTlsSetting;

export interface SmtpAuthCredentials {
  readonly username: string;
  readonly password: string;
}

/**
 * `mx`: look up MX records of `domain` (RFC 5321 5.1) and deliver to them on `port`.
 * `host`: deliver to a fixed host (smart host / route table entry); `host` may be a name or an IP.
 */
export type NextHop =
  | { readonly kind: 'mx'; readonly domain: string; readonly port: number; readonly tls: HopTls }
  | {
      readonly kind: 'host';
      readonly host: string;
      readonly port: number;
      readonly tls: HopTls;
      readonly auth?: SmtpAuthCredentials;
      /** When true, look up MX records of `host` first (Postfix relayhost without brackets); default false. */
      readonly mxLookup?: boolean;
    };

/** A stable key for grouping recipients and connection pools: "mx:example.com:25" or "host:127.0.0.1:2699". */
export function nextHopKey(h: NextHop): string {
  return h.kind === 'mx' ? `mx:${h.domain}:${h.port}` : `host:${h.host}:${h.port}`;
}
