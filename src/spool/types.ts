/**
 * The QueueStore interface: the one boundary between Postline and where queued mail lives.
 *
 * The embedded default is SQLite, with small bodies inline and a file per large body (src/spool/sqlite/); a PostgreSQL
 * store for clusters will implement the same interface. No SQL or file layout leaks past here.
 *
 * Ownership (DESIGN.md): cleanup is the only caller of `createBody` / `commit`; the scheduler is the
 * only writer of queue state (`updateRecipients`, `setNextAttempt`, `setHold`, `remove`,
 * `quarantine`). Everyone else reads.
 */
import type { Readable, Writable } from 'node:stream';
import type { BodyType, DsnNotify, DsnRet, OriginalRecipient } from '../core/envelope.js';

/** Delivery status of one recipient of a queued message. */
export type RecipientStatus = 'pending' | 'delivered' | 'relayed' | 'bounced' | 'expired';

/** One recipient as stored. */
export interface QueuedRecipient {
  /** Index within the message (0-based, stable). */
  readonly idx: number;
  readonly address: string;
  readonly notify?: readonly DsnNotify[];
  readonly orcpt?: OriginalRecipient;
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

/** Where a message came from, for Received headers, logs and policy. */
export interface MessageOrigin {
  /** 'smtp' | 'dsn' (generated bounce) | 'api' (later). */
  readonly kind: 'smtp' | 'dsn' | 'api';
  readonly clientAddress?: string;
  readonly clientName?: string; // HELO/EHLO name
  readonly authUser?: string;
  readonly listener?: string;
}

/** A message in the queue (metadata only; the body is read with `openBody`). */
export interface QueuedMessage {
  readonly id: string;
  readonly mailFrom: string;
  readonly bodyType: BodyType;
  readonly smtputf8: boolean;
  /**
   * SMTPUTF8 mail only: true when the header section holds non-ASCII (UTF-8, RFC 6532) bytes, set
   * by cleanup when the message is received. Absent means unknown (older rows, other writers):
   * delivery then assumes UTF-8 for SMTPUTF8 mail. Always false or absent without `smtputf8`.
   */
  readonly utf8Headers?: boolean;
  readonly ret?: DsnRet;
  readonly envid?: string;
  /** Body size in bytes as stored (CRLF line endings, unstuffed, with our Received header). */
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
  /** Last reason the message was deferred, for `queue list`. */
  lastError?: string;
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
export interface NewMessage {
  readonly id: string;
  readonly mailFrom: string;
  readonly bodyType: BodyType;
  readonly smtputf8: boolean;
  /**
   * SMTPUTF8 mail only: true when the header section holds non-ASCII (UTF-8, RFC 6532) bytes, set
   * by cleanup when the message is received. Absent means unknown (older rows, other writers):
   * delivery then assumes UTF-8 for SMTPUTF8 mail. Always false or absent without `smtputf8`.
   */
  readonly utf8Headers?: boolean;
  readonly ret?: DsnRet;
  readonly envid?: string;
  readonly origin: MessageOrigin;
  readonly recipients: readonly { address: string; notify?: readonly DsnNotify[]; orcpt?: OriginalRecipient }[];
  readonly arrivedAt: number;
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
  commit(msg: NewMessage, body: BodyWriter): Promise<QueuedMessage>;

  /** Opens the stored body for reading. Throws StoreError when it is missing or unreadable. */
  openBody(id: string): Readable;
  /** Metadata of one message, or undefined. */
  get(id: string): Promise<QueuedMessage | undefined>;
  /** Every message that still has a pending recipient or an owed DSN (held ones included), oldest first. Corrupt entries are quarantined, never thrown. */
  loadAll(): Promise<QueuedMessage[]>;
  /** Summaries for `queue list`. */
  list(): Promise<QueueSummary[]>;

  /** Scheduler only: records recipient outcomes and the next attempt time in one commit. */
  updateRecipients(id: string, updates: readonly RecipientUpdate[], next: { attempts: number; nextAttemptAt: number; lastError?: string }): Promise<void>;
  /** Scheduler only: moves the next attempt time (flush = now). */
  setNextAttempt(id: string, nextAttemptAt: number): Promise<void>;
  /** Scheduler only: hold or release. */
  setHold(id: string, held: boolean): Promise<void>;
  /** Scheduler only: deletes a message and its body (all recipients final, or `queue delete`). */
  remove(id: string): Promise<void>;
  /** Moves a damaged entry aside (body file to quarantine/, row marked) with a reason. */
  quarantine(id: string, reason: string): Promise<void>;

  /** Free bytes on the store's filesystem (for the free-space reserve check). */
  freeBytes(): Promise<number>;
}
