/**
 * One delivery round of one message: check the body, group pending recipients by next hop,
 * send one DeliveryRequest per group through the Dispatcher (concurrency caps), and write each
 * group's outcomes with one 'recipient.*' event each to the store in one `record` call (RFC 5321
 * 4.5.4.1 retry, 4.4.7 expiry per RFC 3463), the removal of a finished message in the same commit,
 * and collects what the DSN step (notify.ts) needs. Never throws for one bad message.
 */
import { setMaxListeners } from 'node:events';
import type { PostlineConfig } from '../config/schema.js';
import type { Clock } from '../core/clock.js';
import { crashPoint } from '../core/crashpoints.js';
import { toPostlineError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { DeliveryAgent, RecipientResult } from '../delivery/types.js';
import { egressPathKey, type Egress } from './egress.js';
import { deliverGroup, flowOf, type Group } from './group-delivery.js';
import type { Sites } from './sites.js';
import type { EventRecord, RecipientEventType } from '../events/record.js';
import { classifyReply } from '../feedback/classify.js';
import { isSmtpHop, nextHopKey, type NextHop } from '../routing/types.js';
import type { DsnOwed, QueuedMessage, QueuedRecipient, QueueStore, RecipientStatus, RecipientUpdate } from '../spool/types.js';
import { nextAttemptAt } from './backoff.js';
import { probeBody } from './body.js';
import type { DestinationBook } from './destinations.js';
import { CANCELLED, SHED, type Dispatcher } from './dispatcher.js';
import { notifyWants, successOwed, type ReportItem } from './notify.js';
import { ABORTED, type Shaping } from './shaping.js';

/** Shared parts the round needs (owned by the Scheduler). */
export interface RoundContext {
  readonly store: QueueStore;
  readonly agent: DeliveryAgent;
  readonly route: (address: string) => NextHop;
  /**
   * The per-recipient return path of `msg` toward `hop` (signed VERP, bounce/return-path.ts), or
   * undefined to send with the message's own reverse-path. With one, each recipient goes in a
   * transaction of its own (over the same pooled connection).
   */
  readonly returnPath?: (msg: QueuedMessage, hop: NextHop) => ((idx: number) => string) | undefined;
  readonly dispatcher: Dispatcher;
  /** Sites by MX set (sites.ts): the key of the dispatcher, the dead cache and the agent's pool; absent: the next-hop key. */
  readonly sites?: Sites;
  /** Slow start (concurrency-window.ts): told of each delivery whether it reached its host. */
  readonly windows?: { feedback(key: string, reached: boolean): void };
  /** Egress sources and pools (egress.ts); absent or without pools: deliveries leave as configured in delivery.* */
  readonly egress?: Egress;
  /** Dead destinations and waiting caps (destinations.ts). */
  readonly destinations: DestinationBook;
  /** Per-destination limits, rates, suspensions and throttles (shaping.ts). */
  readonly shaping: Shaping;
  readonly clock: Clock;
  readonly config: PostlineConfig;
  readonly logger: Logger;
  readonly random: () => number;
  /**
   * Final outcomes whose write failed (disk full, I/O error), by queue ID, in order. Those
   * recipients are not delivered again: the scheduler writes these first and, while it cannot,
   * overlays them on the stored state, so a full disk does not turn retries into duplicate
   * deliveries (only a crash before the write can). Other recipients go on as usual.
   */
  readonly unrecorded: Map<string, UnrecordedWrite[]>;
}

/** One failed outcome write (final outcomes only, with their events), kept to be written again. */
export interface UnrecordedWrite {
  readonly updates: readonly RecipientUpdate[];
  readonly next: { attempts: number; nextAttemptAt: number; lastError?: string };
  readonly events: readonly EventRecord[];
}

/** Per-round controls: abort in-flight requests (stop/delete), and whether the message was deleted. */
export interface RoundControl {
  readonly signal: AbortSignal;
  isDeleted(): boolean;
}

export interface RoundResult {
  /** The message was moved aside (unreadable body); nothing else to do. */
  readonly quarantined: boolean;
  /** Bounced or expired recipients that asked for a failure DSN. */
  readonly failures: ReportItem[];
  /** Delivered/relayed recipients that asked for a success DSN. */
  readonly successes: ReportItem[];
  /** The result of each recipient attempted in this round, by idx. */
  readonly latest: Map<number, RecipientResult>;
  /** The message left the queue in the round's last outcome commit (all final, no DSN owed). */
  removed: boolean;
  /**
   * Some groups were not tried (their destination has too much waiting, destinations.ts, or is
   * suspended or rate limited, shaping.ts): try the message again at this time (ms); no attempt
   * was counted for them.
   */
  postponeUntil?: number;
}



/** Queue lifetime of `msg` in ms: bounceQueueLifetimeMs for the null reverse-path, else maxQueueLifetimeMs. */
export function queueLifetimeMs(msg: Pick<QueuedMessage, 'mailFrom'>, config: PostlineConfig): number {
  return msg.mailFrom === '' ? config.delivery.bounceQueueLifetimeMs : config.delivery.maxQueueLifetimeMs;
}

function groupByNextHop(msg: QueuedMessage, route: (a: string) => NextHop): Group[] {
  const groups = new Map<string, Group>();
  for (const r of msg.recipients) {
    if (r.status !== 'pending') continue;
    let hop: NextHop;
    try {
      hop = route(r.address);
    } catch (err) {
      const e = toPostlineError(err);
      const diag = `${e.reply.code} ${e.reply.enhanced ?? ''} cannot route ${r.address}: ${e.message}`.replace(/\s+/g, ' ');
      groups.set(`route-error:${r.idx}`, {
        key: `route-error:${r.idx}`, recipients: [r],
        routeFailure: (x) => ({
          idx: x.idx, outcome: e.temporary ? 'deferred' : 'bounced', code: e.reply.code, dsnStatus: e.reply.enhanced ?? (e.temporary ? '4.3.0' : '5.0.0'), diagnostic: diag, remote: false,
          bounceClass: classifyReply(e.reply.code, e.reply.enhanced, e.message).class,
        }),
      });
      continue;
    }
    const key = nextHopKey(hop);
    const g = groups.get(key);
    if (g) g.recipients.push(r);
    else groups.set(key, { key, hop, recipients: [r] });
  }
  return [...groups.values()];
}

/**
 * The results of a group whose destination is dead (Postfix: "delivery temporarily suspended"),
 * and the message's next attempt no earlier than the destination's next probe (with some spread).
 */
function suspendGroup(ctx: RoundContext, g: Group, attempt: number, state: { nextAt?: number }, s: { reason: string; until: number }): RecipientResult[] {
  const retry = ctx.config.delivery.retry;
  state.nextAt ??= Math.max(nextAttemptAt(ctx.clock.now(), attempt, retry, ctx.random), s.until + Math.floor(ctx.random() * retry.initialMs * 0.1));
  return g.recipients.map((r) => ({ idx: r.idx, outcome: 'deferred', code: 451, dsnStatus: '4.4.1', diagnostic: `delivery temporarily suspended: ${s.reason}`, remote: false, bounceClass: 'NoAnswerFromHost' }));
}

function missingResult(idx: number): RecipientResult {
  return { idx, outcome: 'deferred', code: 451, dsnStatus: '4.3.0', diagnostic: '451 4.3.0 no result from the delivery agent', remote: false, bounceClass: 'TransientFailure' };
}

/** Runs one round for `msg` (mutated in place to mirror what was written). */
export async function runRound(ctx: RoundContext, msg: QueuedMessage, ctl: RoundControl): Promise<RoundResult> {
  const out: RoundResult = { quarantined: false, failures: [], successes: [], latest: new Map(), removed: false };
  const bad = await probeBody(ctx.store, msg.id, msg.size);
  if (bad !== undefined) {
    await quarantine(ctx, msg, bad);
    return { ...out, quarantined: true };
  }
  const attempt = msg.attempts + 1;
  const groups = groupByNextHop(msg, ctx.route);
  const state = { nextAt: undefined as number | undefined, bodyFailure: undefined as string | undefined, open: groups.length };
  let chain: Promise<void> = Promise.resolve();
  const applyLater = (g: Group, results: RecipientResult[] | undefined, durationMs: number): Promise<void> => {
    chain = chain.then(() => {
      state.open--;
      if (results) return applyGroup(ctx, msg, g, results, { attempt, ctl, out, state, durationMs });
    });
    return chain;
  };
  // One abort listener per group's delivery: more than 10 groups must not warn.
  if (groups.length > 3) setMaxListeners(3 * groups.length + 8, ctl.signal); // agent, connect and set-up listeners per group
  await Promise.all(groups.map(async (g) => {
    if (g.routeFailure) return applyLater(g, g.recipients.map(g.routeFailure), 0);
    const started = ctx.clock.now();
    const results = await sendGroup(ctx, msg, g, ctl, { attempt, state, out });
    return applyLater(g, results, ctx.clock.now() - started);
  }));
  await chain;
  if (state.bodyFailure !== undefined && !ctl.isDeleted()) {
    await quarantine(ctx, msg, state.bodyFailure);
    return { ...out, quarantined: true };
  }
  return out;
}

/** A group that got its slot while its dead destination's probe was running. */
const WAIT_FOR_PROBE: unique symbol = Symbol('wait-for-probe');

/**
 * One group through the destination's state and the dispatcher: postponed (no attempt:
 * `out.postponeUntil`) while the destination is suspended (shaping.ts), deferred in place when it
 * is dead (destinations.ts), postponed when it has too much waiting or no rate slot soon, else
 * delivered under the concurrency caps, its outcome fed back (dead or reached, delivery time,
 * throttle patterns). @returns the results to write, or undefined when nothing is to be written
 * (postponed, shed, cancelled at shutdown, aborted).
 */
async function sendGroup(
  ctx: RoundContext, msg: QueuedMessage, g: Group, ctl: RoundControl,
  r: { attempt: number; state: { nextAt?: number; bodyFailure?: string }; out: RoundResult },
): Promise<RecipientResult[] | undefined> {
  const book = ctx.destinations;
  const postponeTo = (until: number): undefined => {
    r.out.postponeUntil = Math.min(r.out.postponeUntil ?? until, until);
    return undefined;
  };
  const postpone = (waiting: number): undefined => postponeTo(ctx.clock.now() + book.postponeMs(site, waiting, ctx.clock.now()));
  // The source of this delivery (egress.ts): its own concurrency slot per destination (the path key).
  const pick = ctx.egress?.enabled && g.hop && isSmtpHop(g.hop)
    ? ctx.egress.pick({ mailFrom: msg.mailFrom, ...(msg.origin?.apiKey !== undefined ? { apiKey: msg.origin.apiKey } : {}), ...(msg.tags ? { tags: msg.tags } : {}) }, ctx.random)
    : undefined;
  if (pick && 'waitUntil' in pick) return postponeTo(pick.waitUntil);
  const source = pick?.source;
  // The site (MX set) is the unit of connections, the dead cache and the waiting guard; with a source, the path.
  const site = ctx.sites ? await ctx.sites.of(g.key, g.hop!) : g.key;
  const path = source ? egressPathKey(site, source.name) : site;
  const rcpt = g.recipients[0]!.address;
  const shaped = await ctx.shaping.resolve(g.key, g.hop!, rcpt.slice(rcpt.lastIndexOf('@') + 1));
  const now = ctx.clock.now();
  const held = ctx.shaping.heldUntil(shaped, msg.id, now);
  if (held !== undefined) return postponeTo(held);
  const adm = book.admit(site, now);
  if (adm.kind === 'suspended') return suspendGroup(ctx, g, r.attempt, r.state, adm);
  if (adm.kind === 'wait') return postponeTo(adm.until);
  const waiting = ctx.dispatcher.waitingFor(path);
  if (adm.kind === 'go' && waiting > 0) {
    // Head-of-line guard: more waiting than the destination can take soon; the excess already
    // waiting is shed too (a host that stopped answering is found within seconds).
    const cap = book.waitingCap(site, now);
    if (waiting >= cap) {
      ctx.dispatcher.shed(path, cap);
      return postpone(waiting);
    }
  }
  const slot = await ctx.shaping.pace(shaped, msg.id, ctl.signal);
  if (slot !== undefined) {
    if (adm.kind === 'probe') book.probeCancelled(site);
    return slot === ABORTED ? undefined : postponeTo(slot);
  }
  let probe = adm.kind === 'probe';
  let suspended = false;
  let began = 0;
  let heldAt: number | undefined;
  const results = await ctx.dispatcher.run(path, async () => {
    // Suspended (a reply pattern, the operator) while this waited for a slot: postponed.
    heldAt = ctx.shaping.heldUntil(shaped, msg.id, ctx.clock.now());
    if (heldAt !== undefined) return WAIT_FOR_PROBE;
    // Marked dead while this waited for a slot: deferred like the others, without connecting.
    const again = adm.kind === 'go' ? book.admit(site, ctx.clock.now()) : adm;
    if (again.kind === 'suspended') {
      suspended = true;
      return suspendGroup(ctx, g, r.attempt, r.state, again);
    }
    if (again.kind === 'wait') return WAIT_FOR_PROBE;
    if (again.kind === 'probe') probe = true;
    began = book.began(site, ctx.clock.now());
    try {
      if (source) ctx.egress!.sent(source.name);
      return await deliverGroup(ctx, msg, g, ctl, r.state, shaped.request, source, site);
    } finally {
      book.ended(site, began, ctx.clock.now());
    }
  }, flowOf(msg));
  if (results === SHED) return postpone(ctx.dispatcher.waitingFor(path));
  if (results === WAIT_FOR_PROBE) {
    if (probe) book.probeCancelled(site);
    return heldAt !== undefined ? postponeTo(heldAt) : postpone(0);
  }
  if (results === CANCELLED || results === undefined) {
    if (probe) book.probeCancelled(site);
    return undefined;
  }
  if (suspended) return results;
  // A "slow down" reply (delivery.throttlePatterns) suspends or throttles; such a host answered: not dead.
  const signalled = ctx.shaping.observe(shaped, results, began);
  const dead = !signalled && results.length > 0 && results.every((x) => x.destination === 'unreachable');
  if (results.length > 0) ctx.windows?.feedback(path, !dead);
  const until = book.report(site, ctx.clock.now(), dead ? { unreachable: true, reason: results[0]!.diagnostic } : { unreachable: false });
  if (until !== undefined) ctx.logger.info({ nextHop: g.key, site, until: new Date(until).toISOString(), reason: results[0]!.diagnostic }, 'destination unreachable; its mail is deferred without connecting until then');
  return results;
}

interface ApplyState {
  readonly attempt: number;
  readonly ctl: RoundControl;
  readonly out: RoundResult;
  /** `open`: groups of this round not yet applied (0: this is the last one). */
  readonly state: { nextAt?: number; open: number; bodyFailure?: string };
  /** How long this group's delivery took, ms. */
  readonly durationMs: number;
}

interface Classified {
  readonly status: RecipientStatus;
  readonly type: RecipientEventType;
  readonly dsn: string;
  readonly reply: string;
}

function classify(ctx: RoundContext, msg: QueuedMessage, r: RecipientResult, now: number, aborted: boolean): Classified {
  if (r.outcome === 'delivered') {
    return r.relayed
      ? { status: 'relayed', type: 'recipient.relayed', dsn: r.dsnStatus, reply: r.diagnostic }
      : { status: 'delivered', type: 'recipient.delivered', dsn: r.dsnStatus, reply: r.diagnostic };
  }
  if (r.outcome === 'bounced') return { status: 'bounced', type: 'recipient.bounced', dsn: r.dsnStatus, reply: r.diagnostic };
  if (!aborted && now - msg.arrivedAt > queueLifetimeMs(msg, ctx.config)) {
    return { status: 'expired', type: 'recipient.expired', dsn: '4.4.7', reply: `message expired; last reply: ${r.diagnostic}` };
  }
  return { status: 'pending', type: 'recipient.deferred', dsn: r.dsnStatus, reply: r.diagnostic };
}

/**
 * The fields every event about `msg` carries (DESIGN.md: metadata copied into its events): queue
 * ID, sender, Message-ID, tags, metadata, and how it came in (kind, listener or API key).
 */
export function aboutMessage(msg: Pick<QueuedMessage, 'id' | 'mailFrom' | 'messageId' | 'tags' | 'metadata'> & { readonly origin?: QueuedMessage['origin'] }): Pick<EventRecord, 'queueId' | 'mailFrom' | 'messageId' | 'tags' | 'metadata' | 'origin'> {
  const o = msg.origin;
  return {
    queueId: msg.id, mailFrom: msg.mailFrom,
    ...(msg.messageId !== undefined ? { messageId: msg.messageId } : {}),
    ...(msg.tags !== undefined ? { tags: msg.tags } : {}),
    ...(msg.metadata !== undefined ? { metadata: msg.metadata } : {}),
    ...(o ? { origin: { kind: o.kind, ...(o.listener !== undefined ? { listener: o.listener } : {}), ...(o.apiKey !== undefined ? { apiKey: o.apiKey } : {}) } } : {}),
  };
}

/**
 * Writes one group's outcomes and their events in ONE store call (and, when this is the round's
 * last group and nothing is left to do, the removal of the message in the same commit), mirrors
 * them in `msg`, collects DSN items.
 */
async function applyGroup(ctx: RoundContext, msg: QueuedMessage, g: Group, results: RecipientResult[], a: ApplyState): Promise<void> {
  if (a.ctl.isDeleted()) return;
  const now = ctx.clock.now();
  const byIdx = new Map(results.map((r) => [r.idx, r]));
  const rows = g.recipients.map((rcpt) => {
    const r = byIdx.get(rcpt.idx) ?? missingResult(rcpt.idx);
    const c = classify(ctx, msg, r, now, a.ctl.signal.aborted);
    return { rcpt, r, c, owed: owedFor(rcpt, c.status, r) };
  });
  // The owed DSN is written with the final outcome (one commit), so a crash before the DSN is
  // queued leaves the mark behind and the restart sends it (scheduler.ts sendOwed).
  const updates: RecipientUpdate[] = rows.map(({ rcpt, r, c, owed }) => ({
    idx: rcpt.idx, status: c.status, lastReply: r.diagnostic, dsnStatus: c.dsn, remoteMta: r.remoteMta,
    doneAt: c.status === 'pending' ? undefined : now, ...(owed ? { dsnOwed: owed } : {}),
  }));
  const about = aboutMessage(msg);
  const events: EventRecord[] = rows.map(({ rcpt, r, c }) => ({
    type: c.type, at: now, ...about, recipient: rcpt.address,
    ...(g.hop ? { nextHop: g.key } : {}),
    ...(r.remoteMta !== undefined ? { remoteHost: r.remoteMta } : {}),
    ...(r.tls ? { tls: r.tls } : {}),
    // Agents that name no class (local transports) get the reply's (feedback/classify.ts).
    ...(c.type !== 'recipient.delivered' && c.type !== 'recipient.relayed' ? { bounceClass: r.bounceClass ?? classifyReply(r.code, r.dsnStatus, r.diagnostic).class } : {}),
    dsn: c.dsn, reply: c.reply, attempt: a.attempt, durationMs: a.durationMs, delayMs: Math.max(0, now - msg.arrivedAt),
  }));
  // What the agent found about other messages (feedback consumer) goes in the same commit.
  const found = rows.flatMap(({ r }) => r.events ?? []);
  const deferred = rows.filter((x) => x.c.status === 'pending');
  a.state.nextAt ??= nextAttemptAt(now, a.attempt, ctx.config.delivery.retry, ctx.random);
  const next = { attempts: a.attempt, nextAttemptAt: a.state.nextAt, lastError: deferred.length ? deferred[deferred.length - 1]!.r.diagnostic : msg.lastError };
  // Removed in the same commit when this is the last group of the round and nothing is left:
  // every recipient final (the others from before), no DSN owed, nothing unwritten, body sound.
  const touched = new Set(g.recipients.map((r) => r.idx));
  const remove = a.state.open === 0 && a.state.bodyFailure === undefined && !ctx.unrecorded.has(msg.id)
    && rows.every((x) => x.c.status !== 'pending' && !x.owed)
    && msg.recipients.every((r) => touched.has(r.idx) || (r.status !== 'pending' && r.dsnOwed === undefined));
  crashPoint('delivery-before-outcome');
  try {
    await ctx.store.record(msg.id, { updates, next, events: found.length ? [...events, ...found] : events, remove });
  } catch (err) {
    // Final outcomes are kept and written again later (those recipients are not tried again
    // meanwhile); a lost deferral record only leaves the recipient pending, which is right.
    const finals = updates.filter((u) => u.status !== 'pending');
    ctx.logger.error({ err, queueId: msg.id, nextHop: g.key, finals: finals.length }, 'cannot record delivery results; final outcomes kept in memory and written again');
    if (finals.length) {
      const finalIdx = new Set(finals.map((u) => u.idx));
      const list = ctx.unrecorded.get(msg.id) ?? [];
      list.push({ updates: finals, next, events: [...events.filter((_, i) => finalIdx.has(rows[i]!.rcpt.idx)), ...rows.filter((x) => finalIdx.has(x.rcpt.idx)).flatMap((x) => x.r.events ?? [])] });
      ctx.unrecorded.set(msg.id, list);
    }
    return;
  }
  if (remove) a.out.removed = true;
  msg.attempts = next.attempts;
  msg.nextAttemptAt = next.nextAttemptAt;
  msg.lastError = next.lastError;
  for (const { rcpt, r, c, owed } of rows) {
    Object.assign(rcpt, { status: c.status, lastReply: r.diagnostic, dsnStatus: c.dsn, remoteMta: r.remoteMta ?? rcpt.remoteMta });
    if (owed) rcpt.dsnOwed = owed;
    if (c.status !== 'pending') rcpt.doneAt = now;
    a.out.latest.set(rcpt.idx, r);
    collectReport(rcpt, r, c, owed, now, a.out);
  }
}

/**
 * The DSN a recipient is owed after reaching `status` with `result` (RFC 3461 NOTIFY), if any. A
 * success is not owed when the agent passed NOTIFY on to a next hop with DSN (notify.ts successOwed).
 */
export function owedFor(rcpt: Pick<QueuedRecipient, 'notify'>, status: RecipientStatus, result: Pick<RecipientResult, 'dsnPassedOn'>): DsnOwed | undefined {
  if ((status === 'bounced' || status === 'expired') && notifyWants(rcpt.notify, 'failure')) return 'failure';
  if ((status === 'delivered' || status === 'relayed') && successOwed(rcpt.notify, result)) return 'success';
  return undefined;
}

function collectReport(rcpt: QueuedRecipient, r: RecipientResult, c: Classified, owed: DsnOwed | undefined, now: number, out: RoundResult): void {
  const base = { recipient: rcpt, diagnostic: r.diagnostic, remote: r.remote, remoteMta: r.remoteMta, lastAttemptAt: now };
  if (owed === 'failure') out.failures.push({ ...base, action: 'failed', status: c.dsn });
  else if (owed === 'success') out.successes.push({ ...base, action: c.status === 'relayed' ? 'relayed' : 'delivered', status: c.dsn });
}

/** Moves `msg` aside with its 'message.quarantined' event (same commit). Never throws. */
export async function quarantine(ctx: Pick<RoundContext, 'store' | 'logger' | 'clock'>, msg: Pick<QueuedMessage, 'id' | 'mailFrom' | 'messageId' | 'tags' | 'metadata'>, reason: string): Promise<void> {
  try {
    await ctx.store.quarantine(msg.id, reason, [{ type: 'message.quarantined', at: ctx.clock.now(), ...aboutMessage(msg), reason }]);
  } catch (err) {
    ctx.logger.error({ err, queueId: msg.id }, 'cannot quarantine message');
  }
}
