/**
 * Every error answer of the HTTP API, in one place: the ApiError class, the mapping of
 * PostlineErrors (from cleanup's submit, the store, QueueAdmin) and of fastify's own errors to HTTP
 * statuses, and the one JSON shape of an error answer:
 *
 *   { "status": 400, "code": "ERR_API_VALIDATION", "message": "...",
 *     "issues": [{ "in": "body", "path": "to.0", "reason": "..." }] }
 *
 * Client input never gets a 500: schema failures are 400 with every bad field, fastify's body and
 * content-type errors keep their 4xx, and submit's permanent refusals are 4xx. A 500 means a bug.
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { PostlineError } from '../core/errors.js';
import type { Logger } from '../core/log.js';

/** The API's own error codes. */
export type ApiErrorCode =
  | 'ERR_API_VALIDATION' | 'ERR_API_UNAUTHORIZED' | 'ERR_API_FORBIDDEN' | 'ERR_API_NOT_FOUND'
  | 'ERR_API_CONFLICT' | 'ERR_API_IDEMPOTENCY' | 'ERR_API_TOO_LARGE' | 'ERR_API_MEDIA_TYPE'
  | 'ERR_API_UNPROCESSABLE' | 'ERR_API_RATE_LIMITED' | 'ERR_API_UNAVAILABLE' | 'ERR_API_INTERNAL'
  | 'ERR_API_TIMEOUT' | 'ERR_API_HTTP' | 'ERR_API_BAD_TOKEN';

/** One bad field: where (`body`, `querystring`, `params`, `headers`), its path ("to.0", '' for the whole) and why. */
export interface ApiIssue {
  readonly in: string;
  readonly path: string;
  readonly reason: string;
}

/** An error the API answers with `status`; `retryAfterS` sets Retry-After (429, 503). */
export class ApiError extends PostlineError {
  constructor(
    readonly status: number,
    code: ApiErrorCode,
    message: string,
    readonly extra: {
      issues?: readonly ApiIssue[]; retryAfterS?: number; headers?: Record<string, string>; cause?: unknown;
      /** Extra fields of the answer (e.g. `queued` of an Idempotency-Key 409). */
      details?: { queued?: Array<{ address: string; queueId: string }> };
    } = {},
  ) {
    super(code, message, { temporary: status >= 500 || status === 429, cause: extra.cause });
    this.name = 'ApiError';
  }
}

/** The error answer's schema (OpenAPI components, every route's 4xx/5xx). */
export const errorSchema = z.object({
  status: z.number().int().describe('HTTP status'),
  code: z.string().describe('stable error code (ERR_API_VALIDATION, ERR_API_UNAUTHORIZED, ... or the PostlineError code)'),
  message: z.string(),
  issues: z.array(z.object({
    in: z.string().describe('body, querystring, params or headers'),
    path: z.string().describe('dotted path of the bad field ("to.0"), empty for the whole part'),
    reason: z.string(),
  })).optional().describe('every bad field (400)'),
  queued: z.array(z.object({ address: z.string(), queueId: z.string() })).optional()
    .describe('409 ERR_API_IDEMPOTENCY when the first request\'s outcome is unknown: what it queued as far as recorded'),
}).meta({ id: 'Error' });

export type ErrorBody = z.infer<typeof errorSchema>;

/** A 400's message: the first issue ("invalid body: to.0: not a valid email address"), and how many more. */
function issueMessage(issues: readonly ApiIssue[]): string {
  const first = issues[0];
  if (!first) return 'invalid request';
  const more = issues.length > 1 ? ` (and ${issues.length - 1} more)` : '';
  return `invalid ${first.in}: ${first.path ? `${first.path}: ` : ''}${first.reason}${more}`;
}

/** Short constructors for the common answers. */
export const apiErrors = {
  unauthorized: (why: string) => new ApiError(401, 'ERR_API_UNAUTHORIZED', why, { headers: { 'www-authenticate': 'Bearer realm="postline"' } }),
  forbidden: (why: string) => new ApiError(403, 'ERR_API_FORBIDDEN', why),
  notFound: (what: string) => new ApiError(404, 'ERR_API_NOT_FOUND', what),
  invalid: (issues: readonly ApiIssue[], message = issueMessage(issues)) => new ApiError(400, 'ERR_API_VALIDATION', message, { issues }),
  tooLarge: (why: string) => new ApiError(413, 'ERR_API_TOO_LARGE', why),
  rateLimited: (retryAfterS: number, why: string) => new ApiError(429, 'ERR_API_RATE_LIMITED', why, { retryAfterS }),
  unavailable: (why: string, retryAfterS = 30) => new ApiError(503, 'ERR_API_UNAVAILABLE', why, { retryAfterS }),
};

