/**
 * One webhook endpoint's dispatcher: reads the durable event log after the endpoint's cursor,
 * filters by its event types, POSTs signed payloads (signing.ts), and advances the stored cursor on
 * a 2xx. At least once and in id order: nothing is skipped on failure; a cursor write lost in a
 * crash only means events are sent again.
 *
 * Each dispatcher runs its own loop; dispatchers share no await, so a slow or dead endpoint never
 * delays another (nor mail: the loop only reads the log and writes its own cursor row).
 *
 * Failure handling: any non-2xx (redirects included: they are never followed), a network
 * error, a refused target (SSRF guard) or no answer within `timeoutMs` is retried after
 * initialMs * 2^(n-1) (capped at retry.maxMs) +- jitter. When the oldest unsent event is older than
 * `maxAgeMs` the endpoint is marked failing (stored; `postline webhooks status` shows it) and
 * retried every retry.maxMs until it answers 2xx again; events are never dropped for it.
 *
 * Retention: events pruned from the log (events.retentionDays) before the endpoint read them are
 * gone; the dispatcher notices the gap in ids after its cursor, logs a warning with the count and
 * adds it to the endpoint's `skipped` counter, and carries on with the oldest event still kept.
 */
import type { Logger } from '../core/log.js';
import { systemClock, type Clock } from '../core/clock.js';
import type { EventQuery, StoredEvent } from '../events/record.js';
import type { WebhookConfig } from '../config/schema.js';
import type { WebhookCursorStore } from './cursor-store.js';
import { WebhookSigner } from './signing.js';
import { resolveAndCheck, type LookupAll } from './ssrf.js';
import { createPoster, type PostFn } from './http-post.js';

/**
 * Where events come from: the queue store's event log (QueueStore.readEvents / lastEventId), or a
 * test double.
 */
export interface EventSource {
  /** Events in id order matching `q`. */
  readEvents(q: EventQuery): Promise<StoredEvent[]>;
  /** The id of the newest event (0 when none was ever written). */
  lastEventId(): Promise<number>;
}

/** Options of a dispatcher beyond its endpoint configuration. */
export interface DispatcherDeps {
  readonly source: EventSource;
  readonly cursors: WebhookCursorStore;
  readonly logger: Logger;
  readonly clock?: Clock;
  /** The HTTP POST (default: http-post.ts createPoster, node:http with keep-alive and a pinned lookup). */
  readonly post?: PostFn;
  /** Name resolution for the SSRF guard (default: node:dns lookup, all addresses). */
  readonly lookup?: LookupAll;
  /** Random numbers in [0, 1) for jitter (default Math.random). */
  readonly random?: () => number;
  /** Events read from the log per query (default 500). */
  readonly pageSize?: number;
  /** While deliveries succeed back to back, the stored cursor is written at most this often, ms (default 200). */
  readonly cursorFlushMs?: number;
}

/** What a dispatcher is doing. */
export type DispatcherState = 'starting' | 'idle' | 'sending' | 'backoff' | 'stopped';

/** In-memory view of one endpoint (the stored one is the cursor store's WebhookCursor). */
export interface DispatcherStatus {
  readonly name: string;
  readonly url: string;
  readonly state: DispatcherState;
  /** Last event id acknowledged (may be ahead of the stored cursor by up to cursorFlushMs). */
  readonly cursor: number;
  /** Failed attempts since the last success. */
  readonly attempts: number;
  readonly failingSince?: number;
  readonly lastError?: string;
  readonly lastSuccessAt?: number;
  /** Events delivered by this dispatcher since it started. */
  readonly delivered: number;
  /** Events found pruned before delivery since it started. */
  readonly skipped: number;
}

/** Result of one HTTP attempt. */
type Attempt = { ok: true; status: number } | { ok: false; error: string };

/** Longest part of a failure answer's body kept in lastError, bytes. */
const ERROR_BODY_BYTES = 200;
/** Most of an answer's body read before the rest is dropped, bytes. */
const DRAIN_BYTES = 16 * 1024;

