/** What the Scheduler is made with (scheduler.ts); kept apart from it by size only. */
import type { PostlineConfig } from '../config/schema.js';
import type { Clock } from '../core/clock.js';
import type { Logger } from '../core/log.js';
import type { DeliveryAgent } from '../delivery/types.js';
import type { NextHop } from '../routing/types.js';
import type { QueueStore } from '../spool/types.js';
import type { DestinationStateStore } from './destination-store.js';
import type { DsnPort } from './notify.js';
import type { RoundContext } from './round.js';

export interface SchedulerOptions {
  readonly store: QueueStore;
  readonly agent: DeliveryAgent;
  /** Next hop of a recipient address; may throw (PostlineError: temporary -> deferred, else bounced). */
  readonly route: (address: string) => NextHop;
  /** Per-recipient return paths (round.ts RoundContext.returnPath); absent: the message's own reverse-path. */
  readonly returnPath?: RoundContext['returnPath'];
  readonly logger: Logger;
  readonly clock: Clock;
  readonly config: PostlineConfig;
  /** DSN builder (src/bounce/dsn.ts) and the way into the queue for generated mail (cleanup). */
  readonly dsn: DsnPort;
  /** Random source in [0, 1) for retry jitter (default Math.random). */
  readonly random?: () => number;
  /** Run the periodic due scan every delivery.scanIntervalMs (default true; tests use runDueOnce). */
  readonly scanTimer?: boolean;
  /** Messages in delivery rounds at once (default delivery.maxActiveMessages); the rest wait. */
  readonly maxActiveMessages?: number;
  /** Queue IDs kept in memory by due time (default delivery.dueWindow); the rest is read from the store as needed. */
  readonly dueWindow?: number;
  /** Where suspended and throttled destinations are kept across restarts (destination-store.ts; default: memory). */
  readonly destinationStates?: DestinationStateStore;
  /** MX host names of a domain, for traffic shaping rules by MX host suffix (main.ts: the delivery resolver). */
  readonly mxNames?: (domain: string) => Promise<readonly string[]>;
  /** Where egress warm-up counts are kept across restarts (egress.ts; default: memory only). */
  readonly egressFile?: string;
  /** Longest in-memory wait for a rate slot, ms (default 1000; tests 0). */
  readonly shortWaitMs?: number;
}
