/**
 * Metrics: a private prom-client registry in the Prometheus text format (exposition format
 * 0.0.4), served by the HTTP API on GET /metrics (src/http/). Issue 7 section 5.
 *
 * Two kinds of sources:
 * - the event bus (committed events, events/record.ts): counters and histograms are updated as
 *   each event is heard, so they count exactly what the durable event log holds (no second source
 *   of truth);
 * - state read at scrape time (prom-client `collect()`): queue size by state, scheduler counts,
 *   connections in and out, the store's writer statistics, webhook backlog.
 *
 * Label values are bounded (labels.ts): listener names, next-hop classes, reply classes, stages,
 * known event types; never queue IDs, addresses, domains or hosts.
 *
 * Owns: metric names and their meaning. Must not change state.
 */
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import { EVENT_TYPES, RESERVED_EVENT_TYPES, isFinalOutcome, type StoredEvent } from '../events/record.js';
import type { QueueState } from '../spool/types.js';
import type { WriterStats } from '../spool/sqlite/writer-protocol.js';
import { CounterFamily, HistogramFamily, registerFixedHistogram } from './families.js';
import { bounceClassLabel, checkLabel, LabelSet, nextHopClass, OTHER, rejectStage, replyClass } from './labels.js';

/** Scheduler counts (scheduler/scheduler.ts stats()). */
export interface SchedulerCounts {
  readonly scheduled: number;
  readonly activeMessages: number;
  readonly activeRequests: number;
  readonly waitingRequests: number;
  /** Destinations by traffic state (scheduler/destinations.ts, shaping.ts); counts only, never names. */
  readonly deadDestinations?: number;
  readonly suspendedDestinations?: number;
  readonly throttledDestinations?: number;
}

/** One webhook endpoint's backlog (events not yet delivered) and whether it is marked failing. */
export interface WebhookBacklog {
  readonly name: string;
  readonly backlog: number;
  readonly failing: boolean;
}

/** What the metrics read. Everything but `events` and `store` is optional (its metrics are then absent). */
export interface MetricsDeps {
  /** The event bus (committed, numbered events). */
  readonly events: { subscribe(fn: (e: StoredEvent) => void): () => void };
  /** Queue size by state, read at each scrape. */
  readonly store: { countByState(): Promise<Record<QueueState, number>> };
  /** The SQLite store's writer statistics (SqliteQueueStore.commitStats). */
  readonly commitStats?: () => Readonly<WriterStats>;
  readonly scheduler?: { stats(): SchedulerCounts };
  /** Inbound SMTP connections counted across listeners (smtpd/connection-limiter.ts). */
  readonly inbound?: { count(): number };
  /** Outbound connection slots (delivery/smtp-agent.ts connections()). */
  readonly outbound?: { connections(): { open: number; idle: number; opened?: number } };
  /** Backlog per webhook endpoint, read at each scrape. */
  readonly webhookBacklog?: () => Promise<readonly WebhookBacklog[]>;
  /** DNS list zones and whether their self-test keeps them enabled (src/policy/dnsbl.ts). */
  readonly dnsblZones?: () => readonly { zone: string; enabled: boolean }[];
  /** Configured SMTP listener names (admitted first as `origin` label values). */
  readonly listeners?: readonly string[];
  /** Distinct values of a name-like label (listener, webhook endpoint); more become `other`. Default 64. */
  readonly maxLabelValues?: number;
  /** prom-client's default process metrics (CPU, memory, handles, GC, event loop lag). Default true. */
  readonly defaultMetrics?: boolean;
  /** Where a failing scrape-time read is reported (its metric keeps its last values). */
  readonly onError?: (err: unknown, what: string) => void;
}

/** The metrics of one running Postline. */
export interface Metrics {
  readonly registry: Registry;
  /** "text/plain; version=0.0.4; charset=utf-8". */
  readonly contentType: string;
  /** Every metric in the Prometheus text format (reads the scrape-time sources first). */
  render(): Promise<string>;
  /**
   * Observes the accept latency of one message: ms from its first byte (DATA/BDAT or the API
   * request) to our 250 (after the commit). For smtpd / cleanup / the API to call; not fed by events.
   */
  observeAccept(ms: number): void;
  /** Stops listening to the bus and empties the registry. Idempotent. */
  close(): void;
}

/** Histogram buckets, seconds. */
const DELAY_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 86_400, 5 * 86_400];
const ATTEMPT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
const ACCEPT_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

