/**
 * The configuration keys of open and click tracking (`tracking`), List-Unsubscribe and one-click
 * unsubscribe (`unsubscribe`, RFC 2369 / RFC 8058) and Gmail's Feedback-ID header (`feedbackId`),
 * part of the schema in schema.ts (split by job; src/tracking/ reads them). All off by default;
 * the README documents every key. Reloaded on SIGHUP (the next message uses them).
 */
import { z } from 'zod';

/** A public base URL: http(s), no query or fragment; a trailing "/" is dropped. */
const baseUrl = z.string().max(512).regex(/^https?:\/\/[^\s/?#]+(\/[^\s?#]*)?$/i, 'expected an http:// or https:// URL without query or fragment')
  .transform((u) => u.replace(/\/+$/, ''));

/** A sender: an address ("news@example.com") or a domain ("example.com", which covers its subdomains too). */
const sender = z.string().min(1).max(320).regex(/^([^@\s]+@)?[^@\s]+$/, 'expected an address or a domain').transform((s) => s.toLowerCase());

const domain = z.string().min(1).max(253).regex(/^[A-Za-z0-9.-]+$/, 'expected a domain (A-labels)').transform((s) => s.toLowerCase());

/**
 * Open and click tracking (src/tracking/): the HTML parts of mail that opts in get their links
 * rewritten to BASE/t/c/TOKEN and an open pixel BASE/t/o/TOKEN. Opt-in per message (the API's
 * `tracking` field, or `X-Postline-Tracking: opens,clicks` from trusted SMTP clients), or for every
 * message of the listed API keys and senders. `enabled` is the switch for all of it.
 */
export const trackingSchema = z.object({
  enabled: z.boolean().default(false),
  /** Add the open pixel (for mail opted in by key or sender, or a message that names neither). */
  opens: z.boolean().default(true),
  /** Rewrite links (as `opens`). */
  clicks: z.boolean().default(true),
  /** The public base URL of the tracking host (the HTTP API's server); default: the http listener's address. */
  baseUrl: baseUrl.optional(),
  /** Base URL per sender domain (the envelope sender's domain or its nearest parent listed), over `baseUrl`. */
  hosts: z.record(domain, baseUrl).default({}),
  /** Track every message from these senders (addresses or domains). */
  senders: z.array(sender).max(10_000).default([]),
  /** Track every message sent with these API keys (names). */
  apiKeys: z.array(z.string().min(1).max(128)).max(10_000).default([]),
  /** The secret signing link tokens (tracking and unsubscribe), at least 16 characters; default: dataDir/link-tokens.key, made at first use. */
  secret: z.string().min(16).max(1024).optional(),
  /** An open or click this soon after the delivery, ms, is flagged `machine` (a scanner or prefetcher). */
  machineWindowMs: z.number().int().min(0).max(600_000).default(2000),
  /** Requests per minute per client address on the tracking and unsubscribe endpoints; more get 429. */
  ratePerMinute: z.number().int().min(1).max(1_000_000).default(600),
  /** Links rewritten per message at most (the rest stay as they are). */
  maxLinks: z.number().int().min(0).max(100_000).default(1000),
}).strict();

/**
 * List-Unsubscribe (RFC 2369) with one-click unsubscribe (RFC 8058) on mail that opts in: by API key,
 * tag or sender. The https URL is BASE/u/TOKEN; with `mailtoDomain`, a mailto: address
 * unsubscribe+TOKEN@mailtoDomain too. Only for mail with one recipient (every API recipient is its
 * own message); both fields are added before DKIM signs.
 */
export const unsubscribeSchema = z.object({
  enabled: z.boolean().default(false),
  senders: z.array(sender).max(10_000).default([]),
  apiKeys: z.array(z.string().min(1).max(128)).max(10_000).default([]),
  /** Mail with any of these tags. */
  tags: z.array(z.string().min(1).max(128)).max(1000).default([]),
  /** Base URL of the unsubscribe endpoint; default: tracking's (tracking.hosts, tracking.baseUrl, the http listener). */
  baseUrl: baseUrl.optional(),
  /** Domain of the mailto: address (mail to it arrives through the internal `feedback` transport); absent: no mailto:. */
  mailtoDomain: domain.optional(),
}).strict();

/** A Feedback-ID part: a tag's value ("tag:campaign" takes the tag "campaign:VALUE" or "campaign=VALUE"), a metadata value ("metadata:customer"), or a constant ("value:newsletter"). */
const feedbackField = z.string().max(200).regex(/^(tag|metadata|value):[^\s:]{1,128}$/, 'expected "tag:NAME", "metadata:KEY" or "value:TEXT"');

/** Gmail's Feedback-ID header (its feedback loop): "a:b:c:SenderId" from the message's tags and metadata. */
export const feedbackIdSchema = z.object({
  enabled: z.boolean().default(false),
  /** Up to 3 parts before the sender ID, in order. */
  fields: z.array(feedbackField).max(3).default([]),
  /** The last part: the sender's stable identifier (letters, digits, ".", "_", "-"). */
  senderId: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'expected 1-64 letters, digits, ".", "_" or "-"').optional(),
}).strict().superRefine((f, ctx) => {
  if (f.enabled && !f.senderId) ctx.addIssue({ code: 'custom', path: ['senderId'], message: 'feedbackId.enabled needs a senderId' });
});

export type TrackingConfig = z.infer<typeof trackingSchema>;
export type UnsubscribeConfig = z.infer<typeof unsubscribeSchema>;
export type FeedbackIdConfig = z.infer<typeof feedbackIdSchema>;
