/**
 * The `suppression` section of the configuration (issue 10 section 4; src/suppression/): whether
 * mail to suppressed recipients is refused or dropped, when bounces put an address on the list,
 * and in which scope. Kept apart from schema.ts by size only; the README documents every key.
 * Live on SIGHUP (read at each use).
 */
import { z } from 'zod';

export const suppressionSchema = z.object({
  /**
   * Enforce the list (SMTP RCPT of authenticated or trusted clients, the HTTP API) and add to it
   * from the event log (bounces, complaints, unsubscribes). false: neither; the list can still be
   * managed (`postline suppression`, /api/v1/suppressions).
   */
  enabled: z.boolean().default(true),
  /**
   * SMTP: reject answers RCPT with 550 5.7.1 naming the reason; drop accepts the recipient (250)
   * and never delivers to it, with a recipient.dropped event. The API answers status "suppressed"
   * either way.
   */
  mode: z.enum(['reject', 'drop']).default('reject'),
  /** Soft bounces (and expiries) in a row after which an address is suppressed; 0 = never. */
  softBounceLimit: z.number().int().min(0).max(1000).default(5),
  /**
   * The scope of automatic adds: sender-domain (the entry applies to mail from the bounced
   * message's sender domain) or global (to every sender). Entries of both kinds always apply.
   */
  scope: z.enum(['sender-domain', 'global']).default('sender-domain'),
}).strict();

export type SuppressionConfig = z.infer<typeof suppressionSchema>;
