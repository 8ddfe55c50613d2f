/**
 * Route group "events": GET /api/v1/events?after=ID&type=T[,T...]&limit=N, the durable event log
 * in id order (newest last), cursor paged: `next` is the cursor for the following call (never
 * beyond the newest event). `type` takes "recipient.*" prefixes; `since` (ms) bounds by time.
 */
import type { FastifyInstance } from 'fastify';
import type { z } from 'zod';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { requireScope } from '../auth.js';
import type { ApiContext } from '../context.js';
import { errorSchema } from '../errors.js';
import { expandEventType } from '../schemas.js';

/** Registers GET /api/v1/events on `app`. */
export function registerEventRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const { deps, schemas: s } = ctx;
  app.withTypeProvider<ZodTypeProvider>().get('/api/v1/events', {
    schema: {
      tags: ['events'],
      summary: 'Events after a cursor, oldest first',
      security: [{ bearer: [] }],
      querystring: s.eventsQuery,
      response: { 200: s.eventsPage, 400: errorSchema, 401: errorSchema, 403: errorSchema },
    },
    onRequest: requireScope(deps.keys, 'read'),
  }, async (req) => {
    const { after, since, type, limit } = req.query;
    const types = type ? [...new Set(type.split(',').map((t) => t.trim()).filter(Boolean).flatMap(expandEventType))] : undefined;
    const events = await deps.store.readEvents({ after, limit, ...(types?.length ? { types } : {}), ...(since !== undefined ? { since } : {}) });
    // Nothing after `after`: the cursor stays at min(after, newest id), so a cursor from beyond
    // the end (another server, a restored database) does not skip the events still to come.
    const next = events.length ? events[events.length - 1]!.id : Math.min(after, await deps.store.lastEventId());
    // StoredEvent has readonly arrays; the answer schema's are mutable: the same shape on the wire.
    return { events: events as unknown as z.infer<typeof s.event>[], next };
  });
}
