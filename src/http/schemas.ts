/**
 * The zod schemas of the HTTP API: the handlers validate with them (fastify-type-provider-zod) and
 * the OpenAPI document is generated from them, so the two cannot disagree.
 *
 * Built per server by `apiSchemas(limits)`, since bounds come from the configuration
 * (limits.maxRecipients, maxTags, maxTagLength, maxMetadataBytes). Every refinement names the bad
 * field, so a 400 lists each one with its path.
 */
import { z } from 'zod';
import type { PostlineConfig } from '../config/schema.js';
import addressparser from 'nodemailer/lib/addressparser';
import { parsePath } from '../rfc5321/address.js';
import { EVENT_TYPES, RESERVED_EVENT_TYPES } from '../events/record.js';
import { QUEUE_STATES } from './store.js';

/** No CR, LF or NUL (header injection). */
const NO_CTL = /^[^\r\n\0]*$/;
/** A header field name (RFC 5322 2.2: printable US-ASCII except ':'), 1..76 characters. */
const HEADER_NAME = /^[\x21-\x39\x3b-\x7e]{1,76}$/;
/** Header fields set from the JSON fields, or by Postline: not accepted in `headers`. */
const RESERVED_HEADERS = new Set([
  'from', 'to', 'cc', 'bcc', 'reply-to', 'subject', 'content-type', 'content-transfer-encoding', 'mime-version',
  'x-postline-tags', 'x-postline-metadata', 'x-postline-tracking', 'received', 'return-path',
]);

const safeText = (max: number) => z.string().max(max).regex(NO_CTL, 'must not contain CR, LF or NUL');

/**
 * Characters refused anywhere in an address: C0 and C1 controls, DEL, the line and paragraph
 * separators U+2028/2029 and the bidi embeddings, overrides and isolates U+202A-202E, U+2066-2069
 * (they make an address display as another one).
 */
const BAD_ADDRESS_CHARS = /[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]/u;
/** A source route before the mailbox ("@a,@b:user@domain", RFC 5321 4.1.2 A-d-l; obsolete). */
const SOURCE_ROUTE = /(^|<)\s*@[^<>]*:/;
/** The 400 reason for an address in neither accepted form. */
const ADDRESS_FORMS = 'not a valid address: give "local@domain", "Name <local@domain>" or {"name": "Name", "address": "local@domain"}';

/** Why `a` is not a bare address local@domain (undefined when it is one). */
function mailboxProblem(a: string, formsHint: string): string | undefined {
  if (BAD_ADDRESS_CHARS.test(a)) return 'must not contain control characters, U+2028/U+2029 or bidi control characters (U+202A-202E, U+2066-2069)';
  if (SOURCE_ROUTE.test(a)) return 'source routes ("@a,@b:user@domain") are not accepted: give only user@domain';
  const p = parsePath(`<${a}>`);
  return p.ok && p.rest === '' ? undefined : formsHint;
}

/**
 * Parses an address string of the API: "local@domain" or "Name <local@domain>" (one mailbox, RFC
 * 5322 3.4 name-addr, parsed with nodemailer's addressparser; no groups, no lists).
 * @returns the display name ('' when none) and the address, or `{ error }` naming why not.
 */
export function parseAddressString(s: string): { name: string; address: string } | { error: string } {
  // The same string is parsed several times per request (schema, recipients, composing): remembered.
  const hit = parsedAddresses.get(s);
  if (hit) return { ...hit };
  const r = parseAddressUncached(s);
  if (parsedAddresses.size >= 512) parsedAddresses.clear();
  parsedAddresses.set(s, r);
  return { ...r };
}

const parsedAddresses = new Map<string, Readonly<{ name: string; address: string } | { error: string }>>();

