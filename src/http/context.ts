/**
 * What every route group of the HTTP API gets: the server's dependencies, the schemas built for
 * its limits, and the shared per-key machinery (rate limiter, Idempotency-Key guard).
 */
import type { PostlineConfig } from '../config/schema.js';
import type { Clock } from '../core/clock.js';
import type { Logger } from '../core/log.js';
import type { MessageOrigin, Rejection, SubmissionSink } from '../core/session.js';
import type { QueueAdmin } from '../scheduler/admin.js';
import type { TlsMaterial } from '../smtpd/tls.js';
import type { EngagementEndpoints } from '../tracking/engagement.js';
import type { ApiKeyStore } from './api-keys.js';
import type { RateLimiter, RefusalCoalescer } from './auth.js';
import type { IdempotencyGuard, IdempotencyStore } from './idempotency.js';
import type { ApiSchemas } from './schemas.js';
import type { SuppressionAdmin } from '../suppression/admin.js';
import type { SuppressionCheck } from '../suppression/guard.js';
import type { ApiStore } from './store.js';

/** A Prometheus registry as the API serves it on GET /metrics (built elsewhere). */
export interface MetricsSource {
  /** e.g. "text/plain; version=0.0.4; charset=utf-8". */
  readonly contentType: string;
  render(): Promise<string>;
}

/** The dependencies of createApiServer. */
export interface ApiServerDeps {
  /** hostname (Message-IDs), limits (sizes, recipients, metadata, free space), http (address, TLS, body size, idempotency), delivery.maxQueueLifetimeMs (sendAt bound). */
  readonly config: Pick<PostlineConfig, 'hostname' | 'limits' | 'http' | 'delivery'>;
  /** Cleanup's door for whole messages. */
  readonly sink: SubmissionSink;
  /**
   * Records a sending request the API refused after authentication (sender domain, rate, free
   * space, size, submit's refusals) as a message.rejected event (cleanup.rejectedSubmission).
   * Never throws. Schema failures (400) are not recorded.
   */
  readonly rejected?: (origin: MessageOrigin, r: Omit<Rejection, 'stage'>) => void;
  readonly store: ApiStore;
  /** Operator actions (the Scheduler, as behind the control socket). */
  readonly admin: Pick<QueueAdmin, 'flushOne' | 'hold' | 'release' | 'delete'>;
  readonly keys: ApiKeyStore;
  readonly idempotency: IdempotencyStore;
  readonly logger: Logger;
  /** Served on GET /metrics when given. */
  readonly metrics?: MetricsSource;
  /** PEM material for HTTPS (main.ts resolves http.tls to it); absent: plain HTTP. */
  readonly tls?: TlsMaterial;
  readonly clock?: Clock;
  /**
   * The public tracking and unsubscribe endpoints (/t/o, /t/c, /u; routes/tracking.ts) and their
   * rate per client address per minute (tracking.ratePerMinute); absent: not served.
   */
  readonly engagement?: { readonly endpoints: EngagementEndpoints; readonly ratePerMinute: () => number };
  /**
   * The suppression list: `check` for each recipient of a send (a suppressed one is answered
   * status "suppressed" and not queued), `admin` behind /api/v1/suppressions. Absent: no check, no routes.
   */
  readonly suppressions?: { readonly check: SuppressionCheck; readonly admin: SuppressionAdmin };
}

/** Shared by the route groups. */
export interface ApiContext {
  readonly deps: ApiServerDeps;
  readonly schemas: ApiSchemas;
  readonly rate: RateLimiter;
  /** deps.rejected, at most one event per key per second (undefined without deps.rejected). */
  readonly refusals?: RefusalCoalescer;
  readonly idempotency: IdempotencyGuard;
  readonly now: () => number;
}
