/**
 * Idempotency-Key for the API's POSTs: the same key (per API key) with the same request within
 * `http.idempotencyTtlMs` (24 h) gives the first answer again and queues nothing new; another
 * request under a key already used gets 409.
 *
 * Crash safety: before anything is submitted a "pending" record (status 0: the request hash, the
 * process and its instance, the queue IDs so far) is written; the queue IDs are added as the
 * submits' commits land, and the final answer replaces it. The pending write is on the side
 * connection to queue.db; the queue commit that follows fsyncs the same WAL, so a queued message
 * never outlives its pending record. A retry that finds a pending record answers 409: "in
 * progress" while its process (another one, alive, within the grace) may still finish it, else
 * "outcome unknown" with the queue IDs recorded so far; it never queues again.
 *
 * Only successful (2xx) answers are kept: a refused request that queued nothing did nothing, so
 * its record is removed and trying it again is safe and gives a fresh answer.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction, onResponseHookHandler, onSendHookHandler, preHandlerHookHandler } from 'fastify';
import { ApiError, apiErrors } from './errors.js';

/** A kept answer, or (status 0) the pending mark of a request still running or cut short. */
export interface IdempotencyRecord {
  /** requestHash() of the request that made it. */
  readonly requestHash: string;
  /** The HTTP status of the answer; 0: pending (body is a PendingBody as JSON). */
  readonly status: number;
  /** The JSON answer as sent (or the PendingBody). */
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
  /** Deletes the record of (apiKey, key), if any. */
  delete(apiKey: string, key: string): Promise<void>;
  /** Deletes records made before `beforeMs`, at most `maxRows`. @returns rows deleted. */
  prune(beforeMs: number, maxRows?: number): Promise<number>;
}

/** What a pending record holds: who runs the request and what it has queued so far. */
export interface PendingBody {
  readonly pending: { readonly pid: number; readonly instance: string };
  readonly queued: readonly { readonly address: string; readonly queueId: string }[];
}

/** This process's instance token (a pid may be reused after a restart). */
const INSTANCE = `${process.pid}.${Date.now().toString(36)}.${randomBytes(6).toString('hex')}`;

