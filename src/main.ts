/**
 * Composition root: the only file that wires Postline's parts together.
 *
 *   SMTP listeners -> smtpd session -> cleanup -> spool (durable) -> scheduler -> delivery agent
 *                                                                      |-> events -> log
 *
 * `startPostline(config)` starts everything and returns a handle with `stop()`; `runServer(file)` is
 * the `postline serve` command (signals, exit codes).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { PostlineConfig } from './config/schema.js';
import { loadConfig } from './config/load.js';
import { createLogger, type Logger } from './core/log.js';
import { systemClock, type Clock } from './core/clock.js';
import { EventBus } from './events/bus.js';
import { attachLogSink } from './events/log-sink.js';
import type { QueueStore } from './spool/types.js';
import { SqliteQueueStore } from './spool/sqlite/store.js';
import { withFaults } from './spool/fault-store.js';
import { Cleanup } from './cleanup/cleanup.js';
import { buildDsn } from './bounce/dsn.js';
import { createResolver } from './dns/resolver.js';
import { createRouter } from './routing/router.js';
import { SmtpDeliveryAgent } from './delivery/smtp-agent.js';
import { Scheduler } from './scheduler/scheduler.js';
import { ControlServer } from './control/server.js';
import { SmtpServer } from './smtpd/server.js';
import { loadOrCreateTls } from './smtpd/tls.js';
import { RelayPolicy } from './policy/smtp-policy.js';
import { UserStore } from './policy/users.js';

export interface RunningPostline {
  readonly config: PostlineConfig;
  readonly store: QueueStore;
  readonly scheduler: Scheduler;
  readonly events: EventBus;
  /** Bound listener addresses, by listener name. */
  readonly listeners: ReadonlyMap<string, { address: string; port: number }>;
  /** Re-reads TLS certificate and key (SIGHUP). */
  reloadTls(): void;
  /** Graceful stop: stop accepting, finish or abandon in-flight work within graceMs, close the store. */
  stop(graceMs?: number): Promise<void>;
}

/** Opens the queue store of a configuration (used by `postline queue` when no server runs). */
export async function openStore(config: PostlineConfig, logger?: Logger): Promise<QueueStore> {
  mkdirSync(config.dataDir, { recursive: true });
  const store = new SqliteQueueStore({ dataDir: config.dataDir, minFreeBytes: config.limits.minFreeBytes, logger: logger ?? createLogger({ level: 'warn', format: 'json' }, process.stderr) });
  await store.open();
  return withFaults(store);
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
  const cleanup = new Cleanup({ store, config, events, logger, clock });
  const resolver = createResolver(config.delivery.dns);
  const router = createRouter(config);
  const agent = new SmtpDeliveryAgent({
    config,
    resolver,
    logger,
    ownListeners: config.listeners.map((l) => ({ address: l.address, port: l.port })),
  });
  const scheduler = new Scheduler({
    store,
    agent,
    route: (address: string) => router.route(address),
    events,
    logger,
    clock,
    config,
    dsn: { build: buildDsn, inject: (envelope, body) => cleanup.inject(envelope, body, { kind: 'dsn' }) },
  });
  events.subscribe((e) => {
    if (e.type !== 'message.queued') return;
    store.get(e.queueId).then(
      (msg) => msg && scheduler.enqueued(msg),
      (err) => logger.error({ err, queueId: e.queueId }, 'cannot schedule new message'),
    );
  });

  let tlsMaterial = loadOrCreateTls(config, logger);
  const policy = new RelayPolicy({ config, users: new UserStore(config.dataDir), freeBytes: () => store.freeBytes() });
  const servers = config.listeners.map(
    (listener) => new SmtpServer({ config, listener, sink: cleanup, policy, logger, tls: () => tlsMaterial }),
  );
  const control = new ControlServer({ socketPath: join(config.dataDir, 'control.sock'), scheduler, logger });
  const bound = new Map<string, { address: string; port: number }>();

  const stop = async (graceMs = 10_000): Promise<void> => {
    await Promise.allSettled(servers.map((s) => s.close(graceMs)));
    await control.stop().catch(() => {});
    await scheduler.stop(graceMs).catch((err: unknown) => logger.error({ err }, 'scheduler stop failed'));
    await agent.close().catch(() => {});
    await store.close().catch((err: unknown) => logger.error({ err }, 'store close failed'));
  };

  try {
    await scheduler.start();
    for (let i = 0; i < servers.length; i++) {
      const addr = await servers[i]!.listen();
      bound.set(config.listeners[i]!.name, addr);
      logger.info({ listener: config.listeners[i]!.name, role: config.listeners[i]!.role, tls: config.listeners[i]!.tls, ...addr }, 'listening');
    }
    await control.start();
  } catch (err) {
    await stop(0);
    throw err;
  }

  return {
    config,
    store,
    scheduler,
    events,
    listeners: bound,
    reloadTls: () => {
      tlsMaterial = loadOrCreateTls(config, logger);
      logger.info('TLS certificate reloaded');
    },
    stop,
  };
}

/** `postline serve`: loads the configuration, starts, and handles SIGTERM/SIGINT (stop) and SIGHUP (reload TLS). */
export async function runServer(configFile?: string): Promise<void> {
  const config = loadConfig(configFile);
  const logger = createLogger(config.log);
  const running = await startPostline(config, { logger });
  logger.info({ hostname: config.hostname, dataDir: config.dataDir }, 'postline started');
  let stopping = false;
  const onStop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping');
    const hard = setTimeout(() => process.exit(1), 30_000);
    hard.unref();
    running.stop(10_000).then(
      () => { logger.info('stopped'); logger.flush?.(); setTimeout(() => process.exit(0), 50); },
      (err: unknown) => { logger.error({ err }, 'stop failed'); process.exit(1); },
    );
  };
  process.on('SIGTERM', () => onStop('SIGTERM'));
  process.on('SIGINT', () => onStop('SIGINT'));
  process.on('SIGHUP', () => {
    try { running.reloadTls(); } catch (err) { logger.error({ err }, 'TLS reload failed'); }
  });
}