function parseAddressUncached(s: string): { name: string; address: string } | { error: string } {
  if (BAD_ADDRESS_CHARS.test(s)) return { error: mailboxProblem(s, ADDRESS_FORMS)! };
  if (SOURCE_ROUTE.test(s)) return { error: mailboxProblem(s, ADDRESS_FORMS)! };
  if (!s.includes('<')) {
    const why = mailboxProblem(s, ADDRESS_FORMS);
    return why ? { error: why } : { name: '', address: s };
  }
  if (!/>\s*$/.test(s)) return { error: ADDRESS_FORMS };
  const list = addressparser(s);
  const one = list.length === 1 ? list[0] : undefined;
  if (!one || 'group' in one || !one.address) return { error: `${ADDRESS_FORMS} (one address, no groups or lists)` };
  const why = mailboxProblem(one.address, ADDRESS_FORMS);
  if (why) return { error: why };
  if (/[\r\n\0]/.test(one.name)) return { error: 'the display name must not contain CR, LF or NUL' };
  return { name: one.name, address: one.address };
}

/** An address as the SMTP grammar accepts it (RFC 5321 4.1.2; UTF-8 allowed, RFC 6531). */
export const mailbox = z.string().min(3).max(320).superRefine((a, ctx) => {
  const why = mailboxProblem(a, 'not a valid email address (local@domain)');
  if (why) ctx.addIssue({ code: 'custom', message: why });
});

/** A reverse-path: an address, or '' for the null sender. */
const reversePath = z.union([z.literal(''), mailbox]);

/** `"a@example.com"`, `"Name <a@example.com>"` or `{ name, address }`. */
const addressInput = z.union([
  z.string().max(1000).superRefine((a, ctx) => {
    const p = parseAddressString(a);
    if ('error' in p) ctx.addIssue({ code: 'custom', message: p.error });
  }),
  z.object({
    name: safeText(256).optional(),
    address: z.string().max(320).superRefine((a, ctx) => {
      const why = mailboxProblem(a, ADDRESS_FORMS);
      if (why) ctx.addIssue({ code: 'custom', message: why });
    }),
  }).strict(),
]).meta({ id: 'Address', description: 'an address: "local@domain", "Name <local@domain>", or { name, address }' });

export type AddressInput = z.infer<typeof addressInput>;

/** The display name ('' when none) and address of a validated AddressInput. */
export const nameAndAddress = (a: AddressInput): { name: string; address: string } => {
  if (typeof a !== 'string') return { name: a.name ?? '', address: a.address };
  const p = parseAddressString(a);
  return 'error' in p ? { name: '', address: a } : p;
};

/** The address of an AddressInput. */
export const addressOf = (a: AddressInput): string => nameAndAddress(a).address;

const queueId = z.string().regex(/^[0-9A-Z]{18}$/, 'not a queue ID (18 characters 0-9 A-Z)');

/** sendAt: an RFC 3339 date-time, or ms since epoch. */
const sendAt = z.union([z.iso.datetime({ offset: true }), z.number().int().min(0)])
  .describe('do not deliver before this time: RFC 3339 date-time or ms since epoch');

/**
 * The event types one `type` item names: itself when known, or for "prefix.*" every known type
 * with that prefix (as `postline events --type recipient.*`); [] when none.
 */
export function expandEventType(t: string): string[] {
  const known: readonly string[] = [...EVENT_TYPES, ...RESERVED_EVENT_TYPES];
  if (t.endsWith('.*')) return known.filter((k) => k.startsWith(t.slice(0, -1)));
  return known.includes(t) ? [t] : [];
}

