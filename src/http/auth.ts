/**
 * Authentication and limits per API key: `Authorization: Bearer KEY` checked against the
 * ApiKeyStore on every request (a hash and an indexed read, microseconds; so a revoked key fails at
 * once), the scope of the route, the key's sender domains, and its sending rate.
 */
import type { FastifyReply, FastifyRequest, onRequestAsyncHookHandler } from 'fastify';
import { hasScope, senderAllowed, type ApiKeyRecord, type ApiKeyStore, type ApiScope } from './api-keys.js';
import type { MessageOrigin, Rejection } from '../core/session.js';
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
    this.check(key, ratePerMinute, n);
    this.buckets.get(key)!.tokens -= n;
    if (this.buckets.size > 10_000) this.prune(this.now());
  }

  /** Gives `n` tokens back to `key`'s bucket (recipients that were taken but not queued). */
  refund(key: string, n: number): void {
    const b = this.buckets.get(key);
    if (b && n > 0) b.tokens = Math.min(b.rate, b.tokens + n);
  }

  /**
   * Whether `n` tokens are there, without taking them (before the work of composing).
   * @throws ApiError 429 as take().
   */
  check(key: string, ratePerMinute: number, n: number): void {
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
  }

  /** Forgets full buckets (they behave as new ones). */
  private prune(now: number): void {
    for (const [k, b] of this.buckets) if (b.tokens + (now - b.at) * (b.rate / 60_000) >= b.rate) this.buckets.delete(k);
  }
}

/**
 * Coalesces the message.rejected events of refusals after authentication: per API key at most one
 * event a second. The first refusal of a second is recorded at once; later ones in that second
 * are counted, and when the second is over one event is written for them (the last refusal's
 * reply with "(N refusals of this key in 1 s)"). So a client that is refused (rate-limited, say)
 * cannot make the server write an event per request.
 */
export class RefusalCoalescer {
  private readonly keys = new Map<string, { until: number; count: number; last?: { origin: MessageOrigin; r: Omit<Rejection, 'stage'> }; timer?: NodeJS.Timeout }>();

  /** @param emit writes one event (deps.rejected); @param windowMs the window, ms (1000). */
  constructor(private readonly emit: (origin: MessageOrigin, r: Omit<Rejection, 'stage'>) => void, private readonly now: () => number = Date.now, private readonly windowMs = 1000) {}

  /** Records one refusal (now, or counted into the next event). Never throws. */
  record(origin: MessageOrigin, r: Omit<Rejection, 'stage'>): void {
    const key = origin.apiKey ?? '';
    const now = this.now();
    const s = this.keys.get(key);
    if (!s || (now >= s.until && s.count === 0)) {
      this.keys.set(key, { until: now + this.windowMs, count: 0 });
      this.safeEmit(origin, r);
      return;
    }
    s.count++;
    s.last = { origin, r };
    if (!s.timer) {
      s.timer = setTimeout(() => this.flush(key), Math.max(0, s.until - now));
      s.timer.unref();
    }
  }

  private flush(key: string): void {
    const s = this.keys.get(key);
    if (!s) return;
    if (s.timer) clearTimeout(s.timer);
    if (s.count === 0 || !s.last) {
      this.keys.delete(key);
      return;
    }
    const { origin, r } = s.last;
    const n = s.count;
    this.keys.set(key, { until: this.now() + this.windowMs, count: 0 });
    this.safeEmit(origin, { ...r, reply: `${r.reply} (${n} refusal${n === 1 ? '' : 's'} of this key in ${this.windowMs / 1000} s)` });
  }

  private safeEmit(origin: MessageOrigin, r: Omit<Rejection, 'stage'>): void {
    try { this.emit(origin, r); } catch { /* never fails a request */ }
  }

  /** Writes what is counted and stops the timers. */
  close(): void {
    for (const key of [...this.keys.keys()]) this.flush(key);
    for (const s of this.keys.values()) if (s.timer) clearTimeout(s.timer);
    this.keys.clear();
  }
}
