/**
 * The feeder: automatic suppression list changes from the event log (the one stream), with its
 * own durable cursor ('feeder' in suppression_cursors).
 *
 *   recipient.bounced, hard (bounceSeverity below) -> hard-bounce entry
 *   recipient.bounced, soft; recipient.expired     -> one more soft bounce in a row; at
 *                                                     suppression.softBounceLimit (0: never) a soft-bounce entry
 *   recipient.delivered / relayed                  -> the count starts again, and a hard-bounce or
 *                                                     soft-bounce entry of that scope and address is removed
 *   recipient.complained / unsubscribed            -> complaint / unsubscribe entry (replaces a bounce entry)
 *
 * Scope: suppression.scope sender-domain puts an entry under the bounced message's sender domain
 * (mail with the null sender, our own DSNs, adds nothing; an unsubscribe under the `scope` its
 * event names, the sender domain of its link), global under '*'. A page of events is
 * reduced to its net effect per (scope, address) and written in ONE commit with the cursor past
 * it (SuppressionStore.write), so a crash replays the page from the old cursor and old counts:
 * nothing is counted twice, nothing is lost. Pages that change nothing move the stored cursor at
 * most every cursorFlushMs (a replay of them changes nothing either).
 */
import { systemClock, type Clock } from '../core/clock.js';
import type { Logger } from '../core/log.js';
import type { SuppressionConfig } from '../config/suppression-schema.js';
import type { EventQuery, StoredEvent } from '../events/record.js';
import { CLASS_SEVERITY, isBounceClass, type BounceSeverity } from '../feedback/classes.js';
import { recipientKey, scopeKey, senderScope } from './address.js';
import { ALL_SENDERS, BOUNCE_REASONS, type SoftBounceCount, type Suppression, type SuppressionAdd, type SuppressionReason, type SuppressionRemove, type SuppressionStore } from './types.js';

/** The event log, as the feeder reads it (QueueStore.readEvents / lastEventId). */
export interface FeedSource {
  readEvents(q: EventQuery): Promise<StoredEvent[]>;
  lastEventId(): Promise<number>;
}

export interface FeederDeps {
  readonly source: FeedSource;
  readonly store: SuppressionStore;
  /** The running configuration: `suppression` is read at each page (live on SIGHUP). */
  readonly config: { readonly suppression: SuppressionConfig };
  readonly logger: Logger;
  readonly clock?: Clock;
  /** Events per page (default 500). */
  readonly pageSize?: number;
  /** Without a wake-up, the log is read again after this long, ms (default 1000). */
  readonly pollMs?: number;
  /** A cursor of pages without changes is stored at most this often, ms (default 1000). */
  readonly cursorFlushMs?: number;
}

/** The feeder's cursor name. */
export const FEEDER_CURSOR = 'feeder';

/** The event types the feeder reads. */
export const FEED_TYPES = ['recipient.bounced', 'recipient.expired', 'recipient.delivered', 'recipient.relayed', 'recipient.complained', 'recipient.unsubscribed'] as const;

/**
 * How a recipient.bounced event counts: by its bounce class (src/feedback/classes.ts, set by the
 * classifier on every failure since it exists) and that class's severity, InvalidRecipient,
 * BadDomain, InactiveMailbox, RelayingDenied (and Uncategorized: a 5xx that says nothing else)
 * hard, the others soft. An event without a class (older ones, the operator's bounce): a remote
 * 5xx is hard, and so is our own 5.1.x (no such domain, null MX); other local refusals are about
 * the message, not the address: undefined (not counted).
 */
export function bounceSeverity(e: StoredEvent): BounceSeverity | undefined {
  if (isBounceClass(e.bounceClass)) return CLASS_SEVERITY[e.bounceClass];
  const dsn = e.dsn ?? /^\d{3}[ -](\d\.\d{1,3}\.\d{1,3})/.exec(e.reply ?? '')?.[1] ?? '';
  if (!dsn.startsWith('5.')) return undefined;
  if (e.remoteHost !== undefined) return 'hard';
  return dsn.startsWith('5.1.') ? 'hard' : undefined;
}

/** What one event does to one key. */
type Effect = { kind: 'hard' | 'soft' | 'clear' } | { kind: 'report'; reason: SuppressionReason };

function effectOf(e: StoredEvent): Effect | undefined {
  switch (e.type) {
    case 'recipient.bounced': {
      const s = bounceSeverity(e);
      return s ? { kind: s } : undefined;
    }
    case 'recipient.expired': return { kind: 'soft' };
    case 'recipient.delivered': case 'recipient.relayed': return { kind: 'clear' };
    case 'recipient.complained': return { kind: 'report', reason: 'complaint' };
    case 'recipient.unsubscribed': return { kind: 'report', reason: 'unsubscribe' };
    default: return undefined;
  }
}