const KNOWN_TYPES = new Set<string>([...EVENT_TYPES, ...RESERVED_EVENT_TYPES]);
const ORIGIN_KINDS = new Set(['api', 'dsn', 'local']);
const DSN_KINDS = new Set(['failure', 'delay', 'success']);
const OUTCOMES: Readonly<Record<string, string>> = {
  'recipient.delivered': 'delivered', 'recipient.relayed': 'relayed', 'recipient.deferred': 'deferred',
  'recipient.bounced': 'bounced', 'recipient.expired': 'expired',
};
const QUEUE_STATES: readonly QueueState[] = ['active', 'deferred', 'held', 'quarantined'];

/**
 * Creates the metrics registry and subscribes it to the bus.
 * Metric names (all `postline_` but the default process metrics):
 * counters `messages_received_total{origin}`, `messages_rejected_total{stage,class}`,
 * `recipients_total{outcome,next_hop}`, `recipient_failures_total{outcome,class}` (deferred, bounced,
 * expired by bounce class), `dsn_queued_total{kind}`, `dsn_dropped_total{kind}`,
 * `events_total{type}`, `store_*_total`; histograms `delivery_delay_seconds{outcome}`,
 * `delivery_attempt_seconds{next_hop}`, `accept_seconds`, `store_commit_seconds`,
 * `store_batch_messages`; gauges `queue_messages{state}`, `scheduler_messages{state}`,
 * `delivery_requests{state}`, `destinations{state}` (dead / suspended / throttled: counts, never names),
 * `inbound_connections`, `outbound_connections{state}`, `outbound_connections_opened_total`,
 * `store_largest_batch_messages`, `webhook_backlog_events{endpoint}`, `webhook_failing{endpoint}`.
 * @throws RangeError when maxLabelValues is not a positive integer.
 */
