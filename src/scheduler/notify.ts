/**
 * Delivery status notifications: when the scheduler owes the sender a DSN and where it goes
 * (RFC 3461 NOTIFY / RET, RFC 3464 report fields, RFC 5321 6.1 / 3.6.3 on bounces of bounces).
 *
 * The scheduler decides; the RFC 3464 message itself is written by src/bounce/dsn.ts (injected as
 * `dsn.build`) and queued through cleanup (`dsn.inject`). This module owns the NOTIFY defaults
 * (absent = FAILURE only, RFC 3461 5.2.1), the success rule (none when the agent passed NOTIFY on to a
 * hop with DSN, RFC 3461 5.2.2: `successOwed`), the RET defaults (absent: full message for failures,
 * headers for delay and success notices, as Postfix does) and the double-bounce rule: a DSN is
 * never sent to the null reverse-path; it goes to the postmaster or is dropped, and a failed
 * double bounce to the postmaster is always dropped so it cannot loop.
 *
 * Failure and success DSNs are never lost to a crash: the round writes the final outcome and a
 * "DSN owed" mark in one commit; `sendOwed` queues the DSN and only then clears the mark. A crash
 * in between sends the DSN again after the restart (a duplicate at worst, never a loss).
 */
import type { DsnAction, DsnInput, DsnRecipientReport } from '../bounce/types.js';
import { postmasterAddress, type PostlineConfig } from '../config/schema.js';
import type { Clock } from '../core/clock.js';
import { crashPoint } from '../core/crashpoints.js';
import type { DsnKind, DsnNotify, DsnRet, Envelope } from '../core/envelope.js';
import type { Logger } from '../core/log.js';
import type { EventRecord } from '../events/record.js';
import type { DsnOwed, QueuedMessage, QueuedRecipient, QueueStore, RecipientUpdate } from '../spool/types.js';
import { readHeaders, readWhole } from './body.js';
import { aboutMessage, queueLifetimeMs, type RoundResult } from './round.js';

/** What the scheduler needs to build and queue a DSN (main.ts wires the builder and cleanup). */
export interface DsnPort {
  /** Writes the RFC 3464 multipart/report message (CRLF lines). */
  build(input: DsnInput): Buffer;
  /**
   * Queues a generated message through cleanup; resolves with its queue ID. `events` are written
   * in the same commit (the 'dsn.queued' about the original; cleanup fills in its dsnQueueId).
   */
  inject(envelope: Envelope, body: Buffer, events: readonly EventRecord[]): Promise<string>;
}

/** One recipient to report in a DSN, with the facts of its last attempt. */
export interface ReportItem {
  readonly recipient: QueuedRecipient;
  readonly action: DsnAction;
  /** Enhanced status code ("5.1.1", "4.4.7", "2.0.0"). */
  readonly status: string;
  readonly diagnostic?: string;
  readonly remote?: boolean;
  /** As the agent gives it: "mx.example.com[192.0.2.1]:25". */
  readonly remoteMta?: string;
  /** ms since epoch. */
  readonly lastAttemptAt?: number;
  /** ms since epoch (delay notices). */
  readonly willRetryUntil?: number;
}

/** Originals larger than this (bytes) are returned as headers only, even with RET=FULL. */
export const MAX_FULL_RETURN_BYTES = 10 * 1024 * 1024;

/**
 * True when a recipient's NOTIFY asks for a DSN of `kind` (RFC 3461 4.1). Absent NOTIFY means
 * FAILURE only (RFC 3461 5.2.1 default behaviour); NEVER suppresses every kind.
 */
export function notifyWants(notify: readonly DsnNotify[] | undefined, kind: DsnKind): boolean {
  if (!notify || notify.length === 0) return kind === 'failure';
  if (notify.includes('NEVER')) return false;
  return notify.includes(kind === 'failure' ? 'FAILURE' : kind === 'delay' ? 'DELAY' : 'SUCCESS');
}

