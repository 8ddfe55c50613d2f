/**
 * The QueueStore interface: the one boundary between Postline and where queued mail lives.
 *
 * The embedded default is SQLite, with small bodies inline and a file per large body (src/spool/sqlite/); a PostgreSQL
 * store for clusters will implement the same interface. No SQL or file layout leaks past here.
 *
 * Ownership (DESIGN.md): cleanup is the only caller of `createBody` / `commit`; the scheduler is the
 * only writer of queue state (`record`, `setNextAttempt`, `setHold`, `remove`,
 * `quarantine`). Everyone else reads.
 */
import type { Readable, Writable } from 'node:stream';
import type { DsnNotify, EnvelopeFacts, IndexedRecipient, OriginalRecipient } from '../core/envelope.js';
import type { MessageMeta, MessageOrigin } from '../core/session.js';
import type { SuppressionStore } from '../suppression/types.js';
import type { EventQuery, EventRecord, StoredEvent } from '../events/record.js';

/** Delivery status of one recipient of a queued message. */
export type RecipientStatus = 'pending' | 'delivered' | 'relayed' | 'bounced' | 'expired';

/** One recipient as stored. */
export interface QueuedRecipient extends IndexedRecipient {
  status: RecipientStatus;
  /** Last reply or reason seen for this recipient, one line ("451 4.3.0 text"), when any. */
  lastReply?: string;
  /** Enhanced status code of the final or last outcome ("2.0.0", "5.1.1"). */
  dsnStatus?: string;
  /** Remote MTA that gave the reply ("mx.example.com[192.0.2.1]:25"), when any. */
  remoteMta?: string;
  /** ms since epoch of the final outcome, when final. */
  doneAt?: number;
  /** True once a delay DSN was sent for this recipient (RFC 3461 NOTIFY=DELAY). */
  delayNotified?: boolean;
  /**
   * Set while a failure or success DSN about this recipient is decided but not yet queued. It is
   * written with the final outcome, in the same commit, and cleared only after the DSN is queued,
   * so a crash in between repeats the DSN at restart instead of losing it.
   */
  dsnOwed?: DsnOwed;
}

/** Which DSN a recipient is owed (RFC 3461 NOTIFY=FAILURE / SUCCESS). */
export type DsnOwed = 'failure' | 'success';

/** Where a message came from (core/session.ts). */
export type { MessageOrigin } from '../core/session.js';

/** A message in the queue (metadata only; the body is read with `openBody`). */
export interface QueuedMessage extends EnvelopeFacts {
  readonly id: string;
  /**
   * Size in bytes of what `openBody` gives out: the prepended header fields (cleanup's modifier
   * chain, e.g. DKIM-Signature) plus the body as stored (CRLF line endings, unstuffed, with our
   * Received header). SIZE=, DSN originals and `queue show` use this figure.
   */
  readonly size: number;
  /** ms since epoch when the message was committed (Arrival-Date of DSNs). */
  readonly arrivedAt: number;
  readonly origin: MessageOrigin;
  recipients: QueuedRecipient[];
  /** Number of delivery attempts so far. */
  attempts: number;
  /** ms since epoch before which the scheduler does not try again. */
  nextAttemptAt: number;
  /** Held messages are not delivered until released (`postline queue hold/release`). */
  held: boolean;
  /** Deferred sending: not tried before this time (ms since epoch; NewMessage meta.sendAt after arrival). */
  readonly sendAt?: number;
  /** Last reason the message was deferred, for `queue list`. */
  lastError?: string;
  /** The Message-ID header field value, with angle brackets, when the message has one. */
  readonly messageId?: string;
  /** Message metadata (core/session.ts MessageMeta), copied into every event about it. */
  readonly tags?: readonly string[];
  readonly metadata?: Readonly<Record<string, string>>;
}

/** A body being written; call `store.commit` with it, or `abort()`. */
export interface BodyWriter {
  readonly id: string;
  /** Stream the message body into this (bytes as they go to the next hop). */
  readonly stream: Writable;
  /** Bytes written so far. */
  bytesWritten(): number;
  /** Discard the partial body (client went away, message refused). Never throws. */
  abort(): Promise<void>;
}