/** True when process `pid` exists (kill 0; EPERM means it exists under another user). */
function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
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
    idempotency?: {
      readonly slot: string; readonly apiKey: string; readonly key: string; readonly hash: string;
      readonly createdAt: number;
      /** Queue IDs so far (noteQueued). */
      readonly queued: Array<{ address: string; queueId: string }>;
      /** The chain of pending-record writes (the final write waits for it). */
      writes: Promise<void>;
      /** A write of `queued` is scheduled. */
      dirty: boolean;
    };
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

  /**
   * @param ttlMs how long answers are given again (http.idempotencyTtlMs).
   * @param graceMs how long a pending record of another live process counts as in progress
   *        (then its outcome is unknown), ms.
   */
  constructor(private readonly store: IdempotencyStore, private readonly ttlMs: number, private readonly now: () => number = Date.now, private readonly graceMs = 360_000) {
    this.timer = setInterval(() => { void this.store.prune(this.now() - this.ttlMs).catch(() => {}); }, Math.min(ttlMs, 3600_000));
    this.timer.unref();
  }

  /**
   * The preHandler hook. Without an Idempotency-Key header (most requests) it is done at once,
   * without a promise; with one it returns the promise of the checks (and calls no `done`).
   */
  readonly preHandler = ((req: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): Promise<FastifyReply | undefined> | undefined => {
    if (req.headers['idempotency-key'] === undefined) {
      done();
      return undefined;
    }
    return this.checkKey(req, reply);
  }) as preHandlerHookHandler;

  private async checkKey(req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> {
    const raw = req.headers['idempotency-key'];
    if (raw === undefined) return undefined;
    const key = Array.isArray(raw) ? undefined : raw;
    if (key === undefined || !IDEMPOTENCY_KEY_RE.test(key)) {
      throw apiErrors.invalid([{ in: 'headers', path: 'idempotency-key', reason: 'one header of 1 to 255 visible ASCII characters' }]);
    }
    const apiKey = req.apiKey?.name ?? '';
    const hash = requestHash(req.method, req.url.split('?')[0]!, req.body);
    const slot = `${apiKey}\0${key}`;
    if (this.inFlight.has(slot)) throw new ApiError(409, 'ERR_API_IDEMPOTENCY', 'a request with this Idempotency-Key is in progress; try again');
    const rec = await this.store.get(apiKey, key, this.now() - this.ttlMs);
    if (rec) {
      if (rec.requestHash !== hash) throw new ApiError(409, 'ERR_API_IDEMPOTENCY', 'this Idempotency-Key was used for another request');
      if (rec.status === 0) throw this.pendingAnswer(rec);
      return reply.code(rec.status).header('idempotent-replayed', 'true').type('application/json; charset=utf-8').send(rec.body);
    }
    this.inFlight.add(slot);
    const createdAt = this.now();
    req.idempotency = { slot, apiKey, key, hash, createdAt, queued: [], writes: Promise.resolve(), dirty: false };
    try {
      await this.writePending(req.idempotency);
    } catch (err) {
      this.inFlight.delete(slot);
      req.idempotency = undefined;
      throw err;
    }
    return undefined;
  }

  /** The 409 for a pending record found by a retry. */
  private pendingAnswer(rec: IdempotencyRecord): ApiError {
    let p: PendingBody | undefined;
    try { p = JSON.parse(rec.body) as PendingBody; } catch { /* unreadable: outcome unknown */ }
    const owner = p?.pending;
    const running = owner !== undefined && owner.instance !== INSTANCE && processAlive(owner.pid) && this.now() - rec.createdAt < this.graceMs;
    if (running) return new ApiError(409, 'ERR_API_IDEMPOTENCY', 'a request with this Idempotency-Key is in progress; try again');
    const queued = p?.queued ?? [];
    const since = `GET /api/v1/events?type=message.received&since=${rec.createdAt}`;
    return new ApiError(409, 'ERR_API_IDEMPOTENCY',
      `the first request with this Idempotency-Key did not finish (its process ended or it was cut short), so its outcome is unknown; it is not run again. `
      + (queued.length ? `Queued so far: ${queued.map((q) => `${q.address} ${q.queueId}`).join(', ')}; see ${since}` : `Nothing was recorded as queued; see ${since}`),
      { details: { queued: queued.map((q) => ({ address: q.address, queueId: q.queueId })) } });
  }

  private writePending(idem: NonNullable<FastifyRequest['idempotency']>): Promise<void> {
    const body: PendingBody = { pending: { pid: process.pid, instance: INSTANCE }, queued: idem.queued };
    return this.store.put(idem.apiKey, idem.key, { requestHash: idem.hash, status: 0, body: JSON.stringify(body), createdAt: idem.createdAt });
  }

  /**
   * Notes that `address` was queued as `queueId` for this request (after its commit). The pending
   * record is rewritten once per tick with every ID so far. No-op without an Idempotency-Key.
   */
  noteQueued(req: FastifyRequest, address: string, queueId: string): void {
    const idem = req.idempotency;
    if (!idem) return;
    idem.queued.push({ address, queueId });
    if (idem.dirty) return;
    idem.dirty = true;
    idem.writes = idem.writes.then(() => new Promise<void>((resolve) => setImmediate(resolve))).then(() => {
      idem.dirty = false;
      return this.writePending(idem);
    }).catch(() => { /* the final write or the next retry tells */ });
  }

  /** Resolves once every noted queue ID is in the store. */
  async flushed(req: FastifyRequest): Promise<void> {
    if (req.idempotency) await req.idempotency.writes;
  }

  /** The onSend hook: done at once without an Idempotency-Key, else the promise of keeping the answer. */
  readonly onSend = ((req: FastifyRequest, reply: FastifyReply, payload: unknown, done: (err: Error | null, payload?: unknown) => void): Promise<unknown> | undefined => {
    if (!req.idempotency) {
      done(null, payload);
      return undefined;
    }
    return this.keepAnswer(req, reply, payload);
  }) as onSendHookHandler;

  private async keepAnswer(req: FastifyRequest, reply: FastifyReply, payload: unknown): Promise<unknown> {
    const idem = req.idempotency;
    if (!idem) return payload;
    await idem.writes;
    if (reply.statusCode >= 200 && reply.statusCode < 300 && typeof payload === 'string') {
      await this.store.put(idem.apiKey, idem.key, { requestHash: idem.hash, status: reply.statusCode, body: payload, createdAt: idem.createdAt });
    } else if (idem.queued.length === 0) {
      // Refused, nothing queued: a retry may run it afresh.
      await this.store.delete(idem.apiKey, idem.key).catch(() => {});
    }
    // Refused after something was queued: the pending record stays, and a retry gets "outcome unknown" with those IDs.
    this.inFlight.delete(idem.slot);
    return payload;
  }

  /** The onResponse hook: ends the in-progress mark (synchronous). */
  readonly onResponse = ((req: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction): void => {
    if (req.idempotency) this.inFlight.delete(req.idempotency.slot);
    done();
  }) as onResponseHookHandler;

  /** Stops the pruning timer. */
  close(): void {
    clearInterval(this.timer);
  }
}
