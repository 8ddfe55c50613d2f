/**
 * Authentication and limits per API key: `Authorization: Bearer KEY` checked against the
 * ApiKeyStore on every request (a hash and an indexed read, microseconds; so a revoked key fails at
 * once), the scope of the route, the key's sender domains, and its sending rate.
 */
import type { FastifyReply, FastifyRequest, onRequestAsyncHookHandler } from 'fastify';
import { hasScope, senderAllowed, type ApiKeyRecord, type ApiKeyStore, type ApiScope } from './api-keys.js';
import { apiErrors } from './errors.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The verified API key (set by requireScope). */
    apiKey?: ApiKeyRecord;
  }
}

/** The bearer token of a request, or undefined. */
export function bearerToken(req: FastifyRequest): string | undefined {
  const h = req.headers.authorization;
  if (typeof h !== 'string') return undefined;
  const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(h);
  return m?.[1];
}

/**
 * An `onRequest` hook that lets only a valid key with `scope` through (admin implies read). It runs
 * on the headers alone, before any of the body is read, so an unauthenticated client cannot make
 * the server read (or wait for) a body. With `maxBodyBytes`, an authorized request whose
 * Content-Length is larger gets 413 at once. A request with `Expect: 100-continue` gets its
 * "100 Continue" only here, after these checks (server.ts routes `checkContinue` to fastify).
 * @throws ApiError 401 (no, unknown or revoked key), 403 (scope), 413 (Content-Length).
 */
export function requireScope(keys: ApiKeyStore, scope: ApiScope, opts: { maxBodyBytes?: number } = {}): onRequestAsyncHookHandler {
  return async (req: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const token = bearerToken(req);
    if (!token) throw apiErrors.unauthorized('an API key is required: Authorization: Bearer KEY');
    const rec = await keys.verify(token);
    if (!rec) throw apiErrors.unauthorized('unknown or revoked API key');
    if (!hasScope(rec, scope)) throw apiErrors.forbidden(`this API key lacks the ${scope} scope`);
    req.apiKey = rec;
    const len = Number(req.headers['content-length']);
    if (opts.maxBodyBytes !== undefined && Number.isFinite(len) && len > opts.maxBodyBytes) {
      throw apiErrors.tooLarge(`the request body is ${len} bytes, more than the limit of ${opts.maxBodyBytes} (http.maxBodyBytes)`);
    }
    const expect = req.headers.expect;
    if (typeof expect === 'string' && expect.toLowerCase() === '100-continue' && !reply.raw.headersSent) reply.raw.writeContinue();
  };
}

/** @throws ApiError 403 when `rec` may not send as `mailFrom`. */
export function checkSender(rec: ApiKeyRecord, mailFrom: string): void {
  if (!senderAllowed(rec, mailFrom)) {
    throw apiErrors.forbidden(`this API key may not send as ${mailFrom === '' ? 'the null sender' : mailFrom} (its sender domains: ${rec.domains?.join(', ')})`);
  }
}

/**
 * Messages per minute per key: a token bucket holding `rate` tokens, refilled at rate/60 per
 * second; each queue entry (recipient) takes one. In memory, per process.
 */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number; rate: number }>();

  constructor(private readonly now: () => number = Date.now) {}

  /**
   * Takes `n` tokens from `key`'s bucket of `ratePerMinute`.
   * @throws ApiError 429 with Retry-After (seconds until enough tokens are back).
   */
  take(key: string, ratePerMinute: number, n: number): void {
    const now = this.now();
    let b = this.buckets.get(key);
    if (!b || b.rate !== ratePerMinute) {
      b = { tokens: ratePerMinute, at: now, rate: ratePerMinute };
      this.buckets.set(key, b);
    }
    const perMs = ratePerMinute / 60_000;
    b.tokens = Math.min(ratePerMinute, b.tokens + (now - b.at) * perMs);
    b.at = now;
    if (n > ratePerMinute) {
      throw apiErrors.rateLimited(60, `this request has ${n} recipients, more than this API key's rate of ${ratePerMinute} messages per minute`);
    }
    if (b.tokens < n) {
      throw apiErrors.rateLimited(Math.ceil((n - b.tokens) / perMs / 1000), `this API key's rate of ${ratePerMinute} messages per minute is used up`);
    }
    b.tokens -= n;
    if (this.buckets.size > 10_000) this.prune(now);
  }

  /** Forgets full buckets (they behave as new ones). */
  private prune(now: number): void {
    for (const [k, b] of this.buckets) if (b.tokens + (now - b.at) * (b.rate / 60_000) >= b.rate) this.buckets.delete(k);
  }
}