/**
 * The HTTP status of a PostlineError that is not an ApiError (submit, the store, QueueAdmin):
 * no such message 404; a held message flushed 409; bad metadata (cleanup's MetadataError) or a bad suppression list entry 400; 552 (size) 413; other 4xx replies (452 4.3.1
 * storage, 451 4.3.0 local error) and temporary errors 503; 5.7.x 403; other 5xx replies
 * (5.4.6 loop, 5.6.0 bad content or metadata, 5.1.x address) 422.
 */
export function statusOfPostlineError(err: PostlineError): number {
  if (err instanceof ApiError) return err.status;
  if (err.code === 'ERR_NO_SUCH_MESSAGE') return 404;
  if (err.code === 'ERR_MESSAGE_HELD' || err.code === 'ERR_MESSAGE_SCHEDULED') return 409;
  if (err.code === 'ERR_INTERNAL') return 500;
  if (err.code === 'ERR_METADATA' || err.code === 'ERR_SUPPRESSION_INPUT') return 400;
  const r = err.reply;
  if (r.code === 552) return 413;
  if (r.code >= 400 && r.code < 500) return 503;
  if (r.code >= 500) {
    if (err.temporary) return 503;
    if (r.enhanced?.startsWith('5.7.')) return 403;
    return 422;
  }
  return err.temporary ? 503 : 422;
}

/** fastify's client-error codes and ours. */
function fastifyCode(status: number, code: string | undefined): ApiErrorCode {
  if (status === 413) return 'ERR_API_TOO_LARGE';
  if (status === 415) return 'ERR_API_MEDIA_TYPE';
  if (status === 404) return 'ERR_API_NOT_FOUND';
  if (status === 401) return 'ERR_API_UNAUTHORIZED';
  if (status === 403) return 'ERR_API_FORBIDDEN';
  if (status === 429) return 'ERR_API_RATE_LIMITED';
  if (status === 409) return 'ERR_API_CONFLICT';
  if (status === 408) return 'ERR_API_TIMEOUT';
  if (status === 414 || status === 431) return 'ERR_API_TOO_LARGE';
  void code;
  return 'ERR_API_VALIDATION';
}

/** A dotted path from a JSON pointer ("/to/0" -> "to.0"). */
function dotted(pointer: string | undefined): string {
  return (pointer ?? '').split('/').filter(Boolean).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~')).join('.');
}

/** The issues of the one branch of a failed union that had the input's type (no root-level type mismatch), if exactly one did. */
function unionBranch(params: unknown): Array<{ path: (string | number)[]; message: string }> | undefined {
  const branches = (params as { errors?: Array<Array<{ code?: string; path?: (string | number)[]; message?: string }>> } | undefined)?.errors;
  if (!Array.isArray(branches)) return undefined;
  const fit = branches.filter((b) => Array.isArray(b) && b.length > 0 && !b.some((i) => i.code === 'invalid_type' && (i.path?.length ?? 0) === 0));
  if (fit.length !== 1) return undefined;
  return fit[0]!.map((i) => ({ path: i.path ?? [], message: i.message ?? 'invalid' }));
}

/** Turns any error into [status, answer, headers] (`contentType`: the request's, named in a 415). */
export function toErrorAnswer(err: unknown, contentType?: string): { status: number; body: ErrorBody; headers: Record<string, string> } {
  const headers: Record<string, string> = {};
  if (hasZodFastifySchemaValidationErrors(err)) {
    const where = (err as { validationContext?: string }).validationContext ?? 'body';
    const issues = err.validation.flatMap((v) => {
      // A union whose one branch had the input's type (an entry, or a list of entries): that branch's issues.
      const branch = v.keyword === 'invalid_union' ? unionBranch(v.params) : undefined;
      if (branch) return branch.map((i) => ({ in: where, path: [dotted(v.instancePath), ...i.path.map(String)].filter(Boolean).join('.'), reason: i.message }));
      // A record key that failed its own check (zod 'invalid_key'): give the key's reason.
      const inner = (v.params as { issues?: Array<{ message?: string }> } | undefined)?.issues?.[0]?.message;
      const reason = v.keyword === 'invalid_key' && inner ? `bad key: ${inner}` : (v.message ?? 'invalid');
      return [{ in: where, path: dotted(v.instancePath), reason }];
    });
    return { status: 400, body: { status: 400, code: 'ERR_API_VALIDATION', message: `invalid ${where}: ${issues.map((i) => (i.path ? `${i.path}: ${i.reason}` : i.reason)).join('; ')}`, issues }, headers };
  }
  if (err instanceof PostlineError) {
    const status = statusOfPostlineError(err);
    const extra = err instanceof ApiError ? err.extra : {};
    if (extra.headers) Object.assign(headers, extra.headers);
    const retry = extra.retryAfterS ?? (status === 503 ? 30 : undefined);
    if (retry !== undefined) headers['retry-after'] = String(Math.max(1, Math.ceil(retry)));
    const message = err instanceof ApiError ? err.message : status === 500 ? 'internal error' : err.message;
    // cleanup's MetadataError names its part ("tags[2]", "metadata.key"): give it as the issue's path.
    const metaPath = err.code === 'ERR_METADATA' ? (err as PostlineError & { path?: string }).path : undefined;
    const issues = extra.issues ?? (metaPath !== undefined ? [{ in: 'body', path: metaPath.replace(/\[(\d+)\]/g, '.$1'), reason: err.message }] : undefined);
    const details = err instanceof ApiError ? err.extra.details : undefined;
    return { status, body: { status, code: err.code, message, ...(issues ? { issues: [...issues] } : {}), ...details }, headers };
  }
  const fe = err as Partial<FastifyError> | undefined;
  const sc = fe?.statusCode;
  if (typeof sc === 'number' && sc >= 400 && sc < 500) {
    const code = fastifyCode(sc, fe?.code);
    const message = sc === 413 ? 'request body too large'
      : fe?.code === 'FST_ERR_MAX_PARAM_LENGTH' ? 'a path parameter is too long'
        : sc === 415 ? `unsupported media type${contentType ? ` ${JSON.stringify(contentType.slice(0, 100))}` : ' (no Content-Type)'}: send application/json; charset=utf-8` : (fe?.message ?? 'bad request');
    return { status: sc, body: { status: sc, code, message, ...(code === 'ERR_API_VALIDATION' ? { issues: [{ in: 'body', path: '', reason: message }] } : {}) }, headers };
  }
  return { status: 500, body: { status: 500, code: 'ERR_API_INTERNAL', message: 'internal error' }, headers };
}

