/**
 * The HTTP API server (fastify 5): `createApiServer(deps)` builds it; `listen()` binds
 * `http.address`:`http.port` (HTTPS when deps.tls is given), `close()` stops it (in-flight requests
 * finish first). Issue 7 section 3.
 *
 * Route groups, one file each in routes/: messages (send, raw, status), events, queue, suppressions,
 * docs and metrics. Errors are answered in one shape by errors.ts. Request bodies are limited to
 * apiMaxBodyBytes (config/schema.ts: the message size limit as base64 plus room for JSON); the
 * routes validate with zod through fastify-type-provider-zod, and the OpenAPI document at
 * /api/openapi.json is generated from those same schemas.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import fastifySwagger from '@fastify/swagger';
import { jsonSchemaTransform, jsonSchemaTransformObject, serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import { readFileSync } from 'node:fs';
import type { Server as HttpsServer } from 'node:https';
import { apiMaxBodyBytes, type HttpConfig } from '../config/schema.js';
import { ConfigError } from '../core/errors.js';
import type { TlsMaterial } from '../smtpd/tls.js';
import { systemClock } from '../core/clock.js';
import { RateLimiter, RefusalCoalescer } from './auth.js';
import type { ApiContext, ApiServerDeps } from './context.js';
import { ApiError, clientErrorHandler, errorHandler, notFoundHandler } from './errors.js';
import { IdempotencyGuard } from './idempotency.js';
import { apiSchemas } from './schemas.js';
import { registerDocRoutes } from './routes/docs.js';
import { registerEventRoutes } from './routes/events.js';
import { registerMessageRoutes } from './routes/messages.js';
import { registerQueueRoutes } from './routes/queue.js';
import { registerTrackingRoutes } from './routes/tracking.js';
import { MAX_TOKEN_CHARS } from '../tracking/tokens.js';
import { registerSuppressionRoutes } from './routes/suppressions.js';

export type { ApiServerDeps, MetricsSource } from './context.js';

/** A built API server. */
export interface ApiServer {
  readonly app: FastifyInstance;
  /** Every route registered (method, URL as registered, whether the OpenAPI document hides it). */
  readonly routes: readonly { method: string; url: string; hidden: boolean }[];
  /**
   * Binds `address`:`port` (default: the config's http section; port 0 picks a free one).
   * @returns the bound address. @throws EADDRINUSE / EACCES from the socket.
   */
  listen(opts?: { address?: string; port?: number }): Promise<{ address: string; port: number }>;
  /** Stops accepting, lets in-flight requests finish, stops the timers. Idempotent. */
  close(): Promise<void>;
  /** New TLS material for new connections (SIGHUP); nothing for a plain HTTP server. */
  setTls(tls: TlsMaterial): void;
}

/**
 * The PEM material of `http.tls`: its own cert/key files, or (neither given) the SMTP listeners'
 * material. @throws ConfigError naming the key when only one is given or a file cannot be read.
 */
export function httpTlsMaterial(tls: NonNullable<HttpConfig['tls']>, listeners: TlsMaterial): TlsMaterial {
  if (!tls.cert && !tls.key) return listeners;
  if (!tls.cert || !tls.key) throw new ConfigError('http.tls needs both cert and key (or neither, for the listeners\' certificate)', tls.cert ? 'http.tls.key' : 'http.tls.cert');
  const read = (file: string, key: string): string => {
    try {
      return readFileSync(file, 'utf8');
    } catch (err) {
      throw new ConfigError(`cannot read ${key} ${file}: ${(err as Error).message}`, key);
    }
  };
  return { cert: read(tls.cert, 'http.tls.cert'), key: read(tls.key, 'http.tls.key') };
}

