/**
 * Route group "queue": GET /api/v1/queue (paged, filtered by state, sender, recipient domain,
 * with counts by state), and the operator actions POST /api/v1/queue/{queueId}/flush|hold|release
 * and DELETE /api/v1/queue/{queueId}, through the same QueueAdmin as the control socket.
 * Listing needs the read scope, actions the admin scope.
 */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { requireScope } from '../auth.js';
import type { ApiContext } from '../context.js';
import { errorSchema } from '../errors.js';

const ACTIONS = [
  { verb: 'flush', done: 'flushed', summary: 'Try a message again now' },
  { verb: 'hold', done: 'held', summary: 'Hold a message (no delivery until released)' },
  { verb: 'release', done: 'released', summary: 'Release a held message' },
] as const;

/** Registers GET /api/v1/queue, POST /api/v1/queue/{queueId}/flush|hold|release and DELETE /api/v1/queue/{queueId} on `app`. */
export function registerQueueRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const { deps, schemas: s } = ctx;
  const r = app.withTypeProvider<ZodTypeProvider>();
  const actionErrors = { 400: errorSchema, 401: errorSchema, 403: errorSchema, 404: errorSchema, 409: errorSchema };

  r.get('/api/v1/queue', {
    schema: {
      tags: ['queue'],
      summary: 'Queued messages, paged and filtered, with counts by state',
      security: [{ bearer: [] }],
      querystring: s.queueQuery,
      response: { 200: s.queuePage, 400: errorSchema, 401: errorSchema, 403: errorSchema },
    },
    onRequest: requireScope(deps.keys, 'read'),
  }, async (req) => {
    const q = req.query;
    const [page, counts] = await Promise.all([
      deps.store.listPage({
        limit: q.limit,
        ...(q.state ? { state: q.state } : {}),
        ...(q.sender !== undefined ? { sender: q.sender } : {}),
        ...(q.domain ? { recipientDomain: q.domain.toLowerCase().replace(/\.$/, '') } : {}),
        ...(q.after ? { after: q.after } : {}),
      }),
      deps.store.countByState(),
    ]);
    return { items: page.items.map((i) => ({ ...i, pending: [...i.pending] })), ...(page.next ? { next: page.next } : {}), counts };
  });

  const run = { flush: (id: string) => deps.admin.flushOne(id), hold: (id: string) => deps.admin.hold(id), release: (id: string) => deps.admin.release(id) };
  for (const a of ACTIONS) {
    r.post(`/api/v1/queue/:queueId/${a.verb}`, {
      schema: {
        tags: ['queue'],
        summary: a.summary,
        security: [{ bearer: [] }],
        headers: s.idempotencyHeaders,
        params: s.queueParams,
        response: { 200: s.queueAction, ...actionErrors },
      },
      onRequest: requireScope(deps.keys, 'admin'),
      preHandler: ctx.idempotency.preHandler,
    }, async (req) => {
      await run[a.verb](req.params.queueId);
      return { queueId: req.params.queueId, action: a.done };
    });
  }

  r.delete('/api/v1/queue/:queueId', {
    schema: {
      tags: ['queue'],
      summary: 'Delete a message without any DSN',
      security: [{ bearer: [] }],
      params: s.queueParams,
      response: { 200: s.queueAction, ...actionErrors },
    },
    onRequest: requireScope(deps.keys, 'admin'),
  }, async (req) => {
    await deps.admin.delete(req.params.queueId);
    return { queueId: req.params.queueId, action: 'deleted' as const };
  });
}
