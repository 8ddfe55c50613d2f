/**
 * The operator's bulk commands shared by the running scheduler and the offline admin
 * (control/offline.ts): `queue bounce --domain D | --sender S` (which recipients, the one outcome
 * write, its events and DSN items) and the `queue destinations` rows of stored states.
 *
 * A bounce by the operator is a final outcome like any other: recipients become `bounced` with
 * 5.0.0 "message bounced by the administrator", one `recipient.bounced` event each, and the
 * failure DSN mark (RFC 3461 NOTIFY, notify.ts) in the same commit, so the DSN is sent even after a
 * crash; the message leaves the queue when nothing is left to do.
 */
import { PostlineError } from '../core/errors.js';
import type { EventRecord } from '../events/record.js';
import type { OutcomeWrite, QueuedMessage, QueuedRecipient, QueueStore, RecipientUpdate } from '../spool/types.js';
import type { BounceQuery, DestinationStatus } from './admin.js';
import type { Hold } from './destination-holds.js';
import type { DestinationStateRecord } from './destination-store.js';
import type { Clock } from '../core/clock.js';
import { notifyWants, type Notifier, type ReportItem } from './notify.js';
import { aboutMessage, type RoundContext } from './round.js';
import { overlayUnrecorded } from './unrecorded.js';

/** Enhanced status and text of a bounce by the operator (Diagnostic-Code of its DSN). */
export const OPERATOR_BOUNCE = { code: 554, status: '5.0.0', text: 'message bounced by the administrator' } as const;
const DIAGNOSTIC = `${OPERATOR_BOUNCE.code} ${OPERATOR_BOUNCE.status} ${OPERATOR_BOUNCE.text}`;

/** Messages read per page while looking for what to bounce. */
const PAGE = 500;

/** Checks and normalises a bounce query (a domain without its "@", lower case). @throws PostlineError ERR_BAD_QUERY */
export function bounceQuery(q: BounceQuery): BounceQuery {
  const domain = q.domain?.trim().replace(/^@/, '').toLowerCase();
  if (!domain && q.sender === undefined) throw new PostlineError('ERR_BAD_QUERY', 'bounce needs a domain or a sender', { temporary: false });
  return { ...(domain ? { domain } : {}), ...(q.sender !== undefined ? { sender: q.sender } : {}) };
}

/** The pending recipients of `msg` that `q` bounces (none when the sender does not match). */
export function bounceTargets(msg: QueuedMessage, q: BounceQuery): QueuedRecipient[] {
  if (q.sender !== undefined && msg.mailFrom !== q.sender) return [];
  return msg.recipients.filter((r) => r.status === 'pending' && (q.domain === undefined || r.address.slice(r.address.lastIndexOf('@') + 1).toLowerCase() === q.domain));
}

/**
 * The one write of a bounce of `targets` (recipients of `msg`) at `now`, mirrored in `msg`: the
 * outcomes with their DSN marks and events, the next attempt now (an owed DSN is sent by the
 * next round), and the removal when nothing is left (and `mayRemove`: no unwritten outcome of
 * it waits). @returns it with the DSN items by recipient idx.
 */
export function bounceWrite(msg: QueuedMessage, targets: readonly QueuedRecipient[], now: number, mayRemove = true): { write: OutcomeWrite; items: Map<number, ReportItem> } {
  const about = aboutMessage(msg);
  const items = new Map<number, ReportItem>();
  const updates: RecipientUpdate[] = [];
  const events: EventRecord[] = [];
  for (const r of targets) {
    const owed = notifyWants(r.notify, 'failure') ? 'failure' as const : undefined;
    updates.push({ idx: r.idx, status: 'bounced', lastReply: DIAGNOSTIC, dsnStatus: OPERATOR_BOUNCE.status, doneAt: now, ...(owed ? { dsnOwed: owed } : {}) });
    events.push({ type: 'recipient.bounced', at: now, ...about, recipient: r.address, dsn: OPERATOR_BOUNCE.status, reply: DIAGNOSTIC, attempt: msg.attempts, delayMs: Math.max(0, now - msg.arrivedAt) });
    Object.assign(r, { status: 'bounced', lastReply: DIAGNOSTIC, dsnStatus: OPERATOR_BOUNCE.status, doneAt: now });
    if (owed) {
      r.dsnOwed = owed;
      items.set(r.idx, { recipient: r, action: 'failed', status: OPERATOR_BOUNCE.status, diagnostic: DIAGNOSTIC, remote: false, lastAttemptAt: now });
    }
  }
  const remove = mayRemove && msg.recipients.every((r) => r.status !== 'pending' && r.dsnOwed === undefined);
  msg.nextAttemptAt = now;
  return { write: { updates, events, remove, next: { attempts: msg.attempts, nextAttemptAt: now, ...(msg.lastError !== undefined ? { lastError: msg.lastError } : {}) } }, items };
}