/**
 * True when a recipient whose delivery gave `result` is owed a success DSN from us: it asked
 * NOTIFY=SUCCESS and the agent did not pass the NOTIFY on to a next hop that offers DSN (that hop
 * reports; a relay to a DSN-capable hop issues no notice of its own, RFC 3461 5.2.2).
 */
export function successOwed(notify: readonly DsnNotify[] | undefined, result: { readonly dsnPassedOn?: boolean }): boolean {
  return notifyWants(notify, 'success') && result.dsnPassedOn !== true;
}

/** RET for a DSN of `kind` (RFC 3461 4.3): explicit RET wins; absent: FULL for failures, HDRS otherwise. */
export function retFor(ret: DsnRet | undefined, kind: DsnKind): DsnRet {
  return ret ?? (kind === 'failure' ? 'FULL' : 'HDRS');
}

/** Where a DSN goes, or why it is dropped. */
export type DsnRoute = { readonly to: string } | { readonly drop: string };

/**
 * Chooses the DSN recipient: the original reverse-path; for mail with the null reverse-path
 * (a bounce), failures go to the postmaster unless delivery.doubleBounce is 'drop', and a failing
 * message addressed to the postmaster itself is dropped (no loop). Delay and success notices
 * about null-sender mail are always dropped.
 */
export function dsnRoute(msg: Pick<QueuedMessage, 'mailFrom'>, kind: DsnKind, items: readonly ReportItem[], config: PostlineConfig): DsnRoute {
  if (msg.mailFrom !== '') return { to: msg.mailFrom };
  if (kind !== 'failure') return { drop: `no ${kind} notice for mail with a null reverse-path` };
  if (config.delivery.doubleBounce === 'drop') return { drop: 'undeliverable bounce dropped (delivery.doubleBounce=drop)' };
  const pm = postmasterAddress(config).toLowerCase();
  if (items.some((i) => i.recipient.address.toLowerCase() === pm)) {
    return { drop: 'undeliverable bounce to the postmaster dropped (no loop)' };
  }
  return { to: postmasterAddress(config) };
}

/** "mx.example.com[192.0.2.1]:25" -> "mx.example.com"; "[192.0.2.1]:25" -> "192.0.2.1". */
export function remoteMtaName(s: string | undefined): string | undefined {
  if (!s) return undefined;
  const m = /^([^[\s]*)\[([^\]]*)\]/.exec(s);
  if (!m) return s;
  return m[1] || m[2] || undefined;
}

function receivedFromMta(msg: QueuedMessage): string | undefined {
  const o = msg.origin;
  if (o.kind !== 'smtp' || !o.clientName) return undefined;
  return `dns; ${o.clientName}${o.clientAddress ? ` (${o.clientAddress})` : ''}`;
}

function toReport(i: ReportItem): DsnRecipientReport {
  return {
    finalRecipient: i.recipient.address,
    originalRecipient: i.recipient.orcpt ? { addrType: i.recipient.orcpt.addrType, address: i.recipient.orcpt.address } : undefined,
    action: i.action,
    status: i.status,
    remoteMta: remoteMtaName(i.remoteMta),
    diagnostic: i.diagnostic,
    remote: i.remote,
    lastAttemptAt: i.lastAttemptAt,
    willRetryUntil: i.willRetryUntil,
  };
}

export interface NotifierOptions {
  readonly store: QueueStore;
  readonly dsn: DsnPort;
  readonly config: PostlineConfig;
  readonly logger: Logger;
  readonly clock: Clock;
}

/**
 * What became of one DSN: queued (with its queue ID; its 'dsn.queued' event went in the DSN's own
 * commit), dropped by rule (with the 'dsn.dropped' event for the caller to write with its next
 * state change), or failed (logged; try again later).
 */
export type DsnSendResult =
  | { readonly outcome: 'queued'; readonly dsnQueueId: string }
  | { readonly outcome: 'dropped'; readonly event: EventRecord }
  | { readonly outcome: 'failed' }
  | { readonly outcome: 'none' };

