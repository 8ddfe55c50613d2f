/**
 * The `local` section: where mail for the domains and addresses Postline serves ends up (like
 * Postfix's transport_maps and virtual_mailbox_domains together). Kept apart from schema.ts by
 * size only; the README documents every key.
 */
import { z } from 'zod';
import { aliasMap, findAliasCycle } from '../routing/aliases.js';
import { lmtpSchema } from './lmtp-schema.js';

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
 * `target` by transport: lmtp "host:port", "[v6]:port" or "unix:/path"; maildir an absolute
 * directory, the Maildir's root, where "{local}" is the recipient's local part (unquoted, lower
 * case), "{domain}" its domain (lower-case A-label) and "{user}" both, "local@domain" (Dovecot's
 * %n, %d and %u); http an http(s) URL; smtp
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
  if (r.transport === 'maildir' && r.target && !r.target.startsWith('/')) ctx.addIssue({ code: 'custom', path: ['target'], message: 'expected an absolute directory path ("/var/mail/{domain}/{local}")' });
  if (r.transport === 'smtp' && r.target && !/^(\[[^\]]+\]|[^\s:[\]]+)(:\d{1,5})?$/.test(r.target)) ctx.addIssue({ code: 'custom', path: ['target'], message: 'expected "host", "host:port" or "[host]:port"' });
});

/** An address in the alias table ("local@domain"). */
const aliasAddress = z.string().min(3).max(320).regex(/^[^@\s]+@[^@\s]+$/, 'expected an address "local@domain"');
const aliasTargets = z.array(aliasAddress).min(1).max(10_000);

/**
 * `local.maildir`: the maildir transport (src/local/maildir-agent.ts).
 * `quotaBytes`: the most a mailbox (new/ and cur/ together) may hold, bytes; a message that would
 * pass it bounces with 552 5.2.2 (0: no quota). `crlf`: store lines as received, CRLF (default
 * false: LF, as Postfix's local and virtual agents and Dovecot with mail_save_crlf=no write them).
 */
export const localMaildirSchema = z.object({
  quotaBytes: z.number().int().min(0).default(0),
  crlf: z.boolean().default(false),
}).strict();

/**
 * `local.http`: the http transport, inbound parse (src/local/http-agent.ts): each message POSTed
 * as JSON to its route's URL.
 * `secret`: "whsec_" + base64 of 16-64 random bytes; requests are signed by the Standard Webhooks
 * scheme (webhook-signature), as webhooks are; absent: sent unsigned (webhook-id and
 * webhook-timestamp still sent). `allowPrivate`: loopback and private addresses allowed as the
 * route's host (link-local and metadata addresses stay refused; src/webhooks/ssrf.ts).
 * `timeoutMs`: the whole request (connect, the JSON sent, the answer), ms. `maxBytes`: the largest
 * message parsed, bytes; a bigger one bounces with 552 5.3.4 (set it at or above
 * limits.maxMessageSize to parse all mail accepted). `maxBytesInFlight`: the message bytes being
 * parsed and sent at once across all routes; a message waits while the others hold the budget (one
 * alone always goes). Memory is a few times these figures: the parsed parts, their base64 and the
 * JSON text.
 */
export const localHttpSchema = z.object({
  secret: z.string().regex(/^whsec_[A-Za-z0-9+/]+={0,2}$/, 'expected "whsec_" followed by base64')
    .refine((s) => { const n = Buffer.from(s.slice(6), 'base64').length; return n >= 16 && n <= 64; }, 'the secret must decode to 16-64 bytes')
    .optional(),
  allowPrivate: z.boolean().default(false),
  timeoutMs: z.number().int().min(100).max(600_000).default(30_000),
  maxBytes: z.number().int().min(1024).default(25 * 1024 * 1024),
  maxBytesInFlight: z.number().int().min(1024).default(100 * 1024 * 1024),
}).strict();

/**
 * Bounds of alias expansion (cleanup/aliases.ts): `depth` aliases nested in one another at most
 * (Postfix's virtual_alias_recursion_limit), `recipients` addresses one recipient may expand to at
 * most (virtual_alias_expansion_limit). Past either the message is refused with 554 5.4.6.
 */
export const aliasLimitsSchema = z.object({
  depth: z.number().int().min(1).max(100).default(10),
  recipients: z.number().int().min(1).max(100_000).default(1000),
}).strict();

export const localSchema = z.object({
  routes: z.array(localRouteSchema).max(100_000).default([]),
  /**
   * Virtual aliases: an address to one or more addresses in any domain, expanded by cleanup when a
   * message is accepted (each expanded recipient keeps the original as its ORCPT, RFC 3461 4.2).
   * A map { "sales@example.test": ["a@example.test", "b@other.test"] } or a list of
   * { address, to } entries. Nested aliases expand in turn; an alias listing itself keeps its own
   * mailbox. A cycle (a -> b -> a) is refused at load, naming it.
   */
  aliases: z.union([
    z.record(aliasAddress, aliasTargets),
    z.array(z.object({ address: aliasAddress, to: aliasTargets }).strict()).max(100_000),
  ]).default({}),
  aliasLimits: aliasLimitsSchema.prefault({}),
  maildir: localMaildirSchema.prefault({}),
  http: localHttpSchema.prefault({}),
  /** The LMTP delivery agent's timeouts and connection limits (lmtp-schema.ts). */
  lmtp: lmtpSchema.prefault({}),
}).strict().superRefine((l, ctx) => {
  const { map, duplicates } = aliasMap(l.aliases);
  for (const d of duplicates) ctx.addIssue({ code: 'custom', path: ['aliases'], message: `the alias ${d} is given twice (addresses compare in lower case, local part unquoted)` });
  const cycle = findAliasCycle(map);
  if (cycle) ctx.addIssue({ code: 'custom', path: ['aliases'], message: `alias loop: ${cycle.join(' -> ')} (an alias may list itself to keep its own mailbox, but not reach itself through others)` });
});

export type LocalRouteConfig = z.infer<typeof localRouteSchema>;
export type LocalConfig = z.infer<typeof localSchema>;
export type LocalMaildirConfig = z.infer<typeof localMaildirSchema>;
export type LocalHttpConfig = z.infer<typeof localHttpSchema>;
export type AliasLimits = z.infer<typeof aliasLimitsSchema>;