/** A predicate for the endpoint's `events` list (exact names or "prefix.*"); absent: everything. */
export function typeFilter(events: readonly string[] | undefined): (type: string) => boolean {
  if (!events || events.length === 0) return () => true;
  const exact = new Set(events.filter((e) => !e.endsWith('.*')));
  const prefixes = events.filter((e) => e.endsWith('.*')).map((e) => e.slice(0, -1));
  return (t) => exact.has(t) || prefixes.some((p) => t.startsWith(p));
}

/** A one-line description of a request failure (its code when there is one). */
function describePostError(err: unknown): string {
  const e = err as { message?: string; code?: string; cause?: { code?: string; message?: string } };
  const code = e?.code ?? e?.cause?.code;
  const msg = e?.message ?? e?.cause?.message ?? String(err);
  return code && !msg.startsWith(code) ? `${code} (${msg})` : msg;
}

/** The dispatcher of one endpoint. start() once, stop() once. */
export class WebhookDispatcher {
  readonly name: string;
  private readonly signer: WebhookSigner;
  private readonly matches: (type: string) => boolean;
  private readonly clock: Clock;
  private readonly post: PostFn;
  private readonly ownPoster: (PostFn & { close(): void }) | undefined;
  private readonly random: () => number;
  private readonly pageSize: number;
  private readonly flushMs: number;
  private readonly log: Logger;

  private state: DispatcherState = 'starting';
  private stopped = false;
  private loop?: Promise<void>;
  private cursor = 0;
  private storedCursor = 0;
  private unflushedDelivered = 0;
  private lastFlushAt = 0;
  private attempts = 0;
  private failingSince?: number;
  private lastError?: string;
  private lastSuccessAt?: number;
  private delivered = 0;
  private skipped = 0;
  private wakePending = false;
  /** Events read after the cursor and not yet delivered or passed over (id order). */
  private buffer: StoredEvent[] = [];
  private sleeper?: { timer: NodeJS.Timeout; wakeable: boolean; done: () => void };
  private inflight?: AbortController;

  /** @param endpoint a validated endpoint (config schema); its URL is checked again before each request. */
  constructor(readonly endpoint: WebhookConfig, private readonly deps: DispatcherDeps) {
    this.name = endpoint.name;
    this.signer = new WebhookSigner(endpoint.secret);
    this.matches = typeFilter(endpoint.events);
    this.clock = deps.clock ?? systemClock;
    this.ownPoster = deps.post ? undefined : createPoster({ drainBytes: DRAIN_BYTES });
    this.post = deps.post ?? this.ownPoster!;
    this.random = deps.random ?? Math.random;
    this.pageSize = Math.max(endpoint.batch, Math.min(10_000, deps.pageSize ?? 500));
    this.flushMs = Math.max(0, deps.cursorFlushMs ?? 200);
    this.log = deps.logger.child({ webhook: endpoint.name });
  }

  /** Starts the loop (returns at once; the first step loads or creates the stored cursor). */
  start(): void {
    if (this.loop) return;
    this.loop = this.run().catch((err: unknown) => {
      this.log.error({ err }, 'webhook dispatcher stopped by an unexpected error');
    });
  }

  /** New events were committed: an idle dispatcher reads the log now instead of at its next poll. Never throws. */
  wake(): void {
    this.wakePending = true;
    const s = this.sleeper;
    if (s?.wakeable) s.done();
  }

  /**
   * Stops: a request in flight is aborted (its events are sent again by the next start), the
   * cursor is written, the loop ends. Resolves when it has.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    this.inflight?.abort(new Error('dispatcher stopped'));
    this.sleeper?.done();
    await this.loop;
    this.ownPoster?.close();
    this.state = 'stopped';
  }

  /** The in-memory state. */
  status(): DispatcherStatus {
    return {
      name: this.name,
      url: this.endpoint.url,
      state: this.state,
      cursor: this.cursor,
      attempts: this.attempts,
      ...(this.failingSince !== undefined ? { failingSince: this.failingSince } : {}),
      ...(this.lastError !== undefined ? { lastError: this.lastError } : {}),
      ...(this.lastSuccessAt !== undefined ? { lastSuccessAt: this.lastSuccessAt } : {}),
      delivered: this.delivered,
      skipped: this.skipped,
    };
  }