export function createMetrics(deps: MetricsDeps): Metrics {
  const cap = deps.maxLabelValues ?? 64;
  if (!Number.isInteger(cap) || cap < 1) throw new RangeError('maxLabelValues must be a positive integer');
  const report = deps.onError ?? (() => {});
  const registry = new Registry();
  const registers = [registry];
  if (deps.defaultMetrics !== false) collectDefaultMetrics({ register: registry });

  // ---- from events (plain counts: this runs for every committed event) ----
  const listeners = new LabelSet(cap, deps.listeners ?? []);
  const received = new CounterFamily(registry, 'postline_messages_received_total',
    'Messages accepted and queued, by origin (SMTP listener name, api, dsn, local).', ['origin']);
  const rejected = new CounterFamily(registry, 'postline_messages_rejected_total',
    'Messages or recipients refused, by stage (connect, mail, rcpt, data, api, auth) and reply class (4xx, 5xx).', ['stage', 'class']);
  const refusals = new CounterFamily(registry, 'postline_policy_refusals_total',
    'Refusals by a client check (dnsbl:ZONE, rate:NAME, rate:perNetwork.NAME, access, pregreet, auth-throttle, auth-busy, data-rate), by stage.', ['check', 'stage']);
  const zoneLabels = new LabelSet(cap);
  const recipients = new CounterFamily(registry, 'postline_recipients_total',
    'Recipient outcomes (delivered, relayed, deferred, bounced, expired), by next-hop class (mx, relay, local, none, other).', ['outcome', 'next_hop']);
  const failures = new CounterFamily(registry, 'postline_recipient_failures_total',
    'Deferred, bounced and expired recipient outcomes by bounce class (InvalidRecipient, MailboxFull, DnsFailure, ...; src/feedback/classes.ts), none when unknown.', ['outcome', 'class']);
  const dsnQueued = new CounterFamily(registry, 'postline_dsn_queued_total', 'DSNs queued, by kind (failure, delay, success).', ['kind']);
  const dsnDropped = new CounterFamily(registry, 'postline_dsn_dropped_total', 'DSNs that could not be sent anywhere, by kind.', ['kind']);
  const eventsTotal = new CounterFamily(registry, 'postline_events_total', 'Committed events, by type.', ['type']);
  const delay = new HistogramFamily(registry, 'postline_delivery_delay_seconds',
    'Time from arrival to a final recipient outcome, seconds, by outcome.', DELAY_BUCKETS, 'outcome');
  const attempt = new HistogramFamily(registry, 'postline_delivery_attempt_seconds',
    'Duration of one delivery attempt to one next hop, seconds, by next-hop class.', ATTEMPT_BUCKETS, 'next_hop');
  const accept = new HistogramFamily(registry, 'postline_accept_seconds',
    'Time from the first byte of a message to our 250 (after its commit), seconds.', ACCEPT_BUCKETS);

  const originLabel = (e: StoredEvent): string => {
    const o = e.origin;
    if (!o) return OTHER;
    if (o.kind === 'smtp') return listeners.get(o.listener ?? 'smtp');
    return ORIGIN_KINDS.has(o.kind) ? o.kind : OTHER;
  };
  for (const l of deps.listeners ?? []) received.zero(listeners.get(l));
  for (const k of ['api', 'dsn', 'local']) received.zero(k);
  const dsnKind = (e: StoredEvent): string => (e.dsnKind !== undefined && DSN_KINDS.has(e.dsnKind) ? e.dsnKind : OTHER);
  // One attempt writes one event per recipient, all with the attempt's duration: count it once.
  let lastQueueId: string | undefined;
  let lastAttempt: number | undefined;
  let lastHop: string | undefined;
  let lastAt = -1;

  const onEvent = (e: StoredEvent): void => {
    eventsTotal.inc(KNOWN_TYPES.has(e.type) ? e.type : OTHER);
    switch (e.type) {
      case 'message.received': received.inc(originLabel(e)); return;
      case 'message.rejected':
        rejected.inc(rejectStage(e.reason), replyClass(e.reply));
        if (e.check !== undefined) refusals.inc(checkLabel(e.check, zoneLabels), rejectStage(e.reason));
        return;
      case 'dsn.queued': dsnQueued.inc(dsnKind(e)); return;
      case 'dsn.dropped': dsnDropped.inc(dsnKind(e)); return;
      default: break;
    }
    const outcome = OUTCOMES[e.type];
    if (outcome === undefined) return;
    const hop = nextHopClass(e.nextHop);
    recipients.inc(outcome, hop);
    if (outcome === 'deferred' || outcome === 'bounced' || outcome === 'expired') failures.inc(outcome, bounceClassLabel(e.bounceClass));
    if (isFinalOutcome(e.type) && typeof e.delayMs === 'number' && e.delayMs >= 0) delay.observe(outcome, e.delayMs / 1000);
    if (typeof e.durationMs === 'number' && e.durationMs >= 0
      && (lastQueueId !== e.queueId || lastAttempt !== e.attempt || lastHop !== e.nextHop || lastAt !== e.at)) {
      lastQueueId = e.queueId;
      lastAttempt = e.attempt;
      lastHop = e.nextHop;
      lastAt = e.at;
      attempt.observe(hop, e.durationMs / 1000);
    }
  };
  const unsubscribe = deps.events.subscribe(onEvent);

  // ---- read at scrape time ----
  new Gauge({
    name: 'postline_queue_messages', help: 'Messages in the queue, by state (active, deferred, held, quarantined).',
    labelNames: ['state'], registers,
    async collect() {
      try {
        const counts = await deps.store.countByState();
        for (const s of QUEUE_STATES) this.set({ state: s }, counts[s] ?? 0);
      } catch (err) {
        report(err, 'queue size');
      }
    },
  });
  const sched = deps.scheduler;
  if (sched) {
    new Gauge({
      name: 'postline_scheduler_messages', help: 'Messages known to the scheduler: waiting for their next attempt (scheduled) or in a delivery round (active).',
      labelNames: ['state'], registers,
      collect() {
        const s = sched.stats();
        this.set({ state: 'scheduled' }, s.scheduled);
        this.set({ state: 'active' }, s.activeMessages);
      },
    });
    new Gauge({
      name: 'postline_destinations', help: 'Destinations (next hops) held back: dead (no host answered), suspended (operator or a reply pattern), throttled (a reply pattern).',
      labelNames: ['state'], registers,
      collect() {
        const s = sched.stats();
        this.set({ state: 'dead' }, s.deadDestinations ?? 0);
        this.set({ state: 'suspended' }, s.suspendedDestinations ?? 0);
        this.set({ state: 'throttled' }, s.throttledDestinations ?? 0);
      },
    });
    new Gauge({
      name: 'postline_delivery_requests', help: 'Delivery requests (one message to one next hop): running (active) or waiting for a concurrency slot.',
      labelNames: ['state'], registers,
      collect() {
        const s = sched.stats();
        this.set({ state: 'active' }, s.activeRequests);
        this.set({ state: 'waiting' }, s.waitingRequests);
      },
    });
  }
  const inbound = deps.inbound;
  if (inbound) {
    new Gauge({
      name: 'postline_inbound_connections', help: 'Open inbound SMTP connections (all listeners).', registers,
      collect() { this.set(inbound.count()); },
    });
  }
  const outbound = deps.outbound;
  if (outbound) {
    new Gauge({
      name: 'postline_outbound_connections', help: 'Outbound SMTP connection slots: in use or being opened (busy), parked for reuse (idle).',
      labelNames: ['state'], registers,
      collect() {
        const c = outbound.connections();
        this.set({ state: 'busy' }, Math.max(0, c.open - c.idle));
        this.set({ state: 'idle' }, c.idle);
      },
    });
    new Counter({
      name: 'postline_outbound_connections_opened_total', help: 'Outbound SMTP sessions opened (a pooled connection reused is not counted): delivered recipients per connection is the reuse.',
      registers,
      collect() {
        const n = outbound.connections().opened ?? 0;
        this.reset();
        this.inc(n);
      },
    });
  }
  const commitStats = deps.commitStats;
  if (commitStats) registerStoreMetrics(registry, commitStats);
  const zonesOf = deps.dnsblZones;
  if (zonesOf) {
    const zoneNames = new LabelSet(cap);
    new Gauge({
      name: 'postline_dnsbl_zone_enabled', help: '1 while a DNS list zone passes its self-test (RFC 5782 5), 0 while it is disabled, by zone.',
      labelNames: ['zone'], registers,
      collect() {
        this.reset();
        for (const z of zonesOf()) this.set({ zone: zoneNames.get(z.zone) }, z.enabled ? 1 : 0);
      },
    });
  }
  const backlog = deps.webhookBacklog;
  if (backlog) {
    const endpoints = new LabelSet(cap);
    let last: Promise<readonly WebhookBacklog[]> | undefined;
    // Both gauges read one answer per scrape.
    const read = (): Promise<readonly WebhookBacklog[]> => (last ??= Promise.resolve().then(backlog).finally(() => { setImmediate(() => { last = undefined; }); }));
    new Gauge({
      name: 'postline_webhook_backlog_events', help: 'Events not yet delivered to a webhook endpoint, by endpoint name.',
      labelNames: ['endpoint'], registers,
      async collect() {
        try {
          const list = await read();
          this.reset();
          for (const w of list) this.inc({ endpoint: endpoints.get(w.name) }, Math.max(0, w.backlog));
        } catch (err) {
          report(err, 'webhook backlog');
        }
      },
    });
    new Gauge({
      name: 'postline_webhook_failing', help: '1 when a webhook endpoint is marked failing (its oldest unsent event is older than maxAgeMs; it is still retried, at the longest interval), else 0, by endpoint name.',
      labelNames: ['endpoint'], registers,
      async collect() {
        try {
          const list = await read();
          this.reset();
          for (const w of list) this.set({ endpoint: endpoints.get(w.name) }, w.failing ? 1 : 0);
        } catch (err) {
          report(err, 'webhook backlog');
        }
      },
    });
  }

  let closed = false;
  return {
    registry,
    contentType: registry.contentType,
    render: () => registry.metrics(),
    observeAccept(ms: number): void {
      if (!closed && Number.isFinite(ms) && ms >= 0) accept.observe('', ms / 1000);
    },
    close(): void {
      if (closed) return;
      closed = true;
      unsubscribe();
      registry.clear();
    },
  };
}

