/**
 * The agent of transport `internal`: Postline's own consumers of mail, by name (the next hop
 * `{ kind: 'internal', name }`). Each consumer takes a delivery request and returns one result per
 * recipient, like any agent; none writes the store. Built in:
 *
 * - `bounce`: local routes in mode bounce (and reject, for mail queued before the route changed):
 *   every recipient bounced with 550 5.1.1 "mailbox unavailable (local route)", so the sender gets
 *   a DSN (RFC 3464) from the scheduler as for any bounce.
 *
 * More consumers (bounce and complaint processing: "feedback") are added with `register`; a name
 * without a consumer defers its mail with 451 4.3.5 (a configuration problem: fixing it delivers).
 */
import { notThisTransport } from '../delivery/transports.js';
import type { DeliveryAgent, DeliveryRequest, RecipientResult } from '../delivery/types.js';

/** One internal consumer: delivers a request (never throws; failures are results). */
export type InternalConsumer = (req: DeliveryRequest & { readonly nextHop: { readonly kind: 'internal'; readonly name: string } }) => Promise<RecipientResult[]>;

/** The `bounce` consumer: every recipient bounced, 550 5.1.1. */
export const bounceConsumer: InternalConsumer = async (req) => req.recipients.map((r) => ({
  idx: r.idx, outcome: 'bounced' as const, code: 550, dsnStatus: '5.1.1',
  diagnostic: `550 5.1.1 <${r.address}>: mailbox unavailable (local route)`, remote: false,
}));

/** Dispatches internal next hops to their consumer by name. */
export class InternalAgent implements DeliveryAgent {
  private readonly consumers = new Map<string, InternalConsumer>([['bounce', bounceConsumer]]);

  /** Adds or replaces the consumer of `name` (e.g. "feedback"). */
  register(name: string, consumer: InternalConsumer): this {
    this.consumers.set(name, consumer);
    return this;
  }

  /** Delivers through the consumer the next hop names. Never throws. */
  async deliver(req: DeliveryRequest): Promise<RecipientResult[]> {
    const hop = req.nextHop;
    if (hop.kind !== 'internal') return notThisTransport(req, 'internal');
    const consumer = this.consumers.get(hop.name);
    if (!consumer) {
      const text = `451 4.3.5 no internal consumer named "${hop.name}"`;
      return req.recipients.map((r) => ({ idx: r.idx, outcome: 'deferred' as const, code: 451, dsnStatus: '4.3.5', diagnostic: text, remote: false }));
    }
    try {
      return await consumer(req as Parameters<InternalConsumer>[0]);
    } catch (err) {
      const text = `451 4.3.0 internal consumer ${hop.name} failed: ${(err as Error)?.message ?? String(err)}`.replace(/[\r\n]+/g, ' ');
      return req.recipients.map((r) => ({ idx: r.idx, outcome: 'deferred' as const, code: 451, dsnStatus: '4.3.0', diagnostic: text, remote: false }));
    }
  }

  async close(): Promise<void> {}
}
