/**
 * The `egress` section: named sources (bind address, EHLO name, warm-up ramp), pools of them with
 * weights, and the rules that give a message its pool. Kept apart from schema.ts by size only;
 * the README documents every key. Used by scheduler/egress.ts.
 */
import { isIP } from 'node:net';
import { z } from 'zod';

const name = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'expected 1-64 letters, digits, ".", "_" or "-"');
const hostName = z.string().min(1).max(253).regex(/^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/, 'expected a host name');

/**
 * Warm-up of a new address: the most messages it may send per UTC day, day by day from `start`
 * (the first entry on the start day, the next one the day after, ...; after the last entry, no
 * cap). Messages over the day's cap go out through the pool's other sources, or wait for the
 * next day when none has room.
 */
export const warmupSchema = z.object({
  /** The first day of the ramp, "YYYY-MM-DD" (UTC). */
  start: z.string().regex(/^\d{4}-\d{2}-\d{2}$/, 'expected YYYY-MM-DD'),
  /** Messages per day, in order: e.g. [50, 100, 500, 1000, 5000, 10000, 50000]. */
  perDay: z.array(z.number().int().min(0)).min(1).max(366),
}).strict();

export const egressSourceSchema = z.object({
  name,
  /** Local address to send from (bind before connect); an IPv4 or IPv6 address of this host. */
  address: z.string().refine((a) => isIP(a) !== 0, 'expected an IP address').optional(),
  /** EHLO name for connections from this source (default: delivery.heloName, then hostname). Should match the address's PTR. */
  ehloName: hostName.optional(),
  warmup: warmupSchema.optional(),
}).strict();

export const egressPoolSchema = z.object({
  name,
  /** Sources with weights (the share of messages each gets, among those with room today). */
  sources: z.array(z.object({ source: name, weight: z.number().positive().max(1_000_000).default(1) }).strict()).min(1).max(1000),
}).strict();

/** A rule giving matching messages a pool: every given condition must hold; first match wins. */
export const egressRuleSchema = z.object({
  /** The envelope sender's domain, or "*.parent" for its subdomains. */
  senderDomain: z.string().min(1).max(253).optional(),
  /** The API key the message came in by. */
  apiKey: z.string().min(1).max(128).optional(),
  /** A tag of the message (API `tags`, or X-Postline-Tags from a trusted client). */
  tag: z.string().min(1).max(128).optional(),
  pool: name,
}).strict();

export const egressSchema = z.object({
  sources: z.array(egressSourceSchema).max(10_000).default([]),
  pools: z.array(egressPoolSchema).max(1000).default([]),
  rules: z.array(egressRuleSchema).max(10_000).default([]),
  /** The pool of mail no rule matches; without one, such mail is sent from delivery.sourceAddress / heloName as before. */
  defaultPool: name.optional(),
}).strict().superRefine((e, ctx) => {
  const sources = new Set<string>();
  e.sources.forEach((s, i) => {
    if (sources.has(s.name)) ctx.addIssue({ code: 'custom', path: ['sources', i, 'name'], message: `duplicate source "${s.name}"` });
    sources.add(s.name);
  });
  const pools = new Set<string>();
  e.pools.forEach((p, i) => {
    if (pools.has(p.name)) ctx.addIssue({ code: 'custom', path: ['pools', i, 'name'], message: `duplicate pool "${p.name}"` });
    pools.add(p.name);
    p.sources.forEach((s, j) => {
      if (!sources.has(s.source)) ctx.addIssue({ code: 'custom', path: ['pools', i, 'sources', j, 'source'], message: `no source named "${s.source}"` });
    });
  });
  e.rules.forEach((r, i) => {
    if (!pools.has(r.pool)) ctx.addIssue({ code: 'custom', path: ['rules', i, 'pool'], message: `no pool named "${r.pool}"` });
    if (r.senderDomain === undefined && r.apiKey === undefined && r.tag === undefined) ctx.addIssue({ code: 'custom', path: ['rules', i], message: 'a rule needs senderDomain, apiKey or tag' });
  });
  if (e.defaultPool !== undefined && !pools.has(e.defaultPool)) ctx.addIssue({ code: 'custom', path: ['defaultPool'], message: `no pool named "${e.defaultPool}"` });
});

export type EgressConfig = z.infer<typeof egressSchema>;
export type EgressSourceConfig = z.infer<typeof egressSourceSchema>;