const RANK: Record<SuppressionReason, number> = { 'soft-bounce': 1, 'hard-bounce': 2, complaint: 3, unsubscribe: 3, manual: 3 };

/** The state of one (scope, address) while a page is reduced. */
interface KeyState {
  readonly scope: string;
  readonly address: string;
  /** The committed entry (an expired one counts as none) and soft count, as read. */
  readonly initial: Suppression | undefined;
  readonly initialSoft: number;
  /** What the page makes of them. */
  entry: Suppression | undefined;
  soft: number;
  /** The event that set `entry`, or that cleared the initial one. */
  by?: StoredEvent;
}

export class SuppressionFeeder {
  private readonly clock: Clock;
  private readonly pageSize: number;
  private readonly pollMs: number;
  private readonly flushMs: number;
  private cursor = 0;
  private storedCursor = 0;
  private storedAt = 0;
  private stopped = false;
  private loop: Promise<void> | undefined;
  private wakeUp: (() => void) | undefined;
  private woken = false;
  private lastError = 0;
  /** The stored cursor was read. */
  private loaded = false;

  constructor(private readonly deps: FeederDeps) {
    this.clock = deps.clock ?? systemClock;
    this.pageSize = Math.max(1, deps.pageSize ?? 500);
    this.pollMs = Math.max(10, deps.pollMs ?? 1000);
    this.flushMs = Math.max(0, deps.cursorFlushMs ?? 1000);
  }

  /** Starts the loop (returns at once; it loads its cursor first). */
  start(): void {
    this.loop ??= this.run();
  }

  /** Events were committed: read them soon. Never throws, never waits. */
  wake(): void {
    this.woken = true;
    this.wakeUp?.();
  }

  /** Stops the loop after the page in progress and stores the cursor. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake();
    await this.loop;
  }

  /** The cursor in memory (the last event id read). */
  position(): number {
    return this.cursor;
  }

  /**
   * Reads and applies one page after the cursor. @returns the events of the page (the loop reads
   * the next page at once when it was full). @throws the store's errors (the cursor then stays).
   */
  async step(): Promise<number> {
    if (!this.loaded) {
      this.cursor = this.storedCursor = await this.deps.store.cursor(FEEDER_CURSOR);
      this.loaded = true;
    }
    const last = await this.deps.source.lastEventId();
    if (last <= this.cursor) return 0;
    const events = await this.deps.source.readEvents({ after: this.cursor, types: [...FEED_TYPES], limit: this.pageSize });
    // A short page read everything up to `last` (read first): the cursor may move past the other types too.
    const next = events.length >= this.pageSize ? events[events.length - 1]!.id : Math.max(last, events[events.length - 1]?.id ?? 0);
    const states = await this.reduce(events);
    const now = this.clock.now();
    const add: SuppressionAdd[] = [];
    const remove: SuppressionRemove[] = [];
    const softBounces: SoftBounceCount[] = [];
    for (const s of states.values()) {
      if (s.soft !== s.initialSoft) softBounces.push({ scope: s.scope, address: s.address, count: s.soft });
      if (s.entry && s.entry !== s.initial) add.push({ entry: s.entry, mode: 'upgrade', ...(s.by ? { context: contextOf(s.by) } : {}) });
      else if (!s.entry && s.initial) remove.push({ scope: s.scope, address: s.address, onlyReasons: BOUNCE_REASONS, source: String(s.by?.id ?? 'feeder'), ...(s.by ? { context: contextOf(s.by) } : {}) });
    }
    if (add.length || remove.length || softBounces.length || (next > this.storedCursor && now - this.storedAt >= this.flushMs)) {
      const r = await this.deps.store.write({ at: now, add, remove, softBounces, cursor: { name: FEEDER_CURSOR, id: next } });
      this.storedCursor = next;
      this.storedAt = now;
      for (const e of r.added) this.deps.logger.info({ recipient: e.address, scope: e.scope, reason: e.reason, source: e.source }, 'recipient suppressed');
      for (const e of r.removed) this.deps.logger.info({ recipient: e.address, scope: e.scope, reason: e.reason }, 'suppression cleared by a delivery');
    }
    this.cursor = next;
    return events.length;
  }

