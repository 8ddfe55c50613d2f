/**
 * The queue administration interface behind `postline queue ...`: implemented by the Scheduler
 * (server running; reached over the control socket) and by StoreQueueAdmin in src/control/offline.ts
 * (server stopped; the CLI opens the store itself). One shape so the CLI does not care which.
 */
import { PostlineError } from '../core/errors.js';
import type { QueuedMessage, QueueStore, QueueSummary } from '../spool/types.js';
import { readHeaders, readWhole } from './body.js';

/** `queue show` answer: metadata, the header section and, when asked, the whole message. */
export interface MessageDetail {
  readonly message: QueuedMessage;
  /** Header section of the stored message (UTF-8 decoded, CRLF), '' when unreadable. */
  readonly headers: string;
  /** The whole stored message, base64 (only with `body: true`). */
  readonly bodyBase64?: string;
  /** Why the body could not be read, when it could not. */
  readonly bodyError?: string;
}

export interface QueueAdmin {
  /** Summaries of every message with pending recipients, oldest first. */
  list(): Promise<QueueSummary[]>;
  /** @throws NoSuchMessageError */
  show(id: string, opts?: { body?: boolean }): Promise<MessageDetail>;
  /**
   * Makes every deferred (not held, not scheduled for a later sendAt) message due now, or with
   * `domain` those with a pending recipient in that domain; returns how many.
   */
  flush(opts?: { domain?: string }): Promise<number>;
  /** Makes one message due now. @throws NoSuchMessageError, PostlineError ERR_MESSAGE_HELD, ERR_MESSAGE_SCHEDULED (sendAt in the future) */
  flushOne(id: string): Promise<void>;
  /** @throws NoSuchMessageError */
  hold(id: string): Promise<void>;
  /** @throws NoSuchMessageError */
  release(id: string): Promise<void>;
  /** Deletes the message and its body without any DSN. @throws NoSuchMessageError */
  delete(id: string): Promise<void>;
  /** Dead, suspended and throttled destinations now (`queue destinations`). */
  listDestinations(): Promise<DestinationStatus[]>;
  /**
   * Suspends a destination (a name as in delivery.shaping `match`) for `forMs` ms, or until
   * resumed: its mail waits without attempts. Kept across restarts.
   * @throws PostlineError ERR_BAD_DESTINATION
   */
  suspend(destination: string, opts?: { forMs?: number }): Promise<DestinationStatus>;
  /**
   * Ends the suspensions and throttles of a destination (that name, and the next hops it matches);
   * mail that waited for it is tried now. @returns what ended.
   * @throws PostlineError ERR_BAD_DESTINATION, ERR_NOT_SUSPENDED
   */
  resume(destination: string): Promise<DestinationStatus[]>;
  /**
   * Bounces the pending recipients of every message matching `q` (all its pending recipients when
   * the sender matches; with `domain`, those in that domain) with "message bounced by the
   * administrator" (5.0.0) and a failure DSN where NOTIFY asks for one. @returns messages affected.
   * @throws PostlineError ERR_BAD_QUERY (neither domain nor sender); StoreError
   */
  bounce(q: BounceQuery): Promise<number>;
}

/** Which mail `queue bounce` takes: pending recipients in `domain`, and/or messages from `sender` (exact reverse-path). */
export interface BounceQuery {
  readonly domain?: string;
  readonly sender?: string;
}

/** One destination in `queue destinations`. Times are ms since epoch. */
export interface DestinationStatus {
  /** A next-hop key, or the name an operator suspended. */
  readonly destination: string;
  readonly state: 'dead' | 'suspended' | 'throttled';
  /** operator: `queue suspend`; reply: a reply matched delivery.throttlePatterns; connection: no host answered (dead). */
  readonly source: 'operator' | 'reply' | 'connection';
  readonly since?: number;
  /** When it ends by itself; absent: until resumed. */
  readonly until?: number;
  readonly reason: string;
  /** throttled: the share of its limits kept. */
  readonly factor?: number;
  /** dead: failed probes in a row. */
  readonly failures?: number;
}

/** The queue has no message with this ID (error text 'no such message'). */
export class NoSuchMessageError extends PostlineError {
  constructor(readonly queueId: string) {
    super('ERR_NO_SUCH_MESSAGE', 'no such message', { temporary: false });
    this.name = 'NoSuchMessageError';
  }
}

/** A held message cannot be flushed; release it first. */
export function heldError(): PostlineError {
  return new PostlineError('ERR_MESSAGE_HELD', 'message is on hold; release it first', { temporary: false });
}

/**
 * True when `m` waits for its sendAt (deferred sending, core/session.ts MessageMeta), which is
 * still to come (not a next attempt moved by the scheduler). A flush leaves it alone (it is not deferred, it is scheduled).
 */
export function isScheduled(m: { readonly sendAt?: number }, now: number): boolean {
  return m.sendAt !== undefined && m.sendAt > now;
}

/** A message scheduled for later (sendAt) is not flushed; it goes at its time (or delete it). */
export function scheduledError(at: number): PostlineError {
  return new PostlineError('ERR_MESSAGE_SCHEDULED', `message is scheduled for ${new Date(at).toISOString()} (sendAt); it is sent then`, { temporary: false });
}

/** Builds a MessageDetail from the store (reads the header section, and the body when asked). Never throws for an unreadable body. */
export async function messageDetail(store: QueueStore, message: QueuedMessage, withBody: boolean): Promise<MessageDetail> {
  try {
    const headers = (await readHeaders(store, message.id)).toString('utf8');
    if (!withBody) return { message, headers };
    return { message, headers, bodyBase64: (await readWhole(store, message.id)).toString('base64') };
  } catch (err) {
    return { message, headers: '', bodyError: (err as Error).message };
  }
}

/** Runs operator actions one at a time per key (a queue ID): a flush and a hold at once must not interleave. */
export class KeyedLock {
  private readonly tails = new Map<string, Promise<unknown>>();

  /** Runs `fn` after every earlier `run` for `key`; resolves or rejects as `fn` does. */
  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.tails.set(key, tail);
    void tail.then(() => { if (this.tails.get(key) === tail) this.tails.delete(key); });
    return run;
  }
}
