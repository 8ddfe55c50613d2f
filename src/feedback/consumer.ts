/**
 * The `feedback` internal consumer (transport `internal`, name "feedback"): reads the mail that
 * comes back about mail we sent, at our return paths (bounce/return-path.ts) and the addresses
 * routed to it (a feedback-loop or abuse mailbox), and turns it into events about the original:
 *
 * - an RFC 5965 ARF report or another complaint format (parseArf) → `recipient.complained`, with
 *   the feedback type and the reporting provider;
 * - an RFC 3464 DSN or another bounce format (parseBounce) → `recipient.bounced` for each failed
 *   recipient (with its status, diagnostic and bounce class; `feedback.kind` says it came back
 *   later, not during our delivery); delayed reports are logged only;
 * - an auto-reply (RFC 3834) → nothing (it is not a bounce).
 * (The List-Unsubscribe mailto has a consumer of its own, `unsubscribe`: src/tracking/.)
 *
 * Which message and recipient: the return path's token (queue ID and recipient index, signed: a
 * bad MAC is forged and ignored) is checked against the `message.received` event of that queue
 * ID (the recipient address and the message's metadata come from it); without a token, the
 * enclosed original's Message-ID is looked up in the event log. What cannot be matched is
 * logged and dropped. The consumer never writes the store: it hands its events back with the
 * results (RecipientResult.events), and the scheduler writes them in the same commit as the
 * feedback message's own outcome. Every recipient of the feedback message is delivered
 * (consumed) whatever it held.
 */
import type { DeliveryRequest, RecipientResult } from '../delivery/types.js';
import type { InternalConsumer } from '../local/internal-agent.js';
import type { ReturnPaths, ReturnPathTarget } from '../bounce/return-path.js';
import type { EventRecord, StoredEvent } from '../events/record.js';
import type { Logger } from '../core/log.js';
import { parseArf } from './arf-parse.js';
import { parseBounce } from './dsn-parse.js';
import type { FeedbackLimits } from './types.js';

/** What the consumer needs around it. */
export interface FeedbackConsumerOptions {
  /** The return paths of bounces.domain, when configured. */
  readonly returnPaths?: ReturnPaths;
  readonly limits: () => FeedbackLimits;
  /** The `message.received` event of a queue ID, or of a Message-ID (event log lookups). */
  readonly received: (q: { readonly queueId?: string; readonly messageId?: string }) => Promise<StoredEvent | undefined>;
  readonly now: () => number;
  readonly logger: Logger;
}

async function readAll(req: DeliveryRequest, max: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let n = 0;
  const s = req.openBody();
  try {
    for await (const c of s) {
      const b = c as Buffer;
      if (n + b.length > max) {
        parts.push(b.subarray(0, max - n));
        n = max;
        break;
      }
      parts.push(b);
      n += b.length;
    }
  } finally {
    s.destroy();
  }
  return Buffer.concat(parts, n);
}

/** The fields of the original copied into events about it: queue ID, recipient, Message-ID, sender, tags, metadata, origin. */
function aboutOriginal(rec: StoredEvent, recipient: string): Pick<EventRecord, 'queueId' | 'recipient' | 'messageId' | 'mailFrom' | 'tags' | 'metadata' | 'origin'> {
  return {
    ...(rec.queueId !== undefined ? { queueId: rec.queueId } : {}), recipient,
    ...(rec.messageId !== undefined ? { messageId: rec.messageId } : {}),
    ...(rec.mailFrom !== undefined ? { mailFrom: rec.mailFrom } : {}),
    ...(rec.tags !== undefined ? { tags: rec.tags } : {}),
    ...(rec.metadata !== undefined ? { metadata: rec.metadata } : {}),
    ...(rec.origin !== undefined ? { origin: rec.origin } : {}),
  };
}

const same = (a: string, b: string): boolean => a.toLowerCase() === b.toLowerCase();