/** Store writer counters (counters set from the writer's totals) and its two fixed histograms. */
function registerStoreMetrics(registry: Registry, read: () => Readonly<WriterStats>): void {
  const registers = [registry];
  const counter = (name: string, help: string, pick: (s: Readonly<WriterStats>) => number): void => {
    new Counter({
      name, help, registers,
      collect() {
        this.reset();
        this.inc(pick(read()));
      },
    });
  };
  counter('postline_store_transactions_total', 'Database transactions of the queue writer (group commits, and retries one by one).', (s) => s.transactions);
  counter('postline_store_synced_transactions_total', 'Transactions committed with a WAL fsync (the others are relaxed: made durable by a later one or the idle flush).', (s) => s.syncedTransactions);
  counter('postline_store_idle_syncs_total', 'Idle flushes: relaxed commits made durable because no other write came.', (s) => s.idleSyncs);
  counter('postline_store_messages_committed_total', 'New messages committed to the queue.', (s) => s.commits);
  counter('postline_store_commit_failures_total', 'New messages whose commit failed.', (s) => s.failures);
  counter('postline_store_dir_fsyncs_total', 'Directory fsyncs (bodies kept as files).', (s) => s.dirSyncs);
  counter('postline_store_writes_total', 'Write operations of any kind.', (s) => s.writes);
  new Gauge({
    name: 'postline_store_largest_batch_messages', help: 'Largest number of new messages in one transaction since start.', registers,
    collect() { this.set(read().largestBatch); },
  });
  registerFixedHistogram(registry, 'postline_store_commit_seconds',
    'Durable write transactions of the queue writer by duration, seconds (statements, COMMIT and its WAL fsync).', () => read().commitSeconds);
  registerFixedHistogram(registry, 'postline_store_batch_messages',
    'Write transactions holding new messages, by how many (group commit size).', () => read().batchSize);
}