/** Builds every schema with the bounds of `limits`. */
export function apiSchemas(limits: PostlineConfig['limits']) {
  // The same rules as cleanup's validateMeta (cleanup/meta.ts), so a 400 names the field before submit.
  const tags = z.array(z.string().min(1).max(limits.maxTagLength).regex(/^[^\x00-\x1f\x7f]*$/, 'must not contain control characters'))
    .max(limits.maxTags).describe(`labels copied into every event (at most ${limits.maxTags}, each 1..${limits.maxTagLength} characters)`);
  const metadata = z.record(z.string().min(1).max(limits.maxTagLength), z.string().max(limits.maxMetadataBytes))
    .refine((m) => Buffer.byteLength(JSON.stringify(m)) <= limits.maxMetadataBytes, `metadata larger than ${limits.maxMetadataBytes} bytes as JSON`)
    .describe(`string to string, copied into every event (at most ${limits.maxMetadataBytes} bytes as JSON)`);

  const tracking = z.object({
    opens: z.boolean().optional().describe('add the open pixel (default: tracking.opens)'),
    clicks: z.boolean().optional().describe('rewrite links to tracking links (default: tracking.clicks)'),
  }).strict().describe('open and click tracking of this message (only when the server has tracking.enabled); each recipient gets its own links')
    .meta({ title: 'Tracking' });

  const attachment = z.object({
    filename: safeText(255).min(1),
    contentType: z.string().max(255).regex(/^[\w.+-]+\/[\w.+-]+$/, 'not a MIME type (type/subtype)').optional(),
    content: z.base64().describe('the content, base64'),
    contentId: z.string().min(1).max(255).regex(/^[^\r\n\0<>\s]+$/, 'no spaces, <, >, CR, LF or NUL').optional()
      .describe('for inline images: the html refers to it as cid:VALUE'),
  }).strict().meta({ title: 'Attachment' });

  const headers = z.record(
    z.string().regex(HEADER_NAME, 'not a header field name (printable ASCII without ":"; no CR, LF or NUL)')
      .refine((n) => !RESERVED_HEADERS.has(n.toLowerCase()), 'set by a field of the request or by Postline, not in headers'),
    z.string().max(998).regex(NO_CTL, 'must not contain CR, LF or NUL'),
  ).describe('extra header fields (name to value)');

  const sendMessage = z.object({
    from: addressInput,
    to: z.array(addressInput).default([]),
    cc: z.array(addressInput).default([]),
    bcc: z.array(addressInput).default([]).describe('recipients not shown in the header'),
    replyTo: z.union([addressInput, z.array(addressInput)]).optional(),
    subject: safeText(998).optional(),
    text: z.string().optional(),
    html: z.string().optional(),
    attachments: z.array(attachment).max(100).default([]),
    headers: headers.optional(),
    tags: tags.optional(),
    metadata: metadata.optional(),
    sendAt: sendAt.optional(),
    tracking: tracking.optional(),
  }).strict().superRefine((m, ctx) => {
    const n = new Set([...m.to, ...m.cc, ...m.bcc].map((a) => addressOf(a).toLowerCase())).size;
    if (n === 0) ctx.addIssue({ code: 'custom', path: ['to'], message: 'at least one recipient in to, cc or bcc' });
    if (n > limits.maxRecipients) ctx.addIssue({ code: 'custom', path: ['to'], message: `more than ${limits.maxRecipients} recipients` });
    if (m.text === undefined && m.html === undefined && m.attachments.length === 0) {
      ctx.addIssue({ code: 'custom', path: [], message: 'give text, html or an attachment' });
    }
  }).meta({ title: 'SendMessage' });

  const sendRaw = z.object({
    mailFrom: reversePath.describe("envelope sender ('' for the null sender)"),
    rcptTo: z.array(mailbox).min(1).max(limits.maxRecipients),
    raw: z.base64().min(1).describe('the RFC 5322 message, base64'),
    tags: tags.optional(),
    metadata: metadata.optional(),
    sendAt: sendAt.optional(),
    tracking: tracking.optional(),
  }).strict().meta({ title: 'SendRaw' });

  const accepted = z.object({
    messageId: z.string().optional().describe('the Message-ID header field value, with angle brackets'),
    recipients: z.array(z.object({
      address: z.string(),
      queueId: z.string().optional(),
      status: z.enum(['queued', 'failed', 'suppressed']).describe('suppressed: on the suppression list, not queued'),
      reason: z.string().optional().describe('status suppressed: the list entry\'s reason (hard-bounce, soft-bounce, complaint, unsubscribe, manual)'),
      error: z.object({ status: z.number(), code: z.string(), message: z.string() }).optional().describe('why it was not queued (status failed)'),
    })),
  }).meta({ title: 'Accepted' });

  const event = z.looseObject({
    id: z.number().int(),
    type: z.string(),
    at: z.number().int().describe('ms since epoch'),
    queueId: z.string().optional(),
    recipient: z.string().optional(),
    mailFrom: z.string().optional(),
    recipients: z.array(z.string()).optional(),
    messageId: z.string().optional(),
    tags: z.array(z.string()).optional(),
    metadata: z.record(z.string(), z.string()).optional(),
    origin: z.looseObject({ kind: z.string(), listener: z.string().optional(), apiKey: z.string().optional() }).optional(),
    size: z.number().optional(),
    nextHop: z.string().optional(),
    remoteHost: z.string().optional(),
    tls: z.object({ version: z.string(), cipher: z.string(), verified: z.boolean().optional().describe('the certificate chain was trusted and named the host') }).optional(),
    dsn: z.string().optional(),
    reply: z.string().optional(),
    bounceClass: z.string().optional().describe('recipient.deferred, bounced, expired: why, one of a closed set (InvalidRecipient, BadDomain, MailboxFull, DnsFailure, ...)'),
    attempt: z.number().optional(),
    durationMs: z.number().optional(),
    delayMs: z.number().optional(),
    reason: z.string().optional(),
    check: z.string().optional().describe('message.rejected: the policy check that refused (dnsbl:ZONE, rate:..., auth-throttle, suppression, ...)'),
    match: z.string().optional().describe('recipient.dropped: the list entry that matched (the address, or *@domain)'),
    detail: z.string().optional().describe('the list entry\'s description (the bounce reply, a note)'),
    expiresAt: z.number().optional().describe('recipient.suppressed: the entry stops applying at this time, ms since epoch'),
    dsnQueueId: z.string().optional(),
    dsnKind: z.string().optional(),
    auth: z.looseObject({
      spf: z.string(), spfDomain: z.string().optional(), spfHelo: z.string(), dkim: z.string(),
      dkimSignatures: z.array(z.object({ domain: z.string(), selector: z.string(), result: z.string() })).optional(),
      dmarc: z.string(), dmarcDomain: z.string().optional(), dmarcPolicy: z.string().optional(), dmarcAction: z.string().optional(),
      arc: z.string(), arcChain: z.number().optional(), arcSealed: z.boolean().optional(),
    }).optional().describe('message.received on an mx listener: SPF (MAIL FROM and HELO), DKIM, DMARC and ARC results'),
    url: z.string().optional().describe('recipient.clicked: the original URL'),
    userAgent: z.string().optional().describe('recipient.opened / clicked / unsubscribed: the User-Agent'),
    clientAddress: z.string().optional().describe('recipient.opened / clicked / unsubscribed: the HTTP client address'),
    first: z.boolean().optional().describe('recipient.opened / clicked: the first of its type for this message and recipient'),
    machine: z.boolean().optional().describe('recipient.opened / clicked: made by a prefetcher, image proxy or link scanner'),
    machineReason: z.string().optional().describe('why machine (apple-mpp, google-image-proxy, scanner:..., soon-after-delivery, ...)'),
    scope: z.string().optional().describe('recipient.unsubscribed: the sender domain it applies to; recipient.suppressed, suppression.removed, recipient.dropped: the list entry\'s scope (a sending domain, or * for every sender)'),
    source: z.string().optional().describe('recipient.unsubscribed: one-click, page or mailto; recipient.suppressed, suppression.removed: the event id that made the change, or operator, api, import'),
  }).meta({ title: 'Event' });

  const attempt = z.object({
    at: z.number().int().describe('ms since epoch'),
    outcome: z.string().describe('delivered, relayed, deferred, bounced, expired, or dropped (suppressed)'),
    attempt: z.number().optional(),
    remoteHost: z.string().optional(),
    reply: z.string().optional(),
    dsn: z.string().optional(),
    bounceClass: z.string().optional().describe('deferred, bounced, expired: why (InvalidRecipient, MailboxFull, DnsFailure, ...)'),
    durationMs: z.number().optional(),
    tls: z.object({ version: z.string(), cipher: z.string(), verified: z.boolean().optional().describe('the certificate chain was trusted and named the host') }).optional(),
  }).meta({ title: 'Attempt' });

  const messageStatus = z.object({
    queueId: z.string(),
    messageId: z.string().optional(),
    mailFrom: z.string(),
    size: z.number().optional().describe('bytes as stored'),
    arrivedAt: z.number().optional(),
    tags: z.array(z.string()),
    metadata: z.record(z.string(), z.string()),
    inQueue: z.boolean().describe('still in the queue (else: known from its retained events)'),
    state: z.enum(['queued', 'held', 'done', 'deleted', 'quarantined', 'rejected']).describe('rejected: refused when it arrived (known only from its message.rejected event; see reply)'),
    reply: z.string().optional().describe('state rejected: the reply the message was refused with'),
    nextAttemptAt: z.number().optional(),
    recipients: z.array(z.object({
      address: z.string(),
      status: z.enum(['queued', 'deferred', 'delivered', 'relayed', 'bounced', 'expired', 'deleted', 'rejected', 'suppressed'])
        .describe('suppressed: accepted over SMTP and dropped (on the suppression list, suppression.mode drop)'),
      attempts: z.array(attempt),
    })),
  }).meta({ title: 'MessageStatus' });

  const knownTypes: readonly string[] = [...EVENT_TYPES, ...RESERVED_EVENT_TYPES];
  const eventsQuery = z.object({
    after: z.coerce.number().int().min(0).default(0).describe('cursor: events with a greater id'),
    since: z.coerce.number().int().min(0).optional().describe('only events at or after this time (ms since epoch)'),
    type: z.string().max(1000).optional().describe('comma-separated event types; "recipient.*" for every type with that prefix')
      .refine((t) => t === undefined || t.split(',').every((x) => expandEventType(x.trim()).length > 0), `unknown event type (known: ${knownTypes.join(', ')}, or a prefix such as recipient.*)`),
    limit: z.coerce.number().int().min(1).max(1000).default(100),
  }).strict();
  const eventsPage = z.object({
    events: z.array(event),
    next: z.number().int().describe('cursor for the next call: the last id here; when none, `after` or the newest id if that is smaller (so no future event is skipped)'),
  }).meta({ title: 'EventPage' });

  const queueQuery = z.object({
    state: z.enum(QUEUE_STATES).optional(),
    sender: z.string().max(320).optional().describe("exact envelope sender ('' for the null sender)"),
    domain: z.string().min(1).max(253).optional().describe('only messages with a pending recipient in this domain'),
    after: queueId.optional().describe('cursor: queue IDs after this one'),
    limit: z.coerce.number().int().min(1).max(1000).default(100),
  }).strict();
  const queuePage = z.object({
    items: z.array(z.object({
      id: z.string(), mailFrom: z.string(), size: z.number(), arrivedAt: z.number(), held: z.boolean(),
      nextAttemptAt: z.number(), attempts: z.number(), lastError: z.string().optional(), pending: z.array(z.string()),
    })),
    next: z.string().optional().describe('cursor for the next page, when there is one'),
    counts: z.record(z.string(), z.number()).describe('messages by state'),
  }).meta({ title: 'QueuePage' });

  const queueParams = z.object({ queueId }).strict();
  const queueAction = z.object({ queueId: z.string(), action: z.enum(['flushed', 'held', 'released', 'deleted']) }).meta({ title: 'QueueAction' });

  const idempotencyHeaders = z.looseObject({
    'idempotency-key': z.string().regex(/^[\x21-\x7e]{1,255}$/, '1 to 255 visible ASCII characters').optional()
      .describe('the same key with the same body within 24 h gives the first answer again'),
  });

  return {
    sendMessage, sendRaw, accepted, event, messageStatus, eventsQuery, eventsPage,
    queueQuery, queuePage, queueParams, queueAction, idempotencyHeaders,
  };
}

export type ApiSchemas = ReturnType<typeof apiSchemas>;
export type SendMessageInput = z.infer<ApiSchemas['sendMessage']>;
export type SendRawInput = z.infer<ApiSchemas['sendRaw']>;
export type AcceptedAnswer = z.infer<ApiSchemas['accepted']>;
export type MessageStatusAnswer = z.infer<ApiSchemas['messageStatus']>;
