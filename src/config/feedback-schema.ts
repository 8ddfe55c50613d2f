/**
 * The `bounces` section: signed per-recipient return paths (bounce/return-path.ts) and the bounce
 * domain whose mail the feedback consumer reads. Kept apart from schema.ts by size only; the
 * README documents every key.
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
