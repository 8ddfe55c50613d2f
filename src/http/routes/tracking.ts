/**
 * Route group "tracking": the public endpoints links in sent mail point at (no API key; rate
 * limited per client address, tracking.ratePerMinute). Issue 10 sections 5 and 6.
 *
 * - GET /t/o/{token}: the open pixel, a 43-byte transparent GIF, never cached; records recipient.opened.
 * - GET /t/c/{token}: 302 to the original URL signed into the token (and nowhere else: a token
 *   that does not verify is a 400, never a redirect); records recipient.clicked.
 * - GET /u/{token}: a small confirmation page with a form that POSTs; changes nothing (link
 *   scanners follow GETs).
 * - POST /u/{token} with `List-Unsubscribe=One-Click` (application/x-www-form-urlencoded or
 *   multipart/form-data, RFC 8058 3.2): records recipient.unsubscribed; 200.
 *
 * The work is in src/tracking/engagement.ts; this file only speaks HTTP.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { normalizeAddress } from '../../core/ip.js';
import { TokenError, MAX_TOKEN_CHARS, type LinkToken } from '../../tracking/tokens.js';
import type { EngagementEndpoints, HitFacts } from '../../tracking/engagement.js';
import { RateLimiter } from '../auth.js';
import type { ApiContext } from '../context.js';
import { ApiError, apiErrors, errorSchema } from '../errors.js';

/** A 1x1 transparent GIF (GIF89a, 43 bytes). */
export const PIXEL_GIF = Buffer.from('R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==', 'base64');
/** Largest unsubscribe form body read, bytes. */
const FORM_LIMIT = 16 * 1024;
const NO_STORE = 'no-store, no-cache, must-revalidate, max-age=0';

const params = z.object({ token: z.string().min(1).max(MAX_TOKEN_CHARS).describe('a signed link token (base64url)') }).strict();

/** The request's facts for the event. */
function facts(req: FastifyRequest): HitFacts {
  const ua = req.headers['user-agent'];
  return { userAgent: typeof ua === 'string' ? ua : '', clientAddress: normalizeAddress(req.ip), method: req.method };
}

/** Runs `fn`; a TokenError becomes a 400 with its reason. */
async function checked<T>(fn: () => Promise<T> | T): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof TokenError) throw new ApiError(400, 'ERR_API_BAD_TOKEN', err.message);
    throw err;
  }
}

const esc = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** The confirmation page (GET) and the answer page (after the form's POST). */
function page(title: string, body: string): string {
  return `<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><meta name="robots" content="noindex">`
    + `<meta name="viewport" content="width=device-width, initial-scale=1"><title>${esc(title)}</title></head>`
    + `<body style="font-family:sans-serif;max-width:32em;margin:3em auto;padding:0 1em">${body}</body></html>\n`;
}

function confirmPage(t: LinkToken): string {
  const who = t.recipient ? `<strong>${esc(t.recipient)}</strong>` : 'this address';
  const from = t.scope ? ` from <strong>${esc(t.scope)}</strong>` : '';
  return page('Unsubscribe', `<h1>Unsubscribe</h1><p>Stop sending mail${from} to ${who}?</p>`
    + '<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">'
    + '<input type="hidden" name="via" value="page"><button type="submit">Unsubscribe</button></form>');
}

/** The fields of a multipart/form-data body (RFC 7578), names to values; only small text fields. */
export function multipartFields(body: string, contentType: string): Record<string, string> {
  const m = /boundary\s*=\s*(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  const boundary = m?.[1] ?? m?.[2];
  const out: Record<string, string> = {};
  if (!boundary) return out;
  for (const part of body.split(`--${boundary}`).slice(1)) {
    if (part.startsWith('--')) break;
    const end = part.indexOf('\r\n\r\n');
    if (end < 0) continue;
    const name = /content-disposition:[^\r\n]*\bname\s*=\s*"([^"]*)"/i.exec(part.slice(0, end))?.[1];
    if (name !== undefined) out[name] = part.slice(end + 4).replace(/\r\n$/, '');
  }
  return out;
}