/** What cleanup hands the store to commit. */
export interface NewMessage extends EnvelopeFacts {
  readonly id: string;
  readonly origin: MessageOrigin;
  readonly recipients: readonly { address: string; notify?: readonly DsnNotify[]; orcpt?: OriginalRecipient }[];
  readonly arrivedAt: number;
  /** The Message-ID header field value, with angle brackets, when any. */
  readonly messageId?: string;
  /** tags, metadata; `sendAt` (ms) becomes the first next attempt time. */
  readonly meta?: MessageMeta;
  /**
   * Header fields known only at the end of data (cleanup/modifiers.ts: DKIM-Signature, later
   * Authentication-Results), each ending in CRLF, UTF-8. Stored with the row (the body is written
   * once and never rewritten) and given out by `openBody` in front of the body.
   */
  readonly prepend?: string;
  /** Commit the message on hold (a local route in mode hold): not delivered until released. */
  readonly held?: boolean;
}

/**
 * One delivery round's result for one message, written in ONE transaction (DESIGN.md "one commit
 * per outcome"): recipient states, the next attempt, the DSN marks, the events, and the removal of
 * the message when nothing is left to do.
 */
export interface OutcomeWrite {
  readonly updates: readonly RecipientUpdate[];
  /** New attempts count, next attempt time and last error; absent keeps them. */
  readonly next?: { attempts: number; nextAttemptAt: number; lastError?: string };
  /** Events recording these changes (same commit). */
  readonly events?: readonly EventRecord[];
  /** Delete the message and its body in the same commit (every recipient final, no DSN owed). */
  readonly remove?: boolean;
}

/** Queue states for paged listing and counts. */
export type QueueState = 'active' | 'deferred' | 'held' | 'quarantined';

/** A filtered page of the queue (API GET /api/v1/queue). */
export interface QueuePageQuery {
  readonly state?: QueueState;
  /** Exact reverse-path ('' for the null sender). */
  readonly sender?: string;
  /** Only messages with a pending recipient in this domain (lower case). */
  readonly recipientDomain?: string;
  /** Cursor: queue IDs greater than this (IDs sort by arrival). */
  readonly after?: string;
  /** 1..1000. */
  readonly limit: number;
}

/** One state change the scheduler writes for a recipient. */
export interface RecipientUpdate {
  readonly idx: number;
  readonly status: RecipientStatus;
  readonly lastReply?: string;
  readonly dsnStatus?: string;
  readonly remoteMta?: string;
  readonly doneAt?: number;
  readonly delayNotified?: boolean;
  /** A DSN now owed (set with the final outcome); null clears the mark; undefined keeps it. */
  readonly dsnOwed?: DsnOwed | null;
}

/** A summary row for `postline queue list`. */
export interface QueueSummary {
  readonly id: string;
  readonly mailFrom: string;
  readonly size: number;
  readonly arrivedAt: number;
  readonly held: boolean;
  readonly nextAttemptAt: number;
  readonly attempts: number;
  readonly lastError?: string;
  readonly pending: readonly string[];
}

/** A position in due order: next attempt time (ms since epoch), then queue ID. */
export interface DueKey {
  readonly at: number;
  readonly id: string;
}

/** One message in due order (QueueStore.dueBatch). */
export type DueEntry = DueKey;

export interface QueueStore {
  /** Opens or creates the store (runs migrations, recovers leftovers of a crash). */
  open(): Promise<void>;
  /** Flushes and closes; pending commits finish first. */
  close(): Promise<void>;

  /** Starts a new body for message `id`. Throws StoreError(full) when the store is below its free-space reserve. */
  createBody(id: string): Promise<BodyWriter>;
  /**
   * Makes the message durable: a database commit (group commit: concurrent callers share one
   * flush) that holds the body too when it is small, else after the body file's fsync and its
   * directory's fsync. Resolves only when it is on disk; only then may the caller answer 250.
   * Throws StoreError (full or not) when it could not commit; then nothing is kept.
   */
  commit(msg: NewMessage, body: BodyWriter, events?: readonly EventRecord[]): Promise<QueuedMessage>;

