/**
 * Idempotency-Key for the API's POSTs: the same key (per API key) with the same request within
 * `http.idempotencyTtlMs` (24 h) gives the first answer again and queues nothing new; another
 * request under a key already used gets 409.
 *
 * Only successful (2xx) answers are kept: a refused request did nothing, so trying it again is
 * safe and gives a fresh answer. While the first request with a key is still running, a second
 * one with that key gets 409 (in progress) rather than running twice. Records outlive a restart
 * (SQLite), in-progress marks do not (they are this process's).
 */
import { createHash } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ApiError, apiErrors } from './errors.js';

/** A kept answer. */
export interface IdempotencyRecord {
  /** requestHash() of the request that made it. */
  readonly requestHash: string;
  readonly status: number;
  /** The JSON answer as sent. */
  readonly body: string;
  /** ms since epoch. */
  readonly createdAt: number;
}

/** Where kept answers live (scoped by API key name). */
export interface IdempotencyStore {
  /** The record of (apiKey, key) made at or after `notBeforeMs`, else undefined. */
  get(apiKey: string, key: string, notBeforeMs: number): Promise<IdempotencyRecord | undefined>;
  /** Keeps a record (replaces an older one of the same key). */
  put(apiKey: string, key: string, rec: IdempotencyRecord): Promise<void>;
  /** Deletes records made before `beforeMs`, at most `maxRows`. @returns rows deleted. */
  prune(beforeMs: number, maxRows?: number): Promise<number>;
}

/** An Idempotency-Key header value: 1..255 visible ASCII characters. */
export const IDEMPOTENCY_KEY_RE = /^[\x21-\x7e]{1,255}$/;

/** JSON with object keys sorted (so a body that differs only in key order is the same request). */
function stableJson(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null';
  if (Array.isArray(v)) return `[${v.map(stableJson).join(',')}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o).sort().filter((k) => o[k] !== undefined).map((k) => `${JSON.stringify(k)}:${stableJson(o[k])}`).join(',')}}`;
}

/** SHA-256 (hex) of a request: method, path and its JSON body with keys sorted. */
export function requestHash(method: string, path: string, body: unknown): string {
  return createHash('sha256').update(`${method} ${path}\n`).update(stableJson(body)).digest('hex');
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by IdempotencyGuard for a POST with an Idempotency-Key that is to be run. */
    idempotency?: { readonly slot: string; readonly apiKey: string; readonly key: string; readonly hash: string };
  }
}

/**
 * The fastify hooks of Idempotency-Key: `preHandler` (after authentication and validation) answers
 * a repeat from the kept record or refuses a conflict; `onSend` keeps a 2xx answer before it
 * leaves, so a retry arriving right after already finds it; `onResponse` ends the in-progress mark.
 */
export class IdempotencyGuard {
  private readonly inFlight = new Set<string>();
  private readonly timer: NodeJS.Timeout;

  /** @param ttlMs how long answers are given again (http.idempotencyTtlMs). */
  constructor(private readonly store: IdempotencyStore, private readonly ttlMs: number, private readonly now: () => number = Date.now) {
    this.timer = setInterval(() => { void this.store.prune(this.now() - this.ttlMs).catch(() => {}); }, Math.min(ttlMs, 3600_000));
    this.timer.unref();
  }

  readonly preHandler = async (req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> => {
    const raw = req.headers['idempotency-key'];
    if (raw === undefined) return undefined;
    const key = Array.isArray(raw) ? undefined : raw;
    if (key === undefined || !IDEMPOTENCY_KEY_RE.test(key)) {
      throw apiErrors.invalid([{ in: 'headers', path: 'idempotency-key', reason: 'one header of 1 to 255 visible ASCII characters' }]);
    }
    const apiKey = req.apiKey?.name ?? '';
    const hash = requestHash(req.method, req.url.split('?')[0]!, req.body);
    const rec = await this.store.get(apiKey, key, this.now() - this.ttlMs);
    if (rec) {
      if (rec.requestHash !== hash) throw new ApiError(409, 'ERR_API_IDEMPOTENCY', 'this Idempotency-Key was used for another request');
      return reply.code(rec.status).header('idempotent-replayed', 'true').type('application/json; charset=utf-8').send(rec.body);
    }
    const slot = `${apiKey}\0${key}`;
    if (this.inFlight.has(slot)) throw new ApiError(409, 'ERR_API_IDEMPOTENCY', 'a request with this Idempotency-Key is in progress; try again');
    this.inFlight.add(slot);
    req.idempotency = { slot, apiKey, key, hash };
    return undefined;
  };

  readonly onSend = async (req: FastifyRequest, reply: FastifyReply, payload: unknown): Promise<unknown> => {
    const idem = req.idempotency;
    if (!idem) return payload;
    if (reply.statusCode >= 200 && reply.statusCode < 300 && typeof payload === 'string') {
      await this.store.put(idem.apiKey, idem.key, { requestHash: idem.hash, status: reply.statusCode, body: payload, createdAt: this.now() });
    }
    this.inFlight.delete(idem.slot);
    return payload;
  };

  readonly onResponse = async (req: FastifyRequest): Promise<void> => {
    if (req.idempotency) this.inFlight.delete(req.idempotency.slot);
  };

  /** Stops the pruning timer. */
  close(): void {
    clearInterval(this.timer);
  }
}