/** fastify error handler: logs 5xx, answers in the one error shape. */
export function errorHandler(logger: Logger) {
  return (err: unknown, req: FastifyRequest, reply: FastifyReply): void => {
    const ct = req.headers['content-type'];
    const a = toErrorAnswer(err, typeof ct === 'string' ? ct : undefined);
    if (a.status >= 500) logger.error({ err, method: req.method, url: req.url, status: a.status }, 'API request failed');
    // Refused before its body was read (401, 403, 413 on the headers): do not read the rest of it.
    if (!req.raw.complete) void reply.header('connection', 'close');
    void reply.code(a.status).headers(a.headers).type('application/json; charset=utf-8').send(JSON.stringify(a.body));
  };
}

/** fastify not-found handler: 404 in the error shape. */
export function notFoundHandler(req: FastifyRequest, reply: FastifyReply): void {
  const body: ErrorBody = { status: 404, code: 'ERR_API_NOT_FOUND', message: `no route ${req.method} ${req.url.split('?')[0]}` };
  void reply.code(404).type('application/json; charset=utf-8').send(JSON.stringify(body));
}

/** The node error codes of malformed requests, with the status and reason answered. */
function clientErrorAnswer(code: string | undefined): { status: number; code: ApiErrorCode; message: string } {
  switch (code) {
    case 'ERR_HTTP_REQUEST_TIMEOUT': return { status: 408, code: 'ERR_API_TIMEOUT', message: 'the request (headers and body) took longer than http.requestTimeoutMs' };
    case 'HPE_HEADER_OVERFLOW': return { status: 431, code: 'ERR_API_TOO_LARGE', message: 'the request header section is too large' };
    case 'HPE_INVALID_CONTENT_LENGTH':
    case 'HPE_UNEXPECTED_CONTENT_LENGTH': return { status: 400, code: 'ERR_API_HTTP', message: 'bad Content-Length header' };
    case 'HPE_INVALID_TRANSFER_ENCODING': return { status: 400, code: 'ERR_API_HTTP', message: 'bad Transfer-Encoding header' };
    case 'HPE_INVALID_METHOD': return { status: 400, code: 'ERR_API_HTTP', message: 'bad request method' };
    case 'HPE_INVALID_URL': return { status: 400, code: 'ERR_API_HTTP', message: 'bad request target' };
    default: return { status: 400, code: 'ERR_API_HTTP', message: `malformed HTTP request${code ? ` (${code})` : ''}` };
  }
}

/**
 * The node server's `clientError` handler (fastify's clientErrorHandler option): a request node
 * itself refuses (bad Content-Length, header section too large, the request deadline) gets its
 * status in the one error shape, then the connection is closed. Nothing is written when the
 * connection is gone or an answer has already begun.
 */
export function clientErrorHandler(err: Error & { code?: string }, socket: import('node:net').Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const inFlight = (socket as unknown as { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (socket.writable && !inFlight?.headersSent) {
    const a = clientErrorAnswer(err.code);
    const body = JSON.stringify({ status: a.status, code: a.code, message: a.message } satisfies ErrorBody);
    const reason = a.status === 408 ? 'Request Timeout' : a.status === 431 ? 'Request Header Fields Too Large' : 'Bad Request';
    socket.end(`HTTP/1.1 ${a.status} ${reason}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
    socket.destroySoon();
    return;
  }
  socket.destroy(err);
}
