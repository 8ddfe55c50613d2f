/**
 * The suppression check of outgoing mail: policy asks it at RCPT (authenticated and trusted
 * clients, recipients outside the local domains), the HTTP API for each recipient of a send.
 * Reads `suppression.enabled` and `suppression.mode` at each call (live on SIGHUP).
 */
import type { DroppedRecipient } from '../core/envelope.js';
import type { SuppressionConfig } from '../config/suppression-schema.js';
import { recipientKey, senderScope } from './address.js';
import type { Suppression, SuppressionStore } from './types.js';

/** What the guard says about one recipient of mail from one sender. */
export interface SuppressionVerdict {
  /** The list entry that matched. */
  readonly entry: Suppression;
  /** suppression.mode: refuse the recipient, or accept and drop it (SMTP only; the API never queues it). */
  readonly action: 'reject' | 'drop';
}

/** The check as policy and the API see it. */
export interface SuppressionCheck {
  /** The verdict for mail from `mailFrom` ('' null sender) to `address`, or undefined when it may be sent. Never throws. */
  verdict(mailFrom: string, address: string): SuppressionVerdict | undefined;
}

/** The recipient.dropped facts of a dropped recipient. */
export function droppedOf(address: string, v: SuppressionVerdict): DroppedRecipient {
  return { address, match: v.entry.address, scope: v.entry.scope, reason: v.entry.reason };
}

export class SuppressionGuard implements SuppressionCheck {
  /**
   * @param store the list (its `check` answers from memory or a local read; SuppressionStore)
   * @param config the running configuration (its `suppression` section is read at each call)
   */
  constructor(
    private readonly store: Pick<SuppressionStore, 'check'>,
    private readonly config: { readonly suppression: SuppressionConfig },
    private readonly now: () => number = Date.now,
    private readonly onError?: (err: unknown) => void,
  ) {}

  verdict(mailFrom: string, address: string): SuppressionVerdict | undefined {
    const c = this.config.suppression;
    if (!c.enabled) return undefined;
    const key = recipientKey(address);
    if (key === undefined) return undefined;
    let entry: Suppression | undefined;
    try {
      entry = this.store.check(senderScope(mailFrom), key, this.now());
    } catch (err) {
      // The list cannot be read (store closing): send rather than refuse on a guess.
      this.onError?.(err);
      return undefined;
    }
    return entry ? { entry, action: c.mode } : undefined;
  }
}
