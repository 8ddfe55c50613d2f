/**
 * Next hops: where the mail for one recipient domain goes next (like Postfix's nexthop + transport).
 */

/** TLS policy toward a next hop: none; opportunistic STARTTLS; required STARTTLS; implicit TLS (port 465 style). */
export type ClientTlsMode = 'none' | 'opportunistic' | 'starttls' | 'implicit';

export interface SmtpAuthCredentials {
  readonly username: string;
  readonly password: string;
}

/**
 * `mx`: look up MX records of `domain` (RFC 5321 5.1) and deliver to them on `port`.
 * `host`: deliver to a fixed host (smart host / route table entry); `host` may be a name or an IP.
 */
export type NextHop =
  | { readonly kind: 'mx'; readonly domain: string; readonly port: number; readonly tls: ClientTlsMode }
  | {
      readonly kind: 'host';
      readonly host: string;
      readonly port: number;
      readonly tls: ClientTlsMode;
      readonly auth?: SmtpAuthCredentials;
      /** When true, look up MX records of `host` first (Postfix relayhost without brackets); default false. */
      readonly mxLookup?: boolean;
    };

/** A stable key for grouping recipients and connection pools: "mx:example.com:25" or "host:127.0.0.1:2699". */
export function nextHopKey(h: NextHop): string {
  return h.kind === 'mx' ? `mx:${h.domain}:${h.port}` : `host:${h.host}:${h.port}`;
}
