/**
 * The suppression list (issue 10 section 4): addresses Postline does not send to, per sending
 * domain or for every sender, with why, from what and since when.
 *
 * Owns the value types and the `SuppressionStore` interface. Every backend passes one conformance
 * suite (test/conformance/suppression-store.ts). The embedded backend lives beside the queue in
 * queue.db (src/spool/sqlite/suppression-store.ts): its writes go through the queue store's writer
 * thread, so each change is committed with its event (outbox) and, for the feeder, with its cursor.
 *
 * Keys, as stored (address.ts makes them):
 *   - scope: the sending domain, lower-case A-label ("example.com"), or '*' for every sender;
 *   - address: the recipient in lower case with an A-label domain ("bob@example.net"), or a whole
 *     domain as '*@example.net'.
 */
import type { StoredEvent } from '../events/record.js';

/** Why an address is on the list. */
export const SUPPRESSION_REASONS = ['hard-bounce', 'soft-bounce', 'complaint', 'unsubscribe', 'manual'] as const;
export type SuppressionReason = (typeof SUPPRESSION_REASONS)[number];

/** The reasons a successful delivery clears (the mailbox works again). */
export const BOUNCE_REASONS: readonly SuppressionReason[] = ['hard-bounce', 'soft-bounce'];

/** The scope of entries for every sender. */
export const ALL_SENDERS = '*';

/** One entry of the list. Times are ms since epoch. */
export interface Suppression {
  /** The sending domain (A-label, lower case) or '*' for every sender. */
  readonly scope: string;
  /** The recipient (lower case, A-label domain) or '*@domain' for a whole domain. */
  readonly address: string;
  readonly reason: SuppressionReason;
  /** What added it: the id of the event (decimal) for automatic adds, else 'operator', 'api' or 'import'. */
  readonly source: string;
  /** Free text: the remote reply of a bounce, the operator's note. */
  readonly description?: string;
  readonly createdAt: number;
  /** After this time the entry no longer applies (absent: until removed). */
  readonly expiresAt?: number;
}

/**
 * How an add treats an entry already there (one that has expired is always replaced):
 * - `insert`: keeps it;
 * - `upgrade`: replaces it only with a stronger reason (soft-bounce < hard-bounce < complaint,
 *   unsubscribe, manual), so a complaint is not cleared later by a delivery as a bounce would be;
 * - `replace`: replaces it (operator and API adds).
 */
export type SuppressionAddMode = 'insert' | 'upgrade' | 'replace';

/** Event fields copied into the event of a change (the message the triggering event was about). */
export type SuppressionEventContext = Pick<StoredEvent, 'mailFrom' | 'messageId' | 'tags' | 'metadata' | 'origin' | 'reply' | 'dsn'>;

/** One entry to add. */
export interface SuppressionAdd {
  readonly entry: Suppression;
  readonly mode: SuppressionAddMode;
  readonly context?: SuppressionEventContext;
}

/** One entry to remove. */
export interface SuppressionRemove {
  readonly scope: string;
  readonly address: string;
  /** Remove only an entry with one of these reasons (a delivery clears bounces only); absent: any. */
  readonly onlyReasons?: readonly SuppressionReason[];
  /** Who removed it: 'operator', 'api', or the id of the event (decimal) of a successful delivery. */
  readonly source: string;
  readonly context?: SuppressionEventContext;
}

/** Soft bounces in a row of one recipient in one scope; 0 forgets the count. */
export interface SoftBounceCount {
  readonly scope: string;
  readonly address: string;
  readonly count: number;
}

/**
 * One write, in ONE commit: the adds (each with its `recipient.suppressed` event), the removes
 * (each with its `suppression.removed` event), soft-bounce counts, and a reader's cursor. A change
 * that does nothing (an add `insert` over an entry, a remove of no entry) writes no event.
 */
export interface SuppressionWrite {
  /** ms since epoch: the time of the events, and "now" for expiry. */
  readonly at: number;
  readonly add?: readonly SuppressionAdd[];
  readonly remove?: readonly SuppressionRemove[];
  readonly softBounces?: readonly SoftBounceCount[];
  /** Moves a named reader's cursor forward (never back) in the same commit. */
  readonly cursor?: { readonly name: string; readonly id: number };
  /** Make the commit durable before resolving (operator and API changes); default false (a lost write is replayed from the cursor). */
  readonly durable?: boolean;
}

/** What a write changed: the entries added or replaced, the entries removed (as they were), and the events written. */
export interface SuppressionWriteResult {
  readonly added: readonly Suppression[];
  readonly removed: readonly Suppression[];
  readonly events: readonly StoredEvent[];
}

/** A filtered page of the list, ordered by address then scope. */
export interface SuppressionQuery {
  readonly scope?: string;
  readonly reason?: SuppressionReason;
  /** Only addresses starting with this (lower case). */
  readonly addressPrefix?: string;
  /** Only addresses in this domain (A-label), its '*@domain' entry included. */
  readonly domain?: string;
  /** Cursor: the `next` of the previous page. */
  readonly after?: string;
  /** 1..1000. */
  readonly limit: number;
  /** Include entries whose expiresAt has passed (default false). */
  readonly expired?: boolean;
  /** "now" for expiry, ms (default the clock's). */
  readonly now?: number;
}

export interface SuppressionPage {
  readonly items: Suppression[];
  /** Cursor of the next page, when there may be one. */
  readonly next?: string;
}

/**
 * Storage of the suppression list. Writes throw the backend's StoreError; reads of a closed store
 * throw too.
 */
export interface SuppressionStore {
  /**
   * The entry that suppresses mail from `senderScope` ('*' or undefined: only entries for every
   * sender apply) to `address` at `now`: the exact address or its '*@domain', in the sender's scope
   * or '*'. Synchronous: it runs per recipient on the SMTP and API paths, so a backend answers from
   * memory or a local connection. `address` is normalised (address.ts); expired entries never match.
   */
  check(senderScope: string | undefined, address: string, now: number): Suppression | undefined;
  /** One entry by its key (expired ones included), or undefined. */
  get(scope: string, address: string): Promise<Suppression | undefined>;
  /** A page of entries (query above). */
  list(q: SuppressionQuery): Promise<SuppressionPage>;
  /** Applies one write in one commit (see SuppressionWrite). */
  write(w: SuppressionWrite): Promise<SuppressionWriteResult>;
  /** Soft bounces in a row recorded for (scope, address); 0 when none. */
  softBounces(scope: string, address: string): Promise<number>;
  /** A reader's cursor (0 when it has none). */
  cursor(name: string): Promise<number>;
}
