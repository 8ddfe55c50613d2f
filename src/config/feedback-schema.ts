/**
 * The `bounces` section: signed per-recipient return paths (bounce/return-path.ts) and the bounce
 * domain whose mail the feedback consumer reads; and the `feedback` section: limits of the inbound
 * report parsers (src/feedback/: parseBounce for DSNs and other bounces, parseArf for complaints;
 * defaults as src/feedback/types.ts DEFAULT_FEEDBACK_LIMITS). Kept apart from schema.ts by size
 * only; the README documents every key.
 */
import { z } from 'zod';

export const bouncesSchema = z.object({
  /**
   * The bounce domain ("bounces.example.test"). When set, mail we send for our users (API,
   * authenticated or trusted SMTP, the sendmail command) leaves with a signed return path at it,
   * one per recipient, so asynchronous bounces map back to their queue entry and recipient.
   * Publish an MX for it pointing at Postline and route it to the internal feedback consumer.
   */
  domain: z.string().min(1).max(253).regex(/^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)+\.?$/, 'expected a domain such as bounces.example.com').optional(),
  /** First word of the return path's local part. */
  prefix: z.string().regex(/^[a-z0-9]{1,8}$/, 'expected 1-8 lower-case letters or digits').default('b'),
  /** File with the HMAC key (at least 16 bytes); default dataDir/return-path.key, made at first use. */
  keyFile: z.string().min(1).optional(),
}).strict();

export type BouncesConfig = z.infer<typeof bouncesSchema>;

const KiB = 1024;
const MiB = 1024 * KiB;

export const feedbackSchema = z.object({
  /** Bytes of an inbound report read at most; the rest is ignored (reports put their machine-readable parts first). */
  maxMessageBytes: z.number().int().min(KiB).max(64 * MiB).default(MiB),
  /** Bytes kept of each MIME part of a report (as transfer-encoded). */
  maxPartBytes: z.number().int().min(KiB).max(16 * MiB).default(128 * KiB),
  /** MIME parts of a report read at most. */
  maxParts: z.number().int().min(1).max(1000).default(64),
  /** Longest header section of one part, bytes. */
  maxHeaderBytes: z.number().int().min(KiB).max(MiB).default(64 * KiB),
  /** Recipients (or complained addresses) taken from one report at most. */
  maxRecipients: z.number().int().min(1).max(100_000).default(1000),
}).strict();

export type FeedbackConfig = z.infer<typeof feedbackSchema>;
