/**
 * One group's delivery call (round.ts): the DeliveryRequest of a message's recipients for one next
 * hop, with its shaping, source and site, through the agent registry; with per-recipient return
 * paths, one transaction per recipient. Kept apart from round.ts by size only.
 */
import { Readable } from 'node:stream';
import { StoreError } from '../core/errors.js';
import type { DeliveryRequest, RecipientResult } from '../delivery/types.js';
import type { NextHop } from '../routing/types.js';
import type { QueuedMessage, QueuedRecipient } from '../spool/types.js';
import type { EgressSource } from './egress.js';
import type { RoundContext, RoundControl } from './round.js';

/** The recipients of one message that share a next hop. */
export interface Group {
  readonly key: string;
  readonly hop?: NextHop;
  readonly recipients: QueuedRecipient[];
  /** Set when routing failed: the results to apply without calling the agent. */
  readonly routeFailure?: (r: QueuedRecipient) => RecipientResult;
}

const BODY_ERROR_CODES = new Set(['ENOENT', 'EIO', 'EACCES', 'EISDIR', 'EBADF']);

/**
 * The flow (sender) of a message, for fairness within a destination (dispatcher.ts): its API key,
 * else its SMTP user, else its sender's domain ('' for bounces).
 */
export function flowOf(msg: Pick<QueuedMessage, 'mailFrom' | 'origin'>): string {
  const o = msg.origin;
  if (o?.apiKey !== undefined) return `key:${o.apiKey}`;
  if (o?.authUser !== undefined) return `user:${o.authUser}`;
  return `domain:${msg.mailFrom.slice(msg.mailFrom.lastIndexOf('@') + 1).toLowerCase()}`;
}

/** Calls the agent for one group; undefined when the round was aborted before it started. */
export async function deliverGroup(
  ctx: RoundContext, msg: QueuedMessage, g: Group, ctl: RoundControl, state: { bodyFailure?: string }, shaping: DeliveryRequest['shaping'], source?: EgressSource, site?: string,
): Promise<RecipientResult[] | undefined> {
  if (ctl.signal.aborted || !g.hop) return undefined;
  const noteBodyError = (err: unknown): void => {
    const code = (err as NodeJS.ErrnoException | undefined)?.code;
    if (err instanceof StoreError || (code && BODY_ERROR_CODES.has(code))) state.bodyFailure ??= `body cannot be read: ${(err as Error).message}`;
  };
  const req: DeliveryRequest = {
    queueId: msg.id, mailFrom: msg.mailFrom, bodyType: msg.bodyType, smtputf8: msg.smtputf8, ret: msg.ret,
    ...(msg.utf8Headers !== undefined ? { utf8Headers: msg.utf8Headers } : {}),
    envid: msg.envid, size: msg.size, nextHop: g.hop, signal: ctl.signal, ...(shaping ? { shaping } : {}), ...(source ? { egress: source } : {}), ...(site && site !== g.key ? { site } : {}),
    recipients: g.recipients.map((r) => ({ idx: r.idx, address: r.address, notify: r.notify, orcpt: r.orcpt })),
    openBody: () => {
      try {
        const s = ctx.store.openBody(msg.id);
        s.once('error', noteBodyError);
        return s;
      } catch (err) {
        noteBodyError(err);
        return new Readable({ read() { this.destroy(err as Error); } });
      }
    },
  };
  try {
    const rp = ctx.returnPath?.(msg, g.hop);
    if (!rp) return await ctx.agent.deliver(req);
    // One transaction per recipient, each with its own return path, one after another (the
    // agent's pool hands the same connection to the next).
    const results: RecipientResult[] = [];
    for (const r of req.recipients) {
      if (ctl.signal.aborted) break;
      results.push(...await ctx.agent.deliver({ ...req, mailFrom: rp(r.idx), recipients: [r] }));
    }
    return results;
  } catch (err) {
    ctx.logger.error({ err, queueId: msg.id, nextHop: g.key }, 'delivery agent threw; deferring');
    return g.recipients.map((r) => ({ idx: r.idx, outcome: 'deferred', code: 451, dsnStatus: '4.3.0', diagnostic: `451 4.3.0 local delivery error: ${(err as Error)?.message ?? String(err)}`, remote: false, bounceClass: 'TransientFailure' }));
  }
}