  private async run(): Promise<void> {
    const { retry } = this.endpoint;
    // Load or create the stored cursor; a store error is retried, it never ends the loop.
    while (!this.stopped) {
      try {
        let c = await this.deps.cursors.get(this.name);
        if (!c) {
          const at = this.endpoint.from === 'start' ? 0 : await this.deps.source.lastEventId();
          c = await this.deps.cursors.ensure(this.name, at, this.clock.now());
          this.log.info({ cursor: c.cursor, from: this.endpoint.from }, 'new webhook endpoint');
        }
        this.cursor = this.storedCursor = c.cursor;
        const last = await this.deps.source.lastEventId();
        if (c.cursor > last) {
          this.log.warn({ cursor: c.cursor, lastEventId: last }, 'webhook cursor is ahead of the event log (queue.db restored or replaced?): new events up to the cursor will not be sent');
        }
        this.attempts = c.attempts;
        if (c.failingSince !== undefined) this.failingSince = c.failingSince;
        if (c.lastError !== undefined) this.lastError = c.lastError;
        if (c.lastSuccessAt !== undefined) this.lastSuccessAt = c.lastSuccessAt;
        break;
      } catch (err) {
        this.log.error({ err }, 'cannot load the webhook cursor; retrying');
        await this.sleep(retry.initialMs, false);
      }
    }
    while (!this.stopped) {
      try {
        await this.step();
      } catch (err) {
        this.log.error({ err }, 'webhook dispatcher step failed; retrying');
        await this.sleep(retry.initialMs, false);
      }
    }
    await this.flushCursor();
  }

  /** One step: read a page when the buffer is empty, then deliver, pass over other types, or sleep. */
  private async step(): Promise<void> {
    if (this.buffer.length === 0) {
      this.wakePending = false;
      const page = await this.deps.source.readEvents({ after: this.cursor, limit: this.pageSize });
      if (this.stopped) return;
      if (page.length === 0) {
        await this.flushCursor();
        this.state = 'idle';
        await this.sleep(this.endpoint.pollMs, true);
        return;
      }
      const first = page[0]!.id;
      if (this.cursor > 0 && first > this.cursor + 1) {
        const n = first - this.cursor - 1;
        this.skipped += n;
        this.log.warn({ after: this.cursor, next: first, skipped: n }, 'webhook events were pruned by retention before delivery; skipped');
        await this.deps.cursors.addSkipped(this.name, n).catch((err: unknown) => this.log.warn({ err }, 'cannot count skipped webhook events'));
      }
      this.buffer = page;
    }
    // Events of other types ahead of the next wanted one: the cursor moves past them.
    let lead = 0;
    while (lead < this.buffer.length && !this.matches(this.buffer[lead]!.type)) lead++;
    if (lead > 0) {
      this.cursor = this.buffer[lead - 1]!.id;
      this.buffer.splice(0, lead);
      if (this.buffer.length === 0) {
        await this.maybeFlush();
        return;
      }
    }
    const batch: StoredEvent[] = [];
    let lastIdx = 0;
    for (let i = 0; i < this.buffer.length && batch.length < this.endpoint.batch; i++) {
      if (!this.matches(this.buffer[i]!.type)) continue;
      batch.push(this.buffer[i]!);
      lastIdx = i;
    }
    this.state = 'sending';
    const res = await this.attempt(batch);
    if (this.stopped && !res.ok) return;
    const now = this.clock.now();
    if (res.ok) {
      this.cursor = this.buffer[lastIdx]!.id;
      this.buffer.splice(0, lastIdx + 1);
      this.delivered += batch.length;
      this.unflushedDelivered += batch.length;
      this.lastSuccessAt = now;
      if (this.failingSince !== undefined) this.log.info({ failingSince: this.failingSince }, 'webhook endpoint recovered');
      this.attempts = 0;
      this.failingSince = undefined;
      this.lastError = undefined;
      await this.maybeFlush();
      return;
    }
    this.attempts++;
    this.lastError = res.error;
    const failing = now - batch[0]!.at > this.endpoint.maxAgeMs;
    if (failing && this.failingSince === undefined) {
      this.failingSince = now;
      this.log.error({ oldestEventId: batch[0]!.id, maxAgeMs: this.endpoint.maxAgeMs, error: res.error }, 'webhook endpoint is failing: its oldest unsent event is older than maxAgeMs; retrying at the longest interval');
    }
    const delay = this.backoff(failing);
    this.log.warn({ eventId: batch[batch.length - 1]!.id, attempts: this.attempts, error: res.error, retryInMs: delay }, 'webhook delivery failed');
    await this.flushCursor();
    await this.deps.cursors.recordFailure(this.name, { at: now, error: res.error, failing }).catch((err: unknown) => this.log.warn({ err }, 'cannot record the webhook failure'));
    this.state = 'backoff';
    await this.sleep(delay, false);
  }

