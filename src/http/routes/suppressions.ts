/**
 * Route group "suppressions" (issue 10 section 4): the suppression list.
 *   GET    /api/v1/suppressions?scope=&reason=&address=&domain=&after=&limit=   paged (cursor `next`),
 *          filtered (scope, reason, address prefix, domain: its addresses and its '*@domain' entry)
 *   POST   /api/v1/suppressions   one entry or an array of up to 1000 (an entry there is replaced)
 *   DELETE /api/v1/suppressions/{address}?scope=   (scope default '*'; '*@example.com' for a whole domain)
 * Listing needs the read scope, changes the admin scope. Every change is written with its event
 * (recipient.suppressed, suppression.removed) through SuppressionAdmin; bad input is a 400 naming
 * the field.
 */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { addressKey, scopeKey, SuppressionInputError } from '../../suppression/address.js';
import type { SuppressionAdmin } from '../../suppression/admin.js';
import { SUPPRESSION_REASONS } from '../../suppression/types.js';
import { requireScope } from '../auth.js';
import type { ApiContext } from '../context.js';
import { apiErrors, errorSchema } from '../errors.js';

/** A refinement that the value is a usable key (address.ts), with its reason as the issue. */
const keyOf = (parse: (v: string) => string) => (v: string, ctx: z.RefinementCtx): void => {
  try {
    parse(v);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: err instanceof SuppressionInputError ? err.message : 'invalid' });
  }
};

const address = z.string().min(3).max(320).superRefine(keyOf(addressKey)).describe('a recipient (local@domain) or a whole domain (*@domain)');
const scope = z.string().min(1).max(253).superRefine(keyOf(scopeKey)).describe('the sending domain, or * for every sender (default *)');
const reason = z.enum(SUPPRESSION_REASONS);

export const suppressionSchema = z.object({
  scope: z.string(),
  address: z.string().describe('lower case, A-label domain; *@domain for a whole domain'),
  reason,
  source: z.string().describe('the id of the event that added it, or operator, api, import'),
  description: z.string().optional(),
  createdAt: z.number().int().describe('ms since epoch'),
  expiresAt: z.number().int().optional().describe('ms since epoch: it no longer applies after this'),
}).meta({ title: 'Suppression' });

const input = z.object({
  address,
  scope: scope.optional(),
  reason: reason.default('manual'),
  description: z.string().max(1000).optional(),
  expiresAt: z.union([z.iso.datetime({ offset: true }), z.number().int().min(0)]).optional()
    .describe('RFC 3339 date-time or ms since epoch; absent: until removed'),
}).strict().meta({ title: 'SuppressionInput' });

const query = z.object({
  scope: scope.optional(),
  reason: reason.optional(),
  address: z.string().min(1).max(320).optional().describe('addresses starting with this (case-insensitive)'),
  domain: z.string().min(1).max(253).optional().describe('the addresses of this domain and its *@domain entry'),
  after: z.string().max(2000).optional().describe('cursor: the next of the previous page'),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  expired: z.enum(['true', 'false']).optional().describe('true: include entries past their expiresAt'),
}).strict();

const page = z.object({
  items: z.array(suppressionSchema),
  next: z.string().optional().describe('cursor for the next page, when there may be one'),
}).meta({ title: 'SuppressionPage' });

const errors = { 400: errorSchema, 401: errorSchema, 403: errorSchema };

/** Runs an admin call, turning its input errors into a 400 naming the field of `part`. */
async function checked<T>(part: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof SuppressionInputError) throw apiErrors.invalid([{ in: part, path: err.field, reason: err.message }]);
    throw err;
  }
}

/** Registers the suppression routes on `app` (only when the server was given the list). */
export function registerSuppressionRoutes(app: FastifyInstance, ctx: ApiContext, admin: SuppressionAdmin): void {
  const { deps } = ctx;
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.get('/api/v1/suppressions', {
    schema: {
      tags: ['suppressions'],
      summary: 'The suppression list, paged and filtered, in address order',
      security: [{ bearer: [] }],
      querystring: query,
      response: { 200: page, ...errors },
    },
    onRequest: requireScope(deps.keys, 'read'),
  }, async (req) => {
    const q = req.query;
    return checked('querystring', () => admin.list({
      limit: q.limit,
      ...(q.scope !== undefined ? { scope: q.scope } : {}),
      ...(q.reason !== undefined ? { reason: q.reason } : {}),
      ...(q.address !== undefined ? { address: q.address } : {}),
      ...(q.domain !== undefined ? { domain: q.domain } : {}),
      ...(q.after !== undefined ? { after: q.after } : {}),
      ...(q.expired === 'true' ? { expired: true } : {}),
    }));
  });

  r.post('/api/v1/suppressions', {
    schema: {
      tags: ['suppressions'],
      summary: 'Add one entry or up to 1000 (an entry already there is replaced)',
      security: [{ bearer: [] }],
      headers: ctx.schemas.idempotencyHeaders,
      body: z.union([input, z.array(input).min(1).max(1000)]),
      response: { 201: z.object({ items: z.array(suppressionSchema) }).meta({ title: 'SuppressionsAdded' }), ...errors },
    },
    onRequest: requireScope(deps.keys, 'admin'),
    preHandler: ctx.idempotency.preHandler,
  }, async (req, reply) => {
    const list = Array.isArray(req.body) ? req.body : [req.body];
    const items = await checked('body', () => admin.add(list.map((x) => ({
      address: x.address, reason: x.reason,
      ...(x.scope !== undefined ? { scope: x.scope } : {}),
      ...(x.description !== undefined ? { description: x.description } : {}),
      ...(x.expiresAt !== undefined ? { expiresAt: typeof x.expiresAt === 'number' ? x.expiresAt : Date.parse(x.expiresAt) } : {}),
    })), 'api'));
    return reply.code(201).send({ items });
  });

  r.delete('/api/v1/suppressions/:address', {
    schema: {
      tags: ['suppressions'],
      summary: 'Remove an entry (mail to the address is sent again)',
      security: [{ bearer: [] }],
      params: z.object({ address }).strict(),
      querystring: z.object({ scope: scope.optional() }).strict(),
      response: { 200: z.object({ removed: suppressionSchema }).meta({ title: 'SuppressionRemoved' }), 404: errorSchema, ...errors },
    },
    onRequest: requireScope(deps.keys, 'admin'),
  }, async (req) => {
    const removed = await checked('params', () => admin.remove(req.params.address, req.query.scope, 'api'));
    if (!removed) throw apiErrors.notFound(`${req.params.address} is not on the suppression list (scope ${req.query.scope ?? '*'})`);
    return { removed };
  });
}
