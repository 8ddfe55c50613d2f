/**
 * Final outcomes whose write failed (RoundContext.unrecorded): written again before the message is
 * tried again, and overlaid on the stored state meanwhile, so a full disk does not turn retries
 * into duplicate deliveries.
 */
import type { QueuedMessage } from '../spool/types.js';
import type { RoundContext } from './round.js';

/**
 * Writes the outcome writes that failed earlier for `id`, oldest first.
 * @returns true when none are left (all written now, or there were none). Never throws.
 */
export async function writeUnrecorded(ctx: Pick<RoundContext, 'store' | 'logger' | 'unrecorded'>, id: string): Promise<boolean> {
  const list = ctx.unrecorded.get(id);
  while (list && list.length > 0) {
    try {
      await ctx.store.record(id, { updates: list[0]!.updates, next: list[0]!.next, events: list[0]!.events });
    } catch (err) {
      ctx.logger.warn({ err, queueId: id }, 'still cannot record delivery results; not delivering again yet');
      return false;
    }
    list.shift();
  }
  ctx.unrecorded.delete(id);
  return true;
}

/** Applies the final outcomes not yet written for `msg` to the copy in memory, so those recipients are not tried again. */
export function overlayUnrecorded(ctx: Pick<RoundContext, 'unrecorded'>, msg: QueuedMessage): void {
  for (const w of ctx.unrecorded.get(msg.id) ?? []) {
    for (const u of w.updates) {
      const r = msg.recipients.find((x) => x.idx === u.idx);
      if (!r) continue;
      Object.assign(r, { status: u.status, lastReply: u.lastReply ?? r.lastReply, dsnStatus: u.dsnStatus ?? r.dsnStatus, remoteMta: u.remoteMta ?? r.remoteMta, doneAt: u.doneAt ?? r.doneAt });
      if (u.dsnOwed) r.dsnOwed = u.dsnOwed;
    }
  }
}

