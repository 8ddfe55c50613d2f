/**
 * The `local` section: where mail for the domains and addresses Postline serves ends up (like
 * Postfix's transport_maps and virtual_mailbox_domains together). Kept apart from schema.ts by
 * size only; the README documents every key.
 */
import { z } from 'zod';

/** What a local route does with the mail it matches. */
export const LOCAL_ROUTE_MODES = ['accept', 'hold', 'bounce', 'reject'] as const;

/** The transports a local route may name (routing/types.ts TransportName). */
export const LOCAL_TRANSPORTS = ['smtp', 'lmtp', 'maildir', 'http', 'internal'] as const;

const match = z.string().min(1).max(320).refine(
  (m) => m === '*' || /^[^@\s]+@[^@\s]+$/.test(m) || /^(\*\.)?[^@\s*]+$/.test(m),
  'expected "*", a domain ("example.test", "*.example.test") or an address ("user@example.test")',
);

/**
 * One route: `match` is an address ("user@example.test"), a domain ("example.test"), its
 * subdomains ("*.example.test") or "*" (every local domain without a route of its own). The most
 * specific match wins: address, domain, subdomain pattern (longest first), then "*".
 * `mode`: accept (deliver through `transport` to `target`), hold (queued on hold until released),
 * bounce (accepted, then bounced with 5.1.1), reject (550 5.1.1 at RCPT).
 * `target` by transport: lmtp "host:port", "[v6]:port" or "unix:/path"; maildir a directory
 * ("{user}", "{local}", "{domain}" fill in the recipient's parts); http an http(s) URL; smtp
 * "host:port" or "[host]:port"; internal a consumer name ("feedback").
 */
export const localRouteSchema = z.object({
  match,
  mode: z.enum(LOCAL_ROUTE_MODES).default('accept'),
  transport: z.enum(LOCAL_TRANSPORTS).optional(),
  target: z.string().min(1).max(2048).optional(),
  /** http transport: a 4xx answer bounces the recipient (default false: deferred, retried). */
  bounceOn4xx: z.boolean().default(false),
}).strict().superRefine((r, ctx) => {
  if (r.mode !== 'accept') return;
  if (!r.transport) ctx.addIssue({ code: 'custom', path: ['transport'], message: 'a route with mode accept needs a transport' });
  if (!r.target) ctx.addIssue({ code: 'custom', path: ['target'], message: 'a route with mode accept needs a target' });
  if (r.transport === 'http' && r.target && !/^https?:\/\/[^\s]+$/i.test(r.target)) ctx.addIssue({ code: 'custom', path: ['target'], message: 'expected an http:// or https:// URL' });
  if (r.transport === 'lmtp' && r.target && !/^(unix:\/.+|\[[0-9A-Fa-f:.]+\]:\d{1,5}|[^\s:[\]]+:\d{1,5})$/.test(r.target)) ctx.addIssue({ code: 'custom', path: ['target'], message: 'expected "host:port", "[v6]:port" or "unix:/path"' });
  if (r.transport === 'smtp' && r.target && !/^(\[[^\]]+\]|[^\s:[\]]+)(:\d{1,5})?$/.test(r.target)) ctx.addIssue({ code: 'custom', path: ['target'], message: 'expected "host", "host:port" or "[host]:port"' });
});

export const localSchema = z.object({
  routes: z.array(localRouteSchema).max(100_000).default([]),
}).strict();

export type LocalRouteConfig = z.infer<typeof localRouteSchema>;
export type LocalConfig = z.infer<typeof localSchema>;
