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
 * The delivery agents a next hop can name, like Postfix's master.cf services: `smtp` (MX or a fixed
 * host), `lmtp` (RFC 2033, TCP or a unix socket), `maildir` (local files), `http` (inbound parse:
 * the message POSTed as JSON) and `internal` (Postline's own consumers, such as bounce and
 * complaint processing). delivery/transports.ts maps each to its agent.
 */
export type TransportName = 'smtp' | 'lmtp' | 'maildir' | 'http' | 'internal';

/**
 * SMTP next hops. `mx`: look up MX records of `domain` (RFC 5321 5.1) and deliver to them on `port`.
 * `host`: deliver to a fixed host (smart host / route table entry); `host` may be a name or an IP.
 */
export type SmtpNextHop =
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

/** Next hops of the other transports (local delivery and Postline's own consumers). */
export type LocalNextHop =
  /** LMTP (RFC 2033): `target` is "host:port", "[v6addr]:port" or "unix:/path/to/socket". */
  | { readonly kind: 'lmtp'; readonly target: string }
  /** Maildir: `path` is the mailbox root; "{user}", "{local}" and "{domain}" in it name the recipient's parts. */
  | { readonly kind: 'maildir'; readonly path: string }
  /** Inbound parse: POST the message as JSON to `url`; `bounceOn4xx`: a 4xx answer bounces (else defers). */
  | { readonly kind: 'http'; readonly url: string; readonly bounceOn4xx: boolean }
  /** One of Postline's own consumers by name (e.g. "feedback": bounces and complaints for our return paths). */
  | { readonly kind: 'internal'; readonly name: string };

/** Where the mail for one recipient goes next: an SMTP hop or a local transport. */
export type NextHop = SmtpNextHop | LocalNextHop;

/** True for the hops the SMTP agent delivers to (MX or a fixed host). */
export function isSmtpHop(h: NextHop): h is SmtpNextHop {
  return h.kind === 'mx' || h.kind === 'host';
}

/** The transport (delivery agent) a next hop names. */
export function transportOf(h: NextHop): TransportName {
  return isSmtpHop(h) ? 'smtp' : h.kind;
}

/**
 * A stable key for grouping recipients and connection pools: "mx:example.com:25",
 * "host:127.0.0.1:2699", "lmtp:unix:/run/dovecot/lmtp", "maildir:/var/mail/{user}",
 * "http:https://example.com/inbound", "internal:feedback".
 */
export function nextHopKey(h: NextHop): string {
  switch (h.kind) {
    case 'mx': return `mx:${h.domain}:${h.port}`;
    case 'host': return `host:${h.host}:${h.port}`;
    case 'lmtp': return `lmtp:${h.target}`;
    case 'maildir': return `maildir:${h.path}`;
    case 'http': return `http:${h.url}`;
    case 'internal': return `internal:${h.name}`;
  }
}
