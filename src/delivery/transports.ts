/**
 * The agent registry: one delivery agent per transport (like Postfix's master.cf, where a next hop
 * "lmtp:unix:private/dovecot-lmtp" names the service that delivers it). The scheduler holds one
 * DeliveryAgent, this registry; it hands each recipient group to the agent its next hop's
 * transport names (routing/types.ts transportOf). Every agent returns one result per recipient
 * and never writes the store; the scheduler writes the outcomes.
 */
import type { Logger } from '../core/log.js';
import type { TransportName } from '../routing/types.js';
import { nextHopKey, transportOf } from '../routing/types.js';
import type { DeliveryAgent, DeliveryRequest, RecipientResult } from './types.js';

/**
 * The results for a request that reached an agent of another transport, or a transport with no
 * agent: every recipient deferred with 451 4.3.5 (a configuration problem: mail waits, RFC 3463
 * X.3.5 "system incorrectly configured"), so fixing the configuration delivers it.
 */
export function notThisTransport(req: DeliveryRequest, agentName: string): RecipientResult[] {
  const text = `451 4.3.5 next hop ${nextHopKey(req.nextHop)} is not a ${agentName} destination`;
  return req.recipients.map((r) => ({ idx: r.idx, outcome: 'deferred' as const, code: 451, dsnStatus: '4.3.5', diagnostic: text, remote: false }));
}

/** The one info line of every delivery attempt ("smtp delivery attempt"): queue ID, next hop, "idx:outcome:status" per recipient. */
export function logAttempt(logger: Logger, transport: TransportName, req: DeliveryRequest, results: readonly RecipientResult[]): void {
  logger.info({ queueId: req.queueId, nextHop: nextHopKey(req.nextHop), results: results.map((r) => `${r.idx}:${r.outcome}:${r.dsnStatus}`) }, `${transport} delivery attempt`);
}

/** Delivery agents by transport; absent ones defer their mail (451 4.3.5). */
export type TransportAgents = Partial<Record<TransportName, DeliveryAgent>>;

/** The DeliveryAgent the scheduler calls: picks the agent of each request's transport. */
export class TransportRegistry implements DeliveryAgent {
  constructor(private readonly agents: TransportAgents) {}

  /** The agent of `transport`, when one is registered. */
  agent(transport: TransportName): DeliveryAgent | undefined {
    return this.agents[transport];
  }

  /** Delivers through the agent of the request's transport. Never throws (see DeliveryAgent). */
  deliver(req: DeliveryRequest): Promise<RecipientResult[]> {
    const transport = transportOf(req.nextHop);
    const agent = this.agents[transport];
    if (!agent) return Promise.resolve(notThisTransport(req, `configured transport (no ${transport} agent)`));
    return agent.deliver(req);
  }

  /** Closes every agent (pooled connections, open files); one failing does not stop the others. */
  async close(): Promise<void> {
    await Promise.all(Object.values(this.agents).map((a) => a?.close().catch(() => {})));
  }
}
