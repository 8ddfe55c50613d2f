/**
 * What the HTTP API reads from the queue store: a narrow slice of `QueueStore` (spool/types.ts),
 * so the API depends on nothing more. The real store satisfies it; tests may pass a small double.
 */
import type { QueuedMessage, QueueState, QueueStore } from '../spool/types.js';

export type { QueuePageQuery, QueueState } from '../spool/types.js';

/** The queue states, in the order the API lists them. */
export const QUEUE_STATES = ['active', 'deferred', 'held', 'quarantined'] as const satisfies readonly QueueState[];

/** A queued message as the API shows it (with its Message-ID, tags and metadata). */
export type ApiQueuedMessage = QueuedMessage;

/**
 * The store calls the API makes: listPage (paged, filtered summaries in queue ID order),
 * countByState, readEvents (the event log), lastEventId (its newest id, 0 when empty), get (one message, undefined once it left the queue),
 * freeBytes (the free-space reserve, limits.minFreeBytes).
 */
export type ApiStore = Pick<QueueStore, 'listPage' | 'countByState' | 'readEvents' | 'lastEventId' | 'get' | 'freeBytes'>;
