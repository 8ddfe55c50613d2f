/**
 * Composition root: the only file that wires Postline's parts together.
 *
 *   SMTP listeners -> smtpd session -> cleanup -> spool (durable) -> scheduler -> delivery agent
 *                                                                      |-> events -> log
 *                                                       store's event log -> webhooks (own cursors)
 *                                                       store's event log -> suppression feeder (own cursor)
 *
 * `startPostline(config)` starts everything and returns a handle with `stop()`; `runServer(file)` is
 * the `postline serve` command (signals, exit codes).
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PostlineConfig } from './config/schema.js';
import { loadConfig } from './config/load.js';
import { applyLiveConfig, type LiveReloadResult } from './config/live.js';
import { R } from './core/reply.js';
import { createLogger, type Logger } from './core/log.js';
import { systemClock, type Clock } from './core/clock.js';
import { EventBus } from './events/bus.js';
import { attachLogSink } from './events/log-sink.js';
import type { QueueStore } from './spool/types.js';
import { openStore } from './spool/open.js';
import { Cleanup } from './cleanup/cleanup.js';
import { buildDsn } from './bounce/dsn.js';
import { createResolver } from './dns/resolver.js';
import { dkimFromConfig } from './dkim/setup.js';
import { authFromConfig, type AuthSetup } from './auth/setup.js';
import type { ModifierFactory } from './cleanup/modifiers.js';
import { createRouter } from './routing/router.js';
import { isSmtpHop } from './routing/types.js';
import { SmtpDeliveryAgent } from './delivery/smtp-agent.js';
import { TransportRegistry } from './delivery/transports.js';
import { ReturnPaths, isOwnMail } from './bounce/return-path.js';
import { loadOrCreateSecret } from './core/secret-file.js';
import { MaildirAgent } from './local/maildir-agent.js';
import { InternalAgent } from './local/internal-agent.js';
import { feedbackConsumer } from './feedback/consumer.js';
import { feedbackLimits } from './feedback/index.js';
import { HttpAgent } from './local/http-agent.js';
import { localRecipientRules } from './local/rules.js';
import { LmtpDeliveryAgent } from './local/lmtp-agent.js';
import { Scheduler } from './scheduler/scheduler.js';
import { ControlServer } from './control/server.js';
import { SmtpServer } from './smtpd/server.js';
import { defaultMaterial, loadServerCertificates } from './smtpd/tls-certificates.js';
import { ConnectionLimiter } from './smtpd/connection-limiter.js';
import { RelayPolicy } from './policy/smtp-policy.js';
import { ClientPolicy } from './policy/client-policy.js';
import { UserStore } from './policy/users.js';
import { createApiServer, httpTlsMaterial, type ApiServer } from './http/server.js';
import { openApiStores } from './http/sqlite-stores.js';
import { SqliteQueueStore } from './spool/sqlite/store.js';
import { createMetrics, type Metrics } from './metrics/metrics.js';
import { WebhookManager } from './webhooks/manager.js';
import { SqliteWebhookCursorStore } from './webhooks/cursor-store.js';
import { SqliteDestinationStateStore } from './scheduler/destination-store.js';
import { toALabel } from './core/envelope.js';
import { trackingFromConfig, type TrackingSetup } from './tracking/setup.js';
import { UNSUBSCRIBE_CONSUMER, unsubscribeConsumer } from './tracking/mailto.js';
import { startLocalSubmission, type LocalSubmission } from './pickup/index.js';
import { SuppressionAdmin } from './suppression/admin.js';
import { SuppressionFeeder } from './suppression/feeder.js';
import { SuppressionGuard } from './suppression/guard.js';
import type { SuppressionStore } from './suppression/types.js';

export interface RunningPostline {
  readonly config: PostlineConfig;
  readonly store: QueueStore;
  readonly scheduler: Scheduler;
  readonly events: EventBus;
  /** Prometheus metrics (src/metrics/; the HTTP API serves them on GET /metrics); absent when metrics.enabled is false. */
  readonly metrics?: Metrics;
  /** The webhook dispatchers (status, reload). */
  readonly webhooks: WebhookManager;
  /** The suppression list kept with the store (src/suppression/), when the store has one. */
  readonly suppressions?: SuppressionStore;
  /** Bound listener addresses, by listener name. */
  readonly listeners: ReadonlyMap<string, { address: string; port: number }>;
  /** The HTTP API's bound address (absent with `http: null`). */
  readonly http?: { address: string; port: number };
  /** Re-reads TLS certificate and key (SIGHUP). */
  reloadTls(): void;
  /**
   * Takes over the live keys of a freshly loaded configuration (src/config/live.ts), rebuilds the
   * relay policy and reloads the TLS material; a changed `webhooks` list is handed to the webhook
   * manager (in the background: a failure is logged). Established sessions are kept. @throws when the new TLS material cannot be loaded.
   */
  reload(fresh: PostlineConfig): LiveReloadResult;
  /** Graceful stop: stop accepting, finish or abandon in-flight work within graceMs, close the store. */
  stop(graceMs?: number): Promise<void>;
}