  /** The net effect of a page per (scope, address), starting from the committed entries and counts. */
  private async reduce(events: readonly StoredEvent[]): Promise<Map<string, KeyState>> {
    const c = this.deps.config.suppression;
    const states = new Map<string, KeyState>();
    const now = this.clock.now();
    for (const e of events) {
      const effect = effectOf(e);
      const address = e.recipient !== undefined ? recipientKey(e.recipient) : undefined;
      if (!effect || !address) continue;
      // A report may name its scope (recipient.unsubscribed: the sender domain of the link's token).
      const sender = (effect.kind === 'report' ? reportScope(e) : undefined) ?? senderScope(e.mailFrom);
      // Bounces of mail with the null sender (our DSNs) say nothing about a subscriber.
      if (effect.kind !== 'report' && sender === undefined) continue;
      const scope = c.scope === 'global' ? ALL_SENDERS : sender ?? ALL_SENDERS;
      const k = `${scope}\0${address}`;
      let s = states.get(k);
      if (!s) {
        const stored = await this.deps.store.get(scope, address);
        const initial = stored && (stored.expiresAt === undefined || stored.expiresAt > now) ? stored : undefined;
        const soft = await this.deps.store.softBounces(scope, address);
        s = { scope, address, initial, initialSoft: soft, entry: initial, soft };
        states.set(k, s);
      }
      apply(s, e, effect, c.softBounceLimit, now);
    }
    return states;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      let n = 0;
      this.woken = false;
      if (this.deps.config.suppression.enabled) {
        try {
          n = await this.step();
        } catch (err) {
          const now = this.clock.now();
          if (now - this.lastError > 60_000) this.deps.logger.warn({ err }, 'suppression feeder: cannot apply the event log; trying again');
          this.lastError = now;
        }
      }
      if (n < this.pageSize && !this.stopped && !this.woken) await this.idle();
    }
    if (this.cursor > this.storedCursor) {
      await this.deps.store.write({ at: this.clock.now(), cursor: { name: FEEDER_CURSOR, id: this.cursor } }).catch((err: unknown) => this.deps.logger.warn({ err }, 'suppression feeder: cannot store its cursor'));
    }
  }

  /** Waits for wake() or pollMs. */
  private idle(): Promise<void> {
    return new Promise<void>((resolve) => {
      const t = setTimeout(done, this.pollMs);
      t.unref();
      function done(): void { clearTimeout(t); resolve(); }
      this.wakeUp = () => { this.wakeUp = undefined; done(); };
    });
  }
}

/** One event's effect on the state of its key. */
function apply(s: KeyState, e: StoredEvent, effect: Effect, softLimit: number, now: number): void {
  const make = (reason: SuppressionReason): Suppression => ({
    scope: s.scope, address: s.address, reason, source: String(e.id), createdAt: now,
    ...(e.reply !== undefined && reason !== 'complaint' && reason !== 'unsubscribe' ? { description: e.reply.slice(0, 500) } : {}),
  });
  switch (effect.kind) {
    case 'hard':
      s.soft = 0;
      if (!s.entry || RANK[s.entry.reason] < RANK['hard-bounce']) { s.entry = make('hard-bounce'); s.by = e; }
      return;
    case 'soft':
      if (s.entry) return; // suppressed already: nothing to count
      s.soft++;
      if (softLimit > 0 && s.soft >= softLimit) {
        s.entry = make('soft-bounce');
        s.by = e;
        s.soft = 0;
      }
      return;
    case 'clear':
      s.soft = 0;
      if (s.entry && BOUNCE_REASONS.includes(s.entry.reason)) { s.entry = undefined; s.by = e; }
      return;
    case 'report':
      s.soft = 0;
      if (!s.entry || RANK[s.entry.reason] < RANK[effect.reason]) { s.entry = make(effect.reason); s.by = e; }
  }
}

/** The scope a complaint or unsubscribe event names (`scope`: a sending domain or '*'), when it is a usable one. */
function reportScope(e: StoredEvent): string | undefined {
  if (!e.scope) return undefined;
  try {
    return scopeKey(e.scope);
  } catch {
    return undefined;
  }
}

/** The fields of the triggering event copied into the change's event. */
function contextOf(e: StoredEvent): NonNullable<SuppressionAdd['context']> {
  return {
    ...(e.mailFrom !== undefined ? { mailFrom: e.mailFrom } : {}),
    ...(e.messageId !== undefined ? { messageId: e.messageId } : {}),
    ...(e.tags !== undefined ? { tags: e.tags } : {}),
    ...(e.metadata !== undefined ? { metadata: e.metadata } : {}),
    ...(e.origin !== undefined ? { origin: e.origin } : {}),
    ...(e.reply !== undefined ? { reply: e.reply } : {}),
    ...(e.dsn !== undefined ? { dsn: e.dsn } : {}),
  };
}