/**
 * Calls `fn` with the ID of every message the store lists for `q` (QueueStore.listPage by sender
 * and recipient domain, in queue ID order), a page at a time; `fn` runs for up to 32 at once.
 * Bounded by the queue's size. @throws what listPage or `fn` throws.
 */
export async function forEachMatching(store: Pick<QueueStore, 'listPage'>, q: BounceQuery, fn: (id: string) => Promise<void>): Promise<void> {
  let after: string | undefined;
  for (let pages = 0; pages < 1_000_000; pages++) {
    const page = await store.listPage({
      limit: PAGE, ...(after !== undefined ? { after } : {}),
      ...(q.sender !== undefined ? { sender: q.sender } : {}), ...(q.domain !== undefined ? { recipientDomain: q.domain } : {}),
    });
    for (let i = 0; i < page.items.length; i += 32) await Promise.all(page.items.slice(i, i + 32).map((m) => fn(m.id)));
    if (page.next === undefined) return;
    after = page.next;
  }
}

/** What bounceStored needs: the store, the clock and, in the server, the notifier and the unwritten outcomes. */
export interface BounceDeps {
  readonly store: Pick<QueueStore, 'get' | 'record'>;
  readonly clock: Clock;
  /** Sends the DSNs at once (server); absent: the marks stay and the server sends them at start. */
  readonly notifier?: Pick<Notifier, 'sendOwed'>;
  readonly unrecorded?: RoundContext['unrecorded'];
}

/**
 * Bounces what `q` takes of the stored message `id`: one outcome write (bounceWrite), then its
 * DSNs when a notifier is given (the message removed when nothing is left).
 * @returns whether anything was bounced, whether the message left the queue, and the message.
 * @throws StoreError when the write fails.
 */
export async function bounceStored(d: BounceDeps, id: string, q: BounceQuery): Promise<{ bounced: boolean; removed: boolean; msg?: QueuedMessage }> {
  const msg = await d.store.get(id);
  if (!msg) return { bounced: false, removed: false };
  if (d.unrecorded) overlayUnrecorded({ unrecorded: d.unrecorded }, msg);
  const targets = bounceTargets(msg, q);
  if (targets.length === 0) return { bounced: false, removed: false, msg };
  const canRemove = !d.unrecorded?.has(id);
  const { write, items } = bounceWrite(msg, targets, d.clock.now(), canRemove);
  await d.store.record(id, write);
  const removed = write.remove === true || (d.notifier !== undefined && (await d.notifier.sendOwed(msg, items, canRemove)).removed);
  return { bounced: true, removed, msg };
}

/** A dead destination (destinations.ts) as a `queue destinations` row. */
export function deadStatus(d: { key: string; until: number; reason: string; failures: number }): DestinationStatus {
  return { destination: d.key, state: 'dead', source: 'connection', until: d.until, reason: d.reason, failures: d.failures };
}

/** A stored or in-memory state as a `queue destinations` row. */
export function statusOf(h: DestinationStateRecord | Hold): DestinationStatus {
  return {
    destination: h.destination, state: h.kind === 'suspend' ? 'suspended' : 'throttled', source: h.source, since: h.since,
    ...(h.until !== undefined ? { until: h.until } : {}), reason: h.reason, ...(h.factor !== undefined ? { factor: h.factor } : {}),
  };
}