/**
 * Prunes the event log in the background: every minute, events older than events.retentionDays
 * (read at each run: live reload), a few thousand rows per write so no commit waits long.
 * @returns its stop function.
 */
function startEventPruner(store: QueueStore, config: PostlineConfig, logger: Logger, clock: Clock): { stop(): void } {
  let running = false;
  let stopped = false;
  const run = async (): Promise<void> => {
    if (running || stopped) return;
    running = true;
    try {
      const before = clock.now() - config.events.retentionDays * 86_400_000;
      for (let i = 0; i < 20; i++) {
        if ((await store.pruneEvents(before, 2000)) < 2000) break;
      }
    } catch (err) {
      logger.warn({ err }, 'cannot prune the event log');
    } finally {
      running = false;
    }
  };
  const t = setInterval(() => void run(), 60_000);
  t.unref();
  const first = setTimeout(() => void run(), 5_000);
  first.unref();
  return { stop: () => { stopped = true; clearInterval(t); clearTimeout(first); } };
}

/**
 * Starts Postline with a validated configuration.
 * @throws when a listener cannot bind (EADDRINUSE, EACCES) or the store cannot open; whatever was started is stopped again.
 */
export async function startPostline(config: PostlineConfig, opts: { logger?: Logger; clock?: Clock } = {}): Promise<RunningPostline> {
  const logger = opts.logger ?? createLogger(config.log);
  const clock = opts.clock ?? systemClock;
  mkdirSync(config.dataDir, { recursive: true });
  const events = new EventBus();
  events.setErrorHandler((err) => logger.error({ err }, 'event listener failed'));
  attachLogSink(events, logger);

  const store = await openStore(config, logger);
  // Webhooks read the store's event log with their own cursors (webhook_cursors in queue.db, on a
  // side connection); a commit only wakes them, it never waits for them.
  let webhookCursors: SqliteWebhookCursorStore;
  try {
    webhookCursors = SqliteWebhookCursorStore.open(config.dataDir);
  } catch (err) {
    await store.close().catch(() => {});
    throw err;
  }
  // Suspended and throttled destinations (traffic shaping), kept across restarts: a side connection too.
  let destinationStates: SqliteDestinationStateStore;
  try {
    destinationStates = SqliteDestinationStateStore.open(config.dataDir);
  } catch (err) {
    await webhookCursors.close().catch(() => {});
    await store.close().catch(() => {});
    throw err;
  }
  const webhooks = new WebhookManager({ source: store, cursors: webhookCursors, logger, clock });
  // The suppression list in queue.db: the check at RCPT and in the API, the operator's and the
  // API's changes, and the feeder adding from the event log with its own cursor.
  const suppressions = store.suppressionStore?.();
  const suppressionGuard = suppressions ? new SuppressionGuard(suppressions, config, () => clock.now(), (err) => logger.warn({ err }, 'cannot read the suppression list')) : undefined;
  const suppressionAdmin = suppressions ? new SuppressionAdmin(suppressions, clock) : undefined;
  const feeder = suppressions ? new SuppressionFeeder({ source: store, store: suppressions, config, logger, clock }) : undefined;
  // The outbox: every event is committed with its state change; the bus hears it afterwards.
  store.setEventListener((list) => {
    for (const e of list) events.emit(e);
    webhooks.wake();
    feeder?.wake();
  });
  const pruner = startEventPruner(store, config, logger, clock);
  let scheduler: Scheduler | undefined; // set below; cleanup hands it each committed message
  let policy: RelayPolicy | undefined; // set below; cleanup asks it who may set X-Postline-* metadata
  let observeAccept: ((ms: number) => void) | undefined; // the metrics' accept latency, set below
  // The modifier chain (cleanup/modifiers.ts): inbound verification (stage verify), tracking
  // links (rewrite), List-Unsubscribe and Feedback-ID (add), DKIM signing (sign); rebuilt on reload.
  let modifiers: readonly ModifierFactory[];
  let auth: AuthSetup;
  let dkim: ModifierFactory | undefined;
  let tracking: TrackingSetup;
  const chainOf = (): readonly ModifierFactory[] => [auth.factory, ...tracking.factories, dkim].filter((f): f is ModifierFactory => f !== undefined);
  try {
    auth = authFromConfig(config, logger);
    dkim = dkimFromConfig(config, logger, () => clock.now());
    // Tracking and unsubscribe read their sections at each message (live); the link key is made now when one is on.
    tracking = trackingFromConfig(config, store, logger, clock);
    if (config.tracking.enabled || config.unsubscribe.enabled) tracking.signer();
    modifiers = chainOf();
  } catch (err) {
    await webhookCursors.close().catch(() => {});
    await destinationStates.close().catch(() => {});
    await store.close().catch(() => {});
    throw err;
  }
  const cleanup = new Cleanup({
    store, config, logger, clock, onQueued: (msg) => scheduler?.enqueued(msg),
    isTrusted: (s) => s.authUser !== undefined || policy?.mayRelay(s) === true,
    onAccepted: (ms) => observeAccept?.(ms),
    modifiers: () => modifiers,
    // local.aliases expanded and local routes in mode hold, at acceptance (compiled again after a reload).
    local: localRecipientRules(config),
  });
  const resolver = createResolver(config.delivery.dns);
  const router = createRouter(config);
  const agent = new SmtpDeliveryAgent({
    config,
    resolver,
    logger,
    ownListeners: config.listeners.map((l) => ({ address: l.address, port: l.port })),
  });
  // Signed per-recipient return paths at bounces.domain (bounce/return-path.ts), for our own users' SMTP mail.
  const returnPaths = config.bounces.domain
    ? new ReturnPaths({ domain: config.bounces.domain, prefix: config.bounces.prefix, key: config.bounces.keyFile ? readFileSync(config.bounces.keyFile) : loadOrCreateSecret(config.dataDir, 'return-path.key') })
    : undefined;
  // One agent per transport (delivery/transports.ts); the scheduler hands each group to its next hop's.
  const transports = new TransportRegistry({
    smtp: agent,
    lmtp: new LmtpDeliveryAgent({ config, logger }),
    maildir: new MaildirAgent({ config: () => config.local.maildir, logger }),
    http: new HttpAgent({ config: () => config.local.http, authservId: () => config.auth.authservId ?? config.hostname, logger }),
    internal: new InternalAgent().register('feedback', feedbackConsumer({
      ...(returnPaths ? { returnPaths } : {}),
      limits: () => feedbackLimits(config.feedback),
      received: async (q) => (q.queueId ? (await store.readEvents({ queueId: q.queueId, types: ['message.received'], limit: 1 }))[0] : undefined),
      now: () => clock.now(),
      logger,
    }))
      // Mail to the List-Unsubscribe mailto: address, routed here by a local route (target: unsubscribe).
      .register(UNSUBSCRIBE_CONSUMER, unsubscribeConsumer(tracking.engagement, logger)),
  });
  scheduler = new Scheduler({
    store,
    agent: transports,
    route: (address: string) => router.route(address),
    egressFile: join(config.dataDir, 'egress-counts.json'),
    ...(returnPaths ? {
      returnPath: (msg, hop) => (msg.mailFrom !== '' && isSmtpHop(hop) && !returnPaths.isOurs(msg.mailFrom) && isOwnMail(msg.origin, (a) => policy?.isTrustedNetwork(a) === true)
        ? (idx: number) => returnPaths.encode(msg.id, idx) : undefined),
    } : {}),
    logger,
    clock,
    config,
    dsn: { build: buildDsn, inject: (envelope, body, evs) => cleanup.inject(envelope, body, { kind: 'dsn' }, evs) },
    destinationStates,
    // Traffic shaping rules by MX host suffix (delivery.shaping ".outlook.com"): the MX names, looked up and cached by the scheduler.
    mxNames: async (domain) => (await resolver.resolveMx(toALabel(domain))).map((r) => r.exchange),
  });

  // Every certificate the listeners serve (tls.certificates by SNI, else the one pair); read again on SIGHUP.
  let certificates = loadServerCertificates(config, logger);
  // Backpressure: above limits.queueHighWater messages the reply to MAIL waits inFlowDelayMs;
  // at twice the mark it waits and then refuses with 452 4.3.1.
  const inFlow = (): { delayMs: number; refuse?: typeof R.insufficientStorage } => {
    const { queueHighWater, inFlowDelayMs } = config.limits;
    if (queueHighWater <= 0) return { delayMs: 0 };
    const size = scheduler.queueSize();
    if (size >= 2 * queueHighWater) return { delayMs: inFlowDelayMs, refuse: R.insufficientStorage };
    return { delayMs: size > queueHighWater ? inFlowDelayMs : 0 };
  };
  policy = new RelayPolicy({ config, users: new UserStore(config.dataDir), freeBytes: () => store.freeBytes(), inFlow, ...(suppressionGuard ? { suppressions: suppressionGuard } : {}) });
  const relayPolicy = policy;
  // Client checks (access list, rates, blocklists, pregreet, AUTH throttle) in front of the relay policy.
  const clientPolicy = new ClientPolicy({
    config, inner: relayPolicy, logger,
    resolver: () => (config.policy.dns ? createResolver(config.policy.dns) : resolver),
    onZoneState: (zone, enabled, why) => logger[enabled ? 'info' : 'warn']({ zone, enabled, why }, enabled ? 'dnsbl zone enabled' : 'dnsbl zone disabled'),
  });
  const limiter = new ConnectionLimiter(() => config.limits); // one count across all listeners
  const servers = config.listeners.map(
    (listener) => new SmtpServer({ config, listener, sink: cleanup, policy: clientPolicy, logger, tls: () => certificates, limiter }),
  );
  // Metrics: after the store, scheduler, limiter and webhooks they read at scrape time; closed at stop.
  const metrics = config.metrics.enabled ? createMetrics({
    events, store, scheduler, inbound: limiter, outbound: agent,
    ...(store instanceof SqliteQueueStore ? { commitStats: () => store.commitStats() } : {}),
    webhookBacklog: async () => (await webhooks.status()).map((w) => ({ name: w.name, backlog: w.backlog, failing: w.failingSince !== undefined })),
    listeners: config.listeners.map((l) => l.name),
    dnsblZones: () => clientPolicy.lists?.zoneStates() ?? [],
    maxLabelValues: config.metrics.maxLabelValues,
    onError: (err, what) => logger.warn({ err, what }, 'metrics: cannot read'),
  }) : undefined;
  observeAccept = metrics ? (ms) => metrics.observeAccept(ms) : undefined;
  const control = new ControlServer({ socketPath: join(config.dataDir, 'control.sock'), scheduler, logger, ...(suppressionAdmin ? { suppressions: suppressionAdmin } : {}) });
  const bound = new Map<string, { address: string; port: number }>();
  // The HTTP API (src/http/): its key and idempotency tables on a side connection to queue.db.
  let apiStores: ReturnType<typeof openApiStores> | undefined;
  let api: ApiServer | undefined;
  let httpBound: { address: string; port: number } | undefined;
  let local: LocalSubmission | undefined; // the sendmail command's submit socket and maildrop pickup
  const httpTls = () => (config.http?.tls ? httpTlsMaterial(config.http.tls, defaultMaterial(certificates)) : undefined);

  const stop = async (graceMs = 10_000): Promise<void> => {
    // Listeners and deliveries stop side by side: a delivery stuck on a silent server is aborted
    // after delivery.shutdownGraceMs (its recipients deferred, nothing lost), not after the sessions.
    const deliveries = scheduler.stop(Math.min(graceMs, config.delivery.shutdownGraceMs)).catch((err: unknown) => logger.error({ err }, 'scheduler stop failed'));
    await Promise.allSettled([...servers.map((s) => s.close(graceMs)), api?.close(), local?.stop(Math.min(graceMs, 2000))]);
    clientPolicy.stop();
    await control.stop().catch(() => {});
    await deliveries;
    // QUIT to pooled connections, at most 1 s (a silent server does not hold the exit).
    await Promise.race([transports.close(), new Promise<void>((r) => setTimeout(r, 1000).unref())]);
    pruner.stop();
    metrics?.close();
    await webhooks.stop().catch((err: unknown) => logger.error({ err }, 'webhooks stop failed'));
    await feeder?.stop().catch((err: unknown) => logger.error({ err }, 'suppression feeder stop failed'));
    await webhookCursors.close().catch(() => {});
    await destinationStates.close().catch(() => {});
    await apiStores?.close().catch(() => {});
    await store.close().catch((err: unknown) => logger.error({ err }, 'store close failed'));
  };

  try {
    // First self-test of the DNS lists before the listeners open (bounded: a dead resolver only delays it).
    await Promise.race([clientPolicy.start(), new Promise<void>((r) => setTimeout(r, 5000).unref())]);
    for (let i = 0; i < servers.length; i++) {
      const addr = await servers[i]!.listen();
      bound.set(config.listeners[i]!.name, addr);
      logger.info({ listener: config.listeners[i]!.name, role: config.listeners[i]!.role, tls: config.listeners[i]!.tls, ...addr }, 'listening');
    }
    // Deliveries start once the listeners are open: a large queue's first rounds must not hold them
    // (mail accepted meanwhile is in the store, and the first window read finds it).
    await scheduler.start();
    await control.start();
    // `postline sendmail`: the submit socket, and the maildrop (picked up now and while running).
    local = await startLocalSubmission({ config, sink: cleanup, logger, rejected: (origin, r) => cleanup.rejectedSubmission(origin, r, 'local') });
    webhooks.start(config.webhooks);
    feeder?.start();
    if (config.http) {
      apiStores = openApiStores(config.dataDir);
      const tls = httpTls();
      api = await createApiServer({
        config, sink: cleanup, rejected: (origin, r) => cleanup.rejectedSubmission(origin, r),
        store, admin: scheduler, keys: apiStores.keys, idempotency: apiStores.idempotency, logger, clock,
        ...(suppressionGuard && suppressionAdmin ? { suppressions: { check: suppressionGuard, admin: suppressionAdmin } } : {}),
        ...(tls ? { tls } : {}), ...(metrics ? { metrics } : {}),
        engagement: { endpoints: tracking.engagement, ratePerMinute: () => config.tracking.ratePerMinute },
      });
      httpBound = await api.listen();
      logger.info({ listener: 'http', tls: !!tls, ...httpBound }, 'listening');
    }
  } catch (err) {
    await stop(0);
    throw err;
  }

  return {
    config,
    store,
    scheduler,
    events,
    ...(metrics ? { metrics } : {}),
    webhooks,
    ...(suppressions ? { suppressions } : {}),
    listeners: bound,
    ...(httpBound ? { http: httpBound } : {}),
    reloadTls: () => {
      certificates = loadServerCertificates(config, logger);
      const t = httpTls();
      if (t) api?.setTls(t);
      logger.info('TLS certificate reloaded');
    },
    reload: (fresh) => {
      const res = applyLiveConfig(config, fresh);
      relayPolicy.reload();
      clientPolicy.reload();
      certificates = loadServerCertificates(config, logger);
      const t = httpTls();
      if (t) api?.setTls(t);
      if (res.applied.includes('dkim')) {
        try {
          dkim = dkimFromConfig(config, logger, () => clock.now());
          modifiers = chainOf();
        } catch (err) {
          logger.error({ err: (err as Error).message }, 'DKIM keys not reloaded; signing with the previous keys');
        }
      }
      if (res.applied.includes('auth') || res.applied.includes('arc') || res.applied.includes('delivery.routes')) {
        try {
          auth = authFromConfig(config, logger, auth);
          modifiers = chainOf();
        } catch (err) {
          logger.error({ err: (err as Error).message }, 'inbound verification not reloaded; the previous settings stay');
        }
      }
      scheduler.shaping.refresh(); // delivery.shaping / throttlePatterns: logged now, applied to the next delivery
      if (res.applied.includes('webhooks')) {
        webhooks.reload(config.webhooks).catch((err: unknown) => logger.error({ err }, 'webhook reload failed'));
      }
      logger.info({ applied: res.applied }, 'configuration reloaded');
      if (res.needRestart.length) logger.warn({ keys: res.needRestart }, 'changed keys need a restart; kept the running values');
      return res;
    },
    stop,
  };
}