/** A report item rebuilt from a stored recipient (after a restart: no fresher facts in memory). */
export function storedReportItem(r: QueuedRecipient, kind: DsnOwed): ReportItem {
  return {
    recipient: r,
    action: kind === 'failure' ? 'failed' : r.status === 'relayed' ? 'relayed' : 'delivered',
    status: r.dsnStatus ?? (kind === 'failure' ? '5.0.0' : '2.0.0'),
    diagnostic: r.lastReply,
    remote: r.remoteMta !== undefined,
    remoteMta: r.remoteMta,
    lastAttemptAt: r.doneAt,
  };
}

/** Builds and queues DSNs, with their 'dsn.queued' / 'dsn.dropped' events. */
export class Notifier {
  constructor(private readonly o: NotifierOptions) {}

  /**
   * Sends one DSN of `kind` about `items` (recipients of `msg`; callers filter by NOTIFY first).
   * Reads the original from the store (before the message is removed).
   * @returns queued (with the DSN's queue ID), dropped (by rule), failed (logged), or none (no items). Never throws.
   */
  async send(msg: QueuedMessage, kind: DsnKind, items: readonly ReportItem[]): Promise<DsnSendResult> {
    if (items.length === 0) return { outcome: 'none' };
    const now = this.o.clock.now();
    const route = dsnRoute(msg, kind, items, this.o.config);
    if ('drop' in route) {
      this.o.logger.debug({ queueId: msg.id, kind, recipients: items.map((i) => i.recipient.address) }, `DSN dropped: ${route.drop}`);
      return { outcome: 'dropped', event: { type: 'dsn.dropped', at: now, ...aboutMessage(msg), dsnKind: kind, reason: route.drop } };
    }
    try {
      const { ret, original } = await this.original(msg, retFor(msg.ret, kind));
      const input: DsnInput = {
        reportingMta: this.o.config.hostname, to: route.to, queueId: msg.id, envid: msg.envid,
        arrivedAt: msg.arrivedAt, receivedFromMta: receivedFromMta(msg), recipients: items.map(toReport),
        ret, original, smtputf8: msg.smtputf8, now,
      };
      const body = this.o.dsn.build(input);
      const envelope: Envelope = { mailFrom: '', recipients: [{ address: route.to }], bodyType: '8BITMIME', smtputf8: msg.smtputf8 };
      const queued: EventRecord = { type: 'dsn.queued', at: this.o.clock.now(), ...aboutMessage(msg), dsnKind: kind, recipient: route.to };
      const dsnQueueId = await this.o.dsn.inject(envelope, body, [queued]);
      return { outcome: 'queued', dsnQueueId };
    } catch (err) {
      this.o.logger.error({ err, queueId: msg.id, kind, to: route.to }, 'cannot queue DSN; will try again');
      return { outcome: 'failed' };
    }
  }

  /**
   * Sends every failure and success DSN `msg` owes (recipients with `dsnOwed`), one DSN per kind,
   * then clears the marks in ONE store commit (and in `msg`), with the 'dsn.dropped' events and,
   * when `removeWhenDone` and nothing is left to do, the removal of the message. `fresh` holds this
   * round's items by recipient idx (they know whether the reply was remote); others are rebuilt
   * from the stored recipient. A DSN that could not be queued keeps its mark for the next try.
   * @returns settled: nothing is owed any more; removed: the message left the queue. Never throws.
   */
  async sendOwed(msg: QueuedMessage, fresh: ReadonlyMap<number, ReportItem> = new Map(), removeWhenDone = false): Promise<{ settled: boolean; removed: boolean }> {
    let settled = true;
    const cleared: QueuedRecipient[] = [];
    const events: EventRecord[] = [];
    for (const kind of ['failure', 'success'] as const) {
      const owed = msg.recipients.filter((r) => r.dsnOwed === kind);
      if (owed.length === 0) continue;
      crashPoint('dsn-before-queue');
      const res = await this.send(msg, kind, owed.map((r) => fresh.get(r.idx) ?? storedReportItem(r, kind)));
      if (res.outcome === 'failed') { settled = false; continue; }
      crashPoint('dsn-after-queue');
      if (res.outcome === 'dropped') events.push(res.event);
      cleared.push(...owed);
    }
    if (cleared.length === 0) return { settled, removed: false };
    const remove = removeWhenDone && settled && msg.recipients.every((r) => r.status !== 'pending');
    const updates: RecipientUpdate[] = cleared.map((r) => ({ idx: r.idx, status: r.status, dsnOwed: null }));
    try {
      await this.o.store.record(msg.id, { updates, events, remove });
      for (const r of cleared) delete r.dsnOwed;
      return { settled, removed: remove };
    } catch (err) {
      this.o.logger.error({ err, queueId: msg.id }, 'cannot clear the owed-DSN mark (the DSN may be sent again)');
      return { settled: false, removed: false };
    }
  }