  /** The wait before the next attempt, ms. */
  private backoff(failing: boolean): number {
    const { initialMs, maxMs, jitter } = this.endpoint.retry;
    const base = failing ? maxMs : Math.min(maxMs, initialMs * 2 ** Math.min(30, this.attempts - 1));
    const spread = base * jitter * (2 * this.random() - 1);
    return Math.max(1, Math.round(base + spread));
  }

  /** One POST of `batch`: SSRF check, sign, send (to the checked addresses only), read at most a little of the answer. */
  private async attempt(batch: readonly StoredEvent[]): Promise<Attempt> {
    const { url, allowPrivate, timeoutMs } = this.endpoint;
    let addresses: Array<{ address: string; family: number }>;
    try {
      addresses = await resolveAndCheck(url, allowPrivate, this.deps.lookup);
    } catch (err) {
      return { ok: false, error: (err as Error).message };
    }
    const req = this.signer.sign(batch, this.endpoint.batch > 1, this.clock.now());
    const ac = new AbortController();
    this.inflight = ac;
    try {
      const res = await this.post({
        url, addresses, timeoutMs, signal: ac.signal, body: req.body,
        headers: { ...req.headers, 'user-agent': 'Postline-Webhooks/1' },
      });
      if (res.status >= 200 && res.status < 300) return { ok: true, status: res.status };
      const text = res.text.replace(/\s+/g, ' ').trim().slice(0, ERROR_BODY_BYTES);
      const redirect = res.status >= 300 && res.status < 400 ? ' (redirects are not followed)' : '';
      return { ok: false, error: `HTTP ${res.status}${redirect}${text ? `: ${text}` : ''}` };
    } catch (err) {
      if ((err as { code?: string }).code === 'ETIMEDOUT') return { ok: false, error: `no answer within ${timeoutMs} ms` };
      return { ok: false, error: describePostError(err) };
    } finally {
      this.inflight = undefined;
    }
  }

  /** Writes the cursor when the last write is older than cursorFlushMs. */
  private async maybeFlush(): Promise<void> {
    if (this.clock.now() - this.lastFlushAt >= this.flushMs) await this.flushCursor();
  }

  /** Writes the in-memory cursor (and successes) to the store when it moved. Never throws. */
  private async flushCursor(): Promise<void> {
    if (this.cursor <= this.storedCursor && this.unflushedDelivered === 0) return;
    const cursor = this.cursor;
    const n = this.unflushedDelivered;
    try {
      await this.deps.cursors.advance(this.name, cursor, this.lastSuccessAt ?? this.clock.now(), n);
      this.storedCursor = Math.max(this.storedCursor, cursor);
      this.unflushedDelivered -= n;
      this.lastFlushAt = this.clock.now();
    } catch (err) {
      this.log.warn({ err, cursor }, 'cannot store the webhook cursor; will try again');
    }
  }

  /** Sleeps `ms`; stop() ends it, and wake() too when `wakeable` (a wake that came before counts). */
  private sleep(ms: number, wakeable: boolean): Promise<void> {
    if (this.stopped || (wakeable && this.wakePending)) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        if (this.sleeper?.timer === timer) this.sleeper = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      timer.unref?.();
      this.sleeper = { timer, wakeable, done };
    });
  }
}
