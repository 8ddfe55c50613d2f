/**
 * Typed events: past-tense records of every queue state change, emitted once by whoever made the
 * change. Logs, metrics, webhooks and the dashboard subscribe; none of them change state.
 */

interface Base {
  /** ms since epoch. */
  readonly at: number;
  readonly queueId: string;
}

/** A message was committed to the queue (cleanup). */
export interface MessageQueued extends Base {
  readonly type: 'message.queued';
  readonly mailFrom: string;
  readonly recipients: readonly string[];
  readonly size: number;
  readonly origin: { kind: string; clientAddress?: string; clientName?: string; authUser?: string; listener?: string };
  readonly messageId?: string;
}

/** One recipient's delivery attempt ended (scheduler). status follows Postfix's maillog words. */
export interface RecipientOutcome extends Base {
  readonly type: 'recipient.delivered' | 'recipient.relayed' | 'recipient.deferred' | 'recipient.bounced' | 'recipient.expired';
  readonly mailFrom: string;
  readonly recipient: string;
  /** Remote MTA "host[addr]:port" when any. */
  readonly relay?: string;
  /** ms from arrival to this outcome. */
  readonly delayMs: number;
  /** Enhanced status code ("2.0.0", "4.4.1", "5.1.1"). */
  readonly dsn: string;
  /** Remote reply or our reason, one line. */
  readonly reply: string;
  readonly attempt: number;
}

/** All recipients are final and the message left the queue (scheduler). */
export interface MessageRemoved extends Base {
  readonly type: 'message.removed';
  readonly reason: 'done' | 'deleted';
}

/** A damaged queue entry was moved aside (store / scheduler). */
export interface MessageQuarantined extends Base {
  readonly type: 'message.quarantined';
  readonly reason: string;
}

/** A DSN (bounce, delay or success notice) was queued about `queueId` as `dsnQueueId` (scheduler). */
export interface DsnQueued extends Base {
  readonly type: 'dsn.queued';
  readonly dsnQueueId: string;
  readonly kind: 'failure' | 'delay' | 'success';
  readonly to: string;
}

/** A DSN could not be sent anywhere (bounce of a bounce with no postmaster route) and was dropped. */
export interface DsnDropped extends Base {
  readonly type: 'dsn.dropped';
  readonly reason: string;
}

/** A message was held or released, or flushed by an operator (scheduler). */
export interface MessageAdmin extends Base {
  readonly type: 'message.held' | 'message.released' | 'message.flushed';
}

export type PostlineEvent =
  | MessageQueued
  | RecipientOutcome
  | MessageRemoved
  | MessageQuarantined
  | DsnQueued
  | DsnDropped
  | MessageAdmin;

export type EventType = PostlineEvent['type'];