  /**
   * After a round: failure and success DSNs for its outcomes (the marks cleared, and the message
   * removed when done and `removeWhenDone`, in one commit), then the delay DSN when one is due.
   * @returns true when the message was removed. Never throws.
   */
  async afterRound(msg: QueuedMessage, res: Pick<RoundResult, 'failures' | 'successes' | 'latest'>, removeWhenDone: boolean): Promise<boolean> {
    const fresh = new Map<number, ReportItem>([...res.failures, ...res.successes].map((i) => [i.recipient.idx, i]));
    if ((await this.sendOwed(msg, fresh, removeWhenDone)).removed) return true;
    const now = this.o.clock.now();
    // Only recipients deferred in this round (not ones whose request was cancelled at shutdown).
    const delayed = this.delayCandidates(msg, now).filter((r) => res.latest.has(r.idx));
    if (delayed.length === 0) return false;
    const until = msg.arrivedAt + queueLifetimeMs(msg, this.o.config);
    const items: ReportItem[] = delayed.map((r) => {
      const l = res.latest.get(r.idx);
      return {
        recipient: r, action: 'delayed', status: l?.dsnStatus ?? r.dsnStatus ?? '4.0.0', diagnostic: l?.diagnostic ?? r.lastReply,
        remote: l?.remote, remoteMta: l?.remoteMta ?? r.remoteMta, lastAttemptAt: l ? now : undefined, willRetryUntil: until,
      };
    });
    const sent = await this.send(msg, 'delay', items);
    if (sent.outcome === 'failed') return false;
    try {
      await this.o.store.record(msg.id, {
        updates: delayed.map((r) => ({ idx: r.idx, status: 'pending', delayNotified: true })),
        events: sent.outcome === 'dropped' ? [sent.event] : [],
      });
      for (const r of delayed) r.delayNotified = true;
    } catch (err) {
      this.o.logger.error({ err, queueId: msg.id }, 'cannot record that a delay DSN was sent');
    }
    return false;
  }

  /** Recipients of `msg` that are owed a delay notice now (NOTIFY=DELAY, waited > delayWarningMs, not yet told). */
  delayCandidates(msg: QueuedMessage, now: number): QueuedRecipient[] {
    const warn = this.o.config.delivery.delayWarningMs;
    if (warn <= 0 || now - msg.arrivedAt < warn) return [];
    return msg.recipients.filter((r) => r.status === 'pending' && !r.delayNotified && notifyWants(r.notify, 'delay'));
  }

  private async original(msg: QueuedMessage, ret: DsnRet): Promise<{ ret: DsnRet; original: Buffer }> {
    try {
      if (ret === 'FULL' && msg.size <= MAX_FULL_RETURN_BYTES) return { ret, original: await readWhole(this.o.store, msg.id) };
      return { ret: 'HDRS', original: await readHeaders(this.o.store, msg.id) };
    } catch (err) {
      this.o.logger.warn({ err, queueId: msg.id }, 'cannot read the original message for a DSN; sending without it');
      return { ret: 'HDRS', original: Buffer.alloc(0) };
    }
  }
}