  /**
   * Opens the stored message for reading: the prepended header fields (NewMessage.prepend), then
   * the body; `QueuedMessage.size` bytes in all. Throws StoreError when it is missing or unreadable.
   */
  openBody(id: string): Readable;
  /** Metadata of one message, or undefined. */
  get(id: string): Promise<QueuedMessage | undefined>;
  /** Every message that still has a pending recipient or an owed DSN (held ones included), oldest first. Corrupt entries are quarantined, never thrown. */
  loadAll(): Promise<QueuedMessage[]>;
  /** Summaries for `queue list`. */
  list(): Promise<QueueSummary[]>;
  /**
   * Scheduler: up to `limit` messages that are neither held nor quarantined, in due order (next
   * attempt time, then queue ID), strictly after `after` (from the start when undefined). Finished
   * rows not yet removed are included (the scheduler removes them). Reads only what is committed.
   */
  dueBatch(after: DueKey | undefined, limit: number): Promise<DueEntry[]>;
  /**
   * Scheduler (bulk flush, `postline queue flush [--domain D]`): sets the next attempt of every
   * message that is not held, not quarantined and not waiting for a later sendAt (never tried,
   * next attempt after `now`), and, with `domain`, has a pending recipient in that domain (ASCII
   * case-insensitive), to `now`, with one `message.flushed` event each, in commits of `chunk`
   * messages (default 2000) so other writes go on between them. `onProgress` hears the running
   * count after each commit. @returns how many. @throws StoreError when a commit fails.
   */
  flushMatching(q: { readonly now: number; readonly domain?: string; readonly chunk?: number }, onProgress?: (done: number) => void): Promise<number>;
  /** Messages in the store (held included, quarantined not): the backpressure measure. */
  countMessages(): Promise<number>;
  /** Rewrites the store compactly (`postline queue vacuum`, server stopped), where the store can. @returns bytes before and after. */
  vacuum?(): Promise<{ before: number; after: number }>;

  /** Paged, filtered summaries, in queue ID order (API). */
  listPage(q: QueuePageQuery): Promise<{ items: QueueSummary[]; next?: string }>;
  /** Messages by state (queue gauge, API). */
  countByState(): Promise<Record<QueueState, number>>;

  /**
   * Scheduler only: one round's outcome for one message in one commit (see OutcomeWrite).
   * @throws StoreError (full or not) when it could not be written; then nothing of it is kept.
   */
  record(id: string, w: OutcomeWrite): Promise<void>;
  /** Scheduler only: moves the next attempt time (flush = now), with its events. */
  setNextAttempt(id: string, nextAttemptAt: number, events?: readonly EventRecord[]): Promise<void>;
  /** Scheduler only: hold or release, with its events. */
  setHold(id: string, held: boolean, events?: readonly EventRecord[]): Promise<void>;
  /** Scheduler only: deletes a message and its body (`queue delete`), with its events. */
  remove(id: string, events?: readonly EventRecord[]): Promise<void>;
  /** Moves a damaged entry aside (body file to quarantine/, row marked) with a reason, and its events. */
  quarantine(id: string, reason: string, events?: readonly EventRecord[]): Promise<void>;

  /**
   * Writes events that record no queue state change of their own (message.rejected,
   * dsn.dropped), in the next group commit. @returns them numbered. @throws StoreError.
   */
  appendEvents(events: readonly EventRecord[]): Promise<StoredEvent[]>;
  /** Events in id order matching `q`. */
  readEvents(q: EventQuery): Promise<StoredEvent[]>;
  /** The id of the newest event (0 when none was ever written). */
  lastEventId(): Promise<number>;
  /**
   * Deletes events older than `beforeMs` (ms since epoch), at most `maxRows` per call so commits
   * are not stalled; the newest event is always kept (ids are never reused). @returns rows deleted.
   */
  pruneEvents(beforeMs: number, maxRows?: number): Promise<number>;
  /**
   * Sets who hears of events once they are committed (the bus in main.ts), in id order, once per
   * commit. The store imports no bus.
   */
  setEventListener(fn: (events: readonly StoredEvent[]) => void): void;

  /** Free bytes on the store's filesystem (for the free-space reserve check). */
  freeBytes(): Promise<number>;

  /**
   * The suppression list kept with this store (src/suppression/), whose changes commit with their
   * events through this store; absent when the backend has none. @throws StoreError when not open.
   */
  suppressionStore?(): SuppressionStore;
}