/** Builds the API server (routes registered, not listening). */
export async function createApiServer(deps: ApiServerDeps): Promise<ApiServer> {
  const clock = deps.clock ?? systemClock;
  const now = () => clock.now();
  const requestTimeout = deps.config.http?.requestTimeoutMs ?? 300_000;
  // node's own deadlines: the whole request within requestTimeout, the headers within a minute,
  // checked every second (node's default is every 30 s, which made short deadlines meaningless).
  const serverTimeouts = { requestTimeout, headersTimeout: Math.min(requestTimeout, 60_000), connectionsCheckingInterval: 1000 };
  const app = Fastify({
    logger: false,
    bodyLimit: apiMaxBodyBytes(deps.config),
    // A click token carries its URL: route parameters up to the longest token (fastify's default is 100).
    maxParamLength: MAX_TOKEN_CHARS,
    requestTimeout,
    ...(deps.tls ? { https: { cert: deps.tls.cert, key: deps.tls.key, ...serverTimeouts } } : { http: serverTimeouts }),
    clientErrorHandler,
    frameworkErrors: errorHandler(deps.logger),
  }) as unknown as FastifyInstance;
  app.server.maxConnections = deps.config.http?.maxConnections ?? 1024;
  // Expect: 100-continue: no automatic "100 Continue"; requireScope sends it once the key is good.
  app.server.on('checkContinue', (req, res) => { app.server.emit('request', req, res); });
  // text/plain is not an API media type (fastify parses it by default): 415 like any other.
  app.removeContentTypeParser('text/plain');
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.setErrorHandler(errorHandler(deps.logger));
  app.setNotFoundHandler(notFoundHandler);

  const ctx: ApiContext = {
    deps,
    schemas: apiSchemas(deps.config.limits),
    rate: new RateLimiter(now),
    ...(deps.rejected ? { refusals: new RefusalCoalescer(deps.rejected, now) } : {}),
    // A pending Idempotency-Key of another live process is "in progress" for as long as a request may run.
    idempotency: new IdempotencyGuard(deps.idempotency, deps.config.http?.idempotencyTtlMs ?? 24 * 3600_000, now, requestTimeout + 60_000),
    now,
  };
  const routes: { method: string; url: string; hidden: boolean }[] = [];
  app.addHook('onRoute', (o) => {
    for (const m of [o.method].flat()) routes.push({ method: String(m), url: o.url, hidden: (o.schema as { hide?: boolean } | undefined)?.hide === true });
  });
  // JSON is UTF-8 (RFC 8259 8.1): a body declared in another charset gets 415 before it is read.
  // (A callback hook, synchronous: no promise per request.)
  app.addHook('preParsing', (req, _reply, payload, done) => {
    const ct = req.headers['content-type'];
    // Forms (the unsubscribe endpoint) carry ASCII whatever charset they name.
    const form = typeof ct === 'string' && /^\s*(application\/x-www-form-urlencoded|multipart\/form-data)\b/i.test(ct);
    const m = typeof ct === 'string' && !form ? /;\s*charset\s*=\s*"?([^";\s]*)"?/i.exec(ct) : null;
    if (m && !/^utf-?8$/i.test(m[1]!)) {
      done(new ApiError(415, 'ERR_API_MEDIA_TYPE', `unsupported charset ${JSON.stringify(m[1])}: send application/json; charset=utf-8`));
      return;
    }
    done(null, payload);
  });
  app.addHook('onSend', ctx.idempotency.onSend);
  app.addHook('onResponse', ctx.idempotency.onResponse);

  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: 'Postline HTTP API', version: '1', description: 'Send mail, follow what happened to it, and act on the queue.' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'an API key from `postline apikey create`' } } },
    },
    transform: jsonSchemaTransform,
    transformObject: jsonSchemaTransformObject,
  });
  registerMessageRoutes(app, ctx);
  registerEventRoutes(app, ctx);
  registerQueueRoutes(app, ctx);
  await registerTrackingRoutes(app, ctx);
  if (deps.suppressions) registerSuppressionRoutes(app, ctx, deps.suppressions.admin);
  await registerDocRoutes(app, ctx);
  await app.ready();

  let closed = false;
  return {
    app,
    routes,
    async listen(opts = {}) {
      const host = opts.address ?? deps.config.http?.address ?? '127.0.0.1';
      const port = opts.port ?? deps.config.http?.port ?? 8025;
      await app.listen({ host, port });
      const a = app.server.address();
      if (!a || typeof a === 'string') return { address: host, port };
      return { address: a.address, port: a.port };
    },
    setTls(tls) {
      if (deps.tls) (app.server as unknown as HttpsServer).setSecureContext({ cert: tls.cert, key: tls.key });
    },
    async close() {
      if (closed) return;
      closed = true;
      ctx.idempotency.close();
      await app.close();
      ctx.refusals?.close();
    },
  };
}