/** Registers the tracking and unsubscribe endpoints when the server has an EngagementEndpoints. */
export async function registerTrackingRoutes(app: FastifyInstance, ctx: ApiContext): Promise<void> {
  const t = ctx.deps.engagement;
  if (!t) return;
  const eng: EngagementEndpoints = t.endpoints;
  const limiter = new RateLimiter(ctx.now);
  await app.register(async (sub) => {
    // Forms only here (the API itself speaks JSON): URL-encoded and multipart bodies, small.
    sub.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: FORM_LIMIT }, (_req, body, done) => {
      done(null, Object.fromEntries(new URLSearchParams(body as string)));
    });
    sub.addContentTypeParser('multipart/form-data', { parseAs: 'string', bodyLimit: FORM_LIMIT }, (req, body, done) => {
      done(null, multipartFields(body as string, String(req.headers['content-type'] ?? '')));
    });
    sub.addHook('onRequest', (req, _reply, done) => {
      try {
        limiter.take(`t:${normalizeAddress(req.ip)}`, t.ratePerMinute(), 1);
        done();
      } catch (err) {
        done(err as Error);
      }
    });
    const r = sub.withTypeProvider<ZodTypeProvider>();
    const errors = { 400: errorSchema, 429: errorSchema };

    r.get('/t/o/:token', {
      schema: { tags: ['tracking'], summary: 'Open pixel: a 1x1 transparent GIF; records recipient.opened', params, response: errors },
    }, async (req, reply) => {
      await checked(() => eng.open(req.params.token, facts(req)));
      return reply.header('cache-control', NO_STORE).header('pragma', 'no-cache').type('image/gif').send(PIXEL_GIF as never);
    });

    r.get('/t/c/:token', {
      schema: { tags: ['tracking'], summary: 'Tracked link: 302 to the original URL signed into the token; records recipient.clicked', params, response: errors },
    }, async (req, reply) => {
      const url = await checked(() => eng.click(req.params.token, facts(req)));
      return reply.header('cache-control', NO_STORE).header('referrer-policy', 'no-referrer').redirect(url, 302);
    });

    r.get('/u/:token', {
      schema: { tags: ['tracking'], summary: 'Unsubscribe confirmation page (changes nothing; its form POSTs)', params, response: errors },
    }, async (req, reply) => {
      const tok = await checked(() => eng.checkUnsubscribe(req.params.token));
      return reply.header('cache-control', NO_STORE).header('x-robots-tag', 'noindex')
        .header('content-security-policy', "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'")
        .type('text/html; charset=utf-8').send(confirmPage(tok) as never);
    });

    r.post('/u/:token', {
      schema: {
        tags: ['tracking'],
        summary: 'One-click unsubscribe (RFC 8058): body List-Unsubscribe=One-Click; records recipient.unsubscribed',
        params,
        body: z.looseObject({ 'List-Unsubscribe': z.string().optional() }).describe('application/x-www-form-urlencoded or multipart/form-data'),
        response: { 200: z.object({ unsubscribed: z.boolean(), recipient: z.string().optional(), scope: z.string().optional() }), ...errors, 503: errorSchema },
      },
      bodyLimit: FORM_LIMIT,
    }, async (req, reply) => {
      const body = req.body as Record<string, unknown>;
      if (body['List-Unsubscribe'] !== 'One-Click') {
        throw apiErrors.invalid([{ in: 'body', path: 'List-Unsubscribe', reason: 'must be "One-Click" (RFC 8058 3.2)' }]);
      }
      const viaPage = body.via === 'page';
      const tok = await checked(() => eng.unsubscribeByToken(req.params.token, viaPage ? 'page' : 'one-click', facts(req)));
      reply.header('cache-control', NO_STORE);
      if (viaPage) {
        return reply.type('text/html; charset=utf-8').send(page('Unsubscribed', `<h1>Unsubscribed</h1><p>${esc(tok.recipient || 'This address')} will get no more mail${tok.scope ? ` from ${esc(tok.scope)}` : ''}.</p>`) as never);
      }
      return { unsubscribed: true, ...(tok.recipient ? { recipient: tok.recipient } : {}), ...(tok.scope ? { scope: tok.scope } : {}) };
    });
  });
}