/** Makes the consumer. */
export function feedbackConsumer(o: FeedbackConsumerOptions): InternalConsumer {
  return async (req) => {
    const consumed = (events: EventRecord[]): RecipientResult[] => req.recipients.map((r, i) => ({
      idx: r.idx, outcome: 'delivered' as const, code: 250, dsnStatus: '2.0.0',
      diagnostic: `250 2.0.0 feedback read (${events.length} event${events.length === 1 ? '' : 's'})`, remote: false,
      ...(i === 0 && events.length ? { events } : {}),
    }));
    const now = o.now();
    const events: EventRecord[] = [];
    // The signed return paths this mail came to.
    const targets: ReturnPathTarget[] = [];
    let forged = 0;
    for (const r of req.recipients) {
      if (!o.returnPaths?.isOurs(r.address)) continue;
      const t = o.returnPaths.decode(r.address);
      if (t) targets.push(t);
      else forged++;
    }
    if (forged && targets.length === 0 && events.length === 0) {
      o.logger.info({ queueId: req.queueId, mailFrom: req.mailFrom }, 'feedback: return path with a bad signature (forged or mangled); ignored');
      return consumed([]);
    }
    const limits = o.limits();
    const raw = await readAll(req, limits.maxMessageBytes);
    // Which original and recipient: the token's, checked against the event log; else the enclosed Message-ID.
    const originals = new Map<string, StoredEvent>();
    const byToken = async (t: ReturnPathTarget): Promise<{ rec: StoredEvent; recipient: string } | undefined> => {
      const rec = originals.get(t.queueId) ?? await o.received({ queueId: t.queueId });
      if (!rec) return undefined;
      originals.set(t.queueId, rec);
      const recipient = rec.recipients?.[t.idx];
      return recipient === undefined ? undefined : { rec, recipient };
    };
    const byMessageId = async (messageId: string | undefined, address: string | undefined): Promise<{ rec: StoredEvent; recipient: string } | undefined> => {
      if (!messageId || !address) return undefined;
      const rec = await o.received({ messageId });
      const recipient = rec?.recipients?.find((x) => same(x, address));
      return rec && recipient ? { rec, recipient } : undefined;
    };

    const arf = await parseArf(raw, limits);
    if (arf.kind !== 'unknown') {
      const found = targets.length ? await byToken(targets[0]!) : await byMessageId(arf.original?.messageId, arf.recipient);
      if (!found) {
        o.logger.info({ queueId: req.queueId, feedbackType: arf.feedbackType, messageId: arf.original?.messageId }, 'feedback: complaint about no message we know; ignored');
      } else {
        events.push({
          type: 'recipient.complained', at: now, ...aboutOriginal(found.rec, found.recipient),
          feedback: { kind: arf.kind, ...(arf.feedbackType ? { feedbackType: arf.feedbackType } : {}), ...(arf.userAgent ? { userAgent: arf.userAgent } : {}), ...(arf.provider ? { provider: arf.provider } : {}), queueId: req.queueId },
        });
      }
      return consumed(events);
    }
    const report = await parseBounce(raw, limits);
    if (report.kind === 'autoreply' || report.kind === 'unknown') {
      o.logger.info({ queueId: req.queueId, kind: report.kind, why: report.autoReply ?? report.reason }, 'feedback: not a bounce; nothing recorded');
      return consumed(events);
    }
    for (const br of report.recipients) {
      if (br.action !== 'failed') continue;
      let found: { rec: StoredEvent; recipient: string } | undefined;
      for (const t of targets) {
        const f = await byToken(t);
        // With several tokens (rare), the one whose recipient the report names; with one, that one.
        if (f && (targets.length === 1 || same(f.recipient, br.address) || (br.originalRecipient && same(f.recipient, br.originalRecipient)))) { found = f; break; }
      }
      found ??= targets.length ? undefined : await byMessageId(report.original?.messageId, br.originalRecipient ?? br.address);
      if (!found) {
        o.logger.info({ queueId: req.queueId, rcpt: br.address }, 'feedback: bounce for no message we know; ignored');
        continue;
      }
      events.push({
        type: 'recipient.bounced', at: now, ...aboutOriginal(found.rec, found.recipient),
        ...(br.status ? { dsn: br.status } : {}),
        reply: (br.diagnostic ?? `${br.status ?? ''} (asynchronous bounce)`).slice(0, 1000),
        ...(br.remoteMta ? { remoteHost: br.remoteMta } : {}),
        ...(br.class ? { bounceClass: br.class } : {}),
        feedback: { kind: report.kind, ...(report.reportingMta ? { reportingMta: report.reportingMta } : {}), queueId: req.queueId },
      });
    }
    return consumed(events);
  };
}