/** SMTP sessions still open at SIGTERM get this long to finish (ms); deliveries delivery.shutdownGraceMs. */
const SHUTDOWN_GRACE_MS = 4000;

/**
 * `postline serve`: loads the configuration, starts, and handles SIGTERM/SIGINT (graceful stop:
 * listeners close, sessions get 4 s and deliveries delivery.shutdownGraceMs (3 s) to finish,
 * then are cut (their recipients deferred); exit within 15 s at most) and SIGHUP (reload the
 * configuration's live keys, see src/config/live.ts, and the TLS certificate; a configuration that
 * fails validation is logged and the running one kept).
 */
export async function runServer(configFile?: string): Promise<void> {
  const config = loadConfig(configFile);
  const logger = createLogger(config.log);
  const running = await startPostline(config, { logger });
  logger.info({ hostname: config.hostname, dataDir: config.dataDir }, 'postline started');
  if (!config.hostname.includes('.')) {
    logger.warn({ hostname: config.hostname }, `hostname "${config.hostname}" is not a fully qualified domain name: it goes into HELO/EHLO, Received fields and Message-IDs, and receivers may refuse a bare name; set hostname in the configuration (like Postfix's myhostname)`);
  }
  let stopping = false;
  const onStop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping');
    const hard = setTimeout(() => process.exit(1), 15_000);
    hard.unref();
    running.stop(SHUTDOWN_GRACE_MS).then(
      () => { logger.info('stopped'); logger.flush?.(); setTimeout(() => process.exit(0), 50); },
      (err: unknown) => { logger.error({ err }, 'stop failed'); process.exit(1); },
    );
  };
  process.on('SIGTERM', () => onStop('SIGTERM'));
  process.on('SIGINT', () => onStop('SIGINT'));
  process.on('SIGHUP', () => {
    try {
      running.reload(loadConfig(configFile));
    } catch (err) {
      logger.error({ err }, 'configuration reload failed; keeping the running configuration');
    }
  });
}
