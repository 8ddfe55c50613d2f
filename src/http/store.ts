/**
 * What the HTTP API reads from the queue store: a narrow slice of `QueueStore` (spool/types.ts),
 * declared here with the same signatures so the API depends on nothing more. The real store
 * satisfies it; tests may pass a small double.
 *
 * QueuePageQuery / QueueState mirror the store's paged listing (spool/types.ts).
 */
import type { QueuedMessage, QueueSummary } from '../spool/types.js';
import type { EventQuery, StoredEvent } from '../events/record.js';

/** Queue states for paged listing and counts. */
export type QueueState = 'active' | 'deferred' | 'held' | 'quarantined';

/** The queue states, in the order the API lists them. */
export const QUEUE_STATES = ['active', 'deferred', 'held', 'quarantined'] as const satisfies readonly QueueState[];

/** A filtered page of the queue (GET /api/v1/queue). */
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

/** A queued message with the metadata the API shows (present on stores with message metadata). */
export type ApiQueuedMessage = QueuedMessage & {
  readonly messageId?: string;
  readonly tags?: readonly string[];
  readonly metadata?: Readonly<Record<string, string>>;
};

/** The store calls the API makes (a subset of QueueStore). */
export interface ApiStore {
  /** Paged, filtered summaries, in queue ID order. */
  listPage(q: QueuePageQuery): Promise<{ items: QueueSummary[]; next?: string }>;
  /** Messages by state. */
  countByState(): Promise<Record<QueueState, number>>;
  /** Events in id order matching `q`. */
  readEvents(q: EventQuery): Promise<StoredEvent[]>;
  /** Metadata of one message, or undefined when it is not (or no longer) queued. */
  get(id: string): Promise<ApiQueuedMessage | undefined>;
  /** Free bytes on the store's filesystem (free-space reserve, limits.minFreeBytes). */
  freeBytes(): Promise<number>;
}
