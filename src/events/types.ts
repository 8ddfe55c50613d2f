/**
 * The event types (see record.ts for the record, its fields and the outbox rule). The bus carries
 * stored, numbered events: `PostlineEvent` is a `StoredEvent`.
 */
export * from './record.js';
import type { StoredEvent } from './record.js';

/** What the bus carries: an event the store has committed, with its id. */
export type PostlineEvent = StoredEvent;
