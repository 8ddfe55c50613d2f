/**
 * Configuration schema (validated at boot with zod). Every key has a default; the README documents
 * each one. Names here are the interface users rely on: add, never rename.
 */
import { z } from 'zod';
import { hostname as osHostname } from 'node:os';
import { hopTlsSchema, mtaStsSchema, mxTlsSchema, tlsPolicyRuleSchema } from './delivery-tls.js';
import { sendmailSchema } from './sendmail-schema.js';
import { localSchema } from './local-schema.js';
import { bouncesSchema, feedbackSchema } from './feedback-schema.js';
import { egressSchema } from './egress-schema.js';
import { authLimitsSchema, cidr, perClientSchema, policySchema } from './abuse-schema.js';
import { arcSchema, authSchema, dkimKeySchema } from './auth-schema.js';
import { shapingSchema, throttlePatternsSchema } from './delivery-shaping.js';
import { feedbackIdSchema, trackingSchema, unsubscribeSchema } from './tracking-schema.js';
import { suppressionSchema } from './suppression-schema.js';

export { dkimKeySchema };

const MiB = 1024 * 1024;
const port = z.number().int().min(0).max(65535);

/** "1.2.3.4", "::1" or a hostname for listeners and next hops. */
const host = z.string().min(1);

/**
 * A listener's TLS policy (node:tls createSecureContext options). `ciphers` is the OpenSSL list for
 * TLS 1.2 and older (it may end in ":@SECLEVEL=0" for TLS 1.0/1.1 senders on OpenSSL 3);
 * `ciphersuites` the TLS 1.3 suites; `ecdhCurve` the key-exchange groups ("X25519:P-256:P-384").
 */
const tlsPolicySchema = z.object({
  minVersion: z.enum(['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3']).optional(),
  ciphers: z.string().min(1).optional(),
  ciphersuites: z.string().regex(/^TLS_[A-Z0-9_]+(:TLS_[A-Z0-9_]+)*$/, 'expected TLS 1.3 suite names such as TLS_AES_128_GCM_SHA256, ":"-separated').optional(),
  ecdhCurve: z.string().min(1).optional(),
}).strict();

export const listenerSchema = z.object({
  name: z.string().min(1),
  address: host.default('127.0.0.1'),
  port,
  /** mx: inbound and relay (port 25); submission: AUTH required (587/465/2525). */
  role: z.enum(['mx', 'submission']).default('mx'),
  tls: z.enum(['none', 'starttls', 'implicit']).default('starttls'),
  /** Offer AUTH before TLS on this listener (default false: AUTH only under TLS). */
  allowPlaintextAuth: z.boolean().default(false),
  /**
   * Lines ending in a bare LF (like Postfix's smtpd_forbid_bare_newline): normalize (default) ends a
   * command line at LF and stores message lines with CRLF; reject answers 550 5.5.2 (and closes the
   * session for a command line). Either way only CRLF "." CRLF ends DATA, and a bare CR is refused.
   */
  bareNewline: z.enum(['normalize', 'reject']).default('normalize'),
  /**
   * PROXY protocol (HAProxy's spec, v1 text / v2 binary / either): each connection must start with
   * a header, read on the raw socket before TLS (implicit TLS too) within timeouts.proxyHeaderMs,
   * and only peers in policy.trustedProxies may connect. Absent: off.
   */
  proxyProtocol: z.enum(['v1', 'v2', 'any']).optional(),
  /**
   * TLS versions and suites (node:tls options). Absent keys take the role's default
   * (smtpd/tls-policy.ts; README "Inbound TLS policy"): submission TLS 1.2+ with ECDHE AEAD suites only; mx TLS 1.2+ with
   * Node's wider default list for old senders.
   */
  tlsPolicy: tlsPolicySchema.optional(),
}).strict();

const localDomainSchema = z.union([
  z.string().min(1),
  z.object({
    domain: z.string().min(1),
    /** Valid recipients (full addresses or local parts). When given, others get 550 5.1.1 at RCPT. */
    recipients: z.array(z.string().min(1)).optional(),
  }).strict(),
]);

const relayhostSchema = z.object({
  host,
  port: port.default(25),
  tls: hopTlsSchema.default('opportunistic'), // a level, or { mode, caFile, servername, implicit } (delivery-tls.ts)
  auth: z.object({ username: z.string().min(1), password: z.string() }).strict().optional(),
  /** Look up MX records of host instead of using it as is (like Postfix relayhost without [brackets]). */
  mxLookup: z.boolean().default(false),
}).strict();

const routeSchema = z.object({
  /** "example.com" or "*.example.com" (subdomains). */
  domain: z.string().min(1),
  host,
  port: port.default(25),
  tls: hopTlsSchema.default('opportunistic'),
  auth: z.object({ username: z.string().min(1), password: z.string() }).strict().optional(),
  /** This route forwards mail to another organisation: mail verified on an mx listener for it is ARC-sealed (with `arc` configured). */
  arcSeal: z.boolean().default(false),
}).strict();

/**
 * The HTTP API (src/http/): on by default on loopback; `http: null` turns it off. Limits of the
 * API live here; the message limits (size, recipients, tags, metadata) are the `limits` ones.
 */
export const httpSchema = z.object({
  address: host.default('127.0.0.1'),
  port: port.default(8025),
  /**
   * HTTPS. Files as for the SMTP listeners (PEM certificate chain and key); `{}` (neither given)
   * serves the SMTP listeners' material (`tls.cert`/`tls.key`, else the self-signed pair). Absent:
   * plain HTTP (the default, on loopback).
   */
  tls: z.object({ cert: z.string().optional(), key: z.string().optional() }).strict().optional(),
  /**
   * Largest request body, bytes. Default: limits.maxMessageSize as base64 (4/3) plus 1 MiB for the
   * JSON around it (apiMaxBodyBytes). Bigger: 413.
   */
  maxBodyBytes: z.number().int().positive().optional(),
  /**
   * Whole-request deadline (headers and body), ms; slower clients get 408 (checked every second;
   * the headers alone get min(requestTimeoutMs, 60 s)). Needs a restart.
   */
  requestTimeoutMs: z.number().int().positive().default(300_000),
  /** Open connections to the API at most; more are closed at once (node's server.maxConnections). Needs a restart. */
  maxConnections: z.number().int().positive().default(1024),
  /** Recipients (to + cc + bcc, or rcptTo) of one sending request at most; more: 400. */
  maxRecipientsPerRequest: z.number().int().positive().default(1000),
  /**
   * Message bytes times recipients of one sending request at most (each recipient is its own
   * queue entry with its own copy of the message), bytes; more: 413. Default 500 MiB.
   */
  maxBytesPerRequest: z.number().int().positive().default(500 * MiB),
  /** How long an Idempotency-Key answer is kept and given again, ms (24 h). */
  idempotencyTtlMs: z.number().int().positive().default(24 * 3600_000),
  /** Require an API key with the read scope for GET /metrics (default false: open, but only on this address). */
  metricsAuth: z.boolean().default(false),
}).strict();

/** Event type names a webhook may subscribe to: a known or reserved type, or "prefix.*". */
const webhookEventName = z.string().regex(/^[a-z]+(\.[a-z_]+|\.\*)$/, 'expected an event type such as "recipient.delivered" or "recipient.*"');

/**
 * One webhook endpoint (issue 7 section 4; src/webhooks/). Events from the durable event log are
 * POSTed to `url` signed by the Standard Webhooks scheme; at least once, in id order.
 */
export const webhookSchema = z.object({
  /** Stable name: the endpoint's stored cursor is kept under it (rename = a new endpoint). */
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'expected 1-64 letters, digits, ".", "_" or "-"'),
  /** http(s) URL; checked by the SSRF guard (src/webhooks/ssrf.ts). */
  url: z.string().min(1).max(2048),
  /** "whsec_" + base64 of 16 to 64 random bytes (Standard Webhooks). */
  secret: z.string().regex(/^whsec_[A-Za-z0-9+/]+={0,2}$/, 'expected "whsec_" followed by base64')
    .refine((s) => { const n = Buffer.from(s.slice(6), 'base64').length; return n >= 16 && n <= 64; }, 'the secret must decode to 16-64 bytes'),
  /** Event types to send (exact names or "prefix.*"); absent: all. */
  events: z.array(webhookEventName).min(1).optional(),
  /** Events per request: 1 sends one object, more sends a JSON array of up to this many. */
  batch: z.number().int().min(1).max(100).default(1),
  /** Per-request deadline (connect, headers and body), ms. */
  timeoutMs: z.number().int().min(100).max(300_000).default(10_000),
  /** When the oldest unsent event is older than this, ms, the endpoint is marked failing (retries go on). */
  maxAgeMs: z.number().int().positive().default(3 * 24 * 3600_000),
  /** Allow loopback and private addresses (tests, internal receivers). Link-local and metadata stay refused. */
  allowPrivate: z.boolean().default(false),
  /** Where a new endpoint starts: "now" (the newest event at its first start) or "start" (all retained history). */
  from: z.enum(['now', 'start']).default('now'),
  retry: z.object({
    /** First wait after a failure, ms; doubles per failure. */
    initialMs: z.number().int().positive().default(5000),
    /** Longest wait between attempts, ms (also the interval once failing). */
    maxMs: z.number().int().positive().default(600_000),
    /** Random spread of each wait, as a fraction (0.2 = +-20%). */
    jitter: z.number().min(0).max(1).default(0.2),
  }).strict().prefault({}),
  /** Idle poll of the event log, ms (new events also wake the dispatcher at once). */
  pollMs: z.number().int().min(10).max(60_000).default(1000),
}).strict();

export const configSchema = z.object({
  hostname: z.string().min(1).default(() => osHostname() || 'localhost'),
  dataDir: z.string().min(1).default('./var'),
  listeners: z.array(listenerSchema).min(1).default(() => [
    { name: 'mx', address: '127.0.0.1', port: 2525, role: 'mx' as const, tls: 'starttls' as const, allowPlaintextAuth: false, bareNewline: 'normalize' as const },
    { name: 'submission', address: '127.0.0.1', port: 5870, role: 'submission' as const, tls: 'starttls' as const, allowPlaintextAuth: false, bareNewline: 'normalize' as const },
    { name: 'smtps', address: '127.0.0.1', port: 4650, role: 'submission' as const, tls: 'implicit' as const, allowPlaintextAuth: false, bareNewline: 'normalize' as const },
  ]),
  tls: z.object({
    /** PEM certificate chain file; when both are absent a self-signed pair is made in dataDir/tls/. */
    cert: z.string().optional(),
    key: z.string().optional(),
    /**
     * Several certificates chosen by SNI (RFC 6066 3): each a PEM chain and key for a server name
     * ("mx.example.com" or "*.example.com"). Entries with the same name are served side by side
     * (RSA and ECDSA: the client's signature algorithms pick). The first entry's name is the
     * default, for clients that send no SNI or an unknown name. Not together with tls.cert/key.
     */
    certificates: z.array(z.object({
      servername: z.string().min(1).max(253).regex(/^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*\.?$/, 'expected a DNS name such as mx.example.com or *.example.com'),
      cert: z.string().min(1),
      key: z.string().min(1),
    }).strict()).min(1).max(100).optional(),
  }).strict().prefault({}),
  relay: z.object({
    trustedNetworks: z.array(z.string().min(1)).default(['127.0.0.0/8', '::1/128']),
    localDomains: z.array(localDomainSchema).default([]),
    /** Where mail to postmaster (RFC 5321 4.5.1) and double bounces go; default postmaster@hostname. */
    postmaster: z.string().optional(),
  }).strict().prefault({}),
  /** Where mail for the domains and addresses we serve ends up (local-schema.ts). */
  local: localSchema.prefault({}),
  /** Signed per-recipient return paths at a bounce domain (feedback-schema.ts). */
  bounces: bouncesSchema.prefault({}),
  /** Source addresses, pools and warm-up (egress-schema.ts, scheduler/egress.ts); reloaded on SIGHUP. */
  egress: egressSchema.prefault({}),
  delivery: z.object({
    relayhost: relayhostSchema.optional(),
    /** Domain routes, tried before the relayhost and MX (like Postfix transport_maps). */
    routes: z.array(routeSchema).default([]),
    /** TCP port for MX delivery (25; tests point it at a loopback port). */
    mxPort: port.default(25),
    /** TLS for MX delivery (the default where no tlsPolicies rule matches): a level or { mode, caFile, servername }. */
    tls: mxTlsSchema.default('opportunistic'),
    /** Per-destination TLS rules (like Postfix smtp_tls_policy_maps); a match wins over `tls` and the hop's own setting. */
    tlsPolicies: z.array(tlsPolicyRuleSchema).max(10_000).default([]),
    mtaSts: mtaStsSchema.prefault({}), // MTA-STS (RFC 8461) for MX delivery
    /** Send with BDAT (RFC 3030) when the server offers CHUNKING; false: always DATA. */
    chunking: z.boolean().default(true),
    /** Name sent in EHLO; default: hostname. */
    heloName: z.string().optional(),
    /** Local address to send from (source IP); default: the system's choice. */
    sourceAddress: z.string().optional(),
    dns: z.object({
      /** "host:port" or "host"; default: the system resolvers. */
      servers: z.array(z.string().min(1)).optional(),
      timeoutMs: z.number().int().positive().default(5000),
      tries: z.number().int().positive().default(2),
    }).strict().prefault({}),
    retry: z.object({
      /** First retry after this (Postfix minimal_backoff_time 300s). */
      initialMs: z.number().int().positive().default(300_000),
      /** Longest wait between attempts (Postfix maximal_backoff_time 4000s). */
      maxMs: z.number().int().positive().default(4_000_000),
      multiplier: z.number().min(1).default(2),
      /** Random spread of each wait, as a fraction (0.1 = +-10%). */
      jitter: z.number().min(0).max(1).default(0.1),
    }).strict().prefault({}),
    /** Give up and bounce after this long in the queue (Postfix maximal_queue_lifetime 5d). */
    maxQueueLifetimeMs: z.number().int().positive().default(5 * 24 * 3600_000),
    /** Bounces (null reverse-path) give up sooner (Postfix bounce_queue_lifetime 5d). */
    bounceQueueLifetimeMs: z.number().int().positive().default(5 * 24 * 3600_000),
    /** Send a delay DSN after this long when the recipient asked NOTIFY=DELAY (0 = never). */
    delayWarningMs: z.number().int().min(0).default(4 * 3600_000),
    /** Where a bounce that cannot be delivered goes: to the postmaster, or dropped with a log line. */
    doubleBounce: z.enum(['postmaster', 'drop']).default('postmaster'),
    /**
     * Group MX destinations into sites by their MX host set (scheduler/sites.ts): domains hosted at
     * one provider share connections, the connection cap and the dead-destination cache.
     */
    sites: z.boolean().default(true),
    /**
     * Slow start: connections at once to a destination not seen for 10 minutes; the window then
     * grows with each delivery that reached the host (about one more per window-full), up to
     * connectionsPerDestination or the shaping rule, and shrinks with failed connections (Postfix
     * initial_destination_concurrency).
     */
    initialConcurrency: z.number().int().min(1).default(5),
    /** Parallel connections per destination (next hop). */
    connectionsPerDestination: z.number().int().positive().default(10),
    /** Parallel outbound connections in all. */
    maxConnections: z.number().int().positive().default(100),
    /** Recipients per transaction (Postfix default_destination_recipient_limit 50). */
    recipientsPerTransaction: z.number().int().positive().default(50),
    /** Messages sent over one connection before it is closed. */
    messagesPerConnection: z.number().int().positive().default(100),
    /** Traffic shaping rules per destination (delivery-shaping.ts); the two keys above are the defaults where none matches. */
    shaping: shapingSchema,
    /** Remote replies that suspend or throttle their destination for a while (delivery-shaping.ts; default: the big providers' "slow down" replies). */
    throttlePatterns: throttlePatternsSchema,
    /** How long an idle outbound connection is kept for reuse. */
    idleTimeoutMs: z.number().int().min(0).default(5000),
    connectTimeoutMs: z.number().int().positive().default(30_000),
    /** Greeting and command replies (Postfix smtp_helo_timeout / smtp_mail_timeout 300s). */
    commandTimeoutMs: z.number().int().positive().default(300_000),
    /** Reply to the final "." (Postfix smtp_data_done_timeout 600s). */
    dataDoneTimeoutMs: z.number().int().positive().default(600_000),
    /** Whole transaction deadline, so a peer that reads 1 byte/s cannot hold a slot forever. */
    transactionTimeoutMs: z.number().int().positive().default(1_800_000),
    /** How often the scheduler scans for due messages. */
    scanIntervalMs: z.number().int().positive().default(1000),
    /** Messages in delivery rounds at once (like Postfix qmgr_message_active_limit); the rest wait by due time. */
    maxActiveMessages: z.number().int().positive().default(10_000),
    /** Queue IDs the scheduler keeps in memory by due time (about 150 bytes each); the rest stays in the store and is read as the window empties. */
    dueWindow: z.number().int().min(100).default(100_000),
    /**
     * Head-of-line guard: a destination may have waiting for its connections what it delivered in
     * this long at its recent rate (at least 2 x connectionsPerDestination); beyond that its mail is
     * postponed (no attempt counted), so a stalled destination cannot fill maxActiveMessages.
     */
    destinationBacklogMs: z.number().int().positive().default(10_000),
    /** At shutdown, deliveries still running after this are aborted and their recipients deferred. */
    shutdownGraceMs: z.number().int().nonnegative().default(3000),
  }).strict().prefault({}),
  limits: z.object({
    /** Largest message accepted, bytes (SIZE). */
    maxMessageSize: z.number().int().positive().default(50 * MiB),
    /** Recipients per transaction; more get 452 4.5.3. */
    maxRecipients: z.number().int().positive().default(1000),
    /** Longest text line in DATA, bytes without CRLF (RFC says 998; real mail is longer). */
    maxLineLength: z.number().int().min(1000).default(64 * 1024),
    /** Transactions per session. */
    maxMessagesPerSession: z.number().int().positive().default(1000),
    /** Protocol errors before the session is closed (Postfix smtpd_hard_error_limit 20). */
    maxErrors: z.number().int().positive().default(20),
    maxConnections: z.number().int().positive().default(2000),
    maxConnectionsPerIp: z.number().int().positive().default(100),
    /** More Received headers than this: 554 5.4.6 (mail loop). */
    maxReceivedHeaders: z.number().int().positive().default(100),
    /** Free bytes the data directory keeps; below it new mail gets 452 4.3.1 (Postfix queue_minfree). */
    minFreeBytes: z.number().int().min(0).default(100 * MiB),
    /**
     * Backpressure (like Postfix in_flow_delay): with more messages than this in the queue, the
     * reply to MAIL waits inFlowDelayMs; at twice this, it waits and then gets 452 4.3.1. 0 = off.
     */
    queueHighWater: z.number().int().min(0).default(100_000),
    /** How long the reply to MAIL waits while the queue is above queueHighWater, ms. */
    inFlowDelayMs: z.number().int().min(0).max(60_000).default(1000),
    /** Tags per message (X-Postline-Tags, API `tags`). */
    maxTags: z.number().int().min(0).max(1000).default(32),
    /** Longest tag, and longest metadata key, characters. */
    maxTagLength: z.number().int().positive().max(1024).default(128),
    /** Largest metadata object of a message as JSON, bytes (X-Postline-Metadata, API `metadata`). */
    maxMetadataBytes: z.number().int().min(0).max(1024 * 1024).default(4096),
    /**
     * Per-client rates (Postfix's anvil), per minute, counted per client address and (perNetwork)
     * per /24 (IPv4) or /64 (IPv6) across sessions and listeners; 0 = no limit. Replies: connect
     * 421 4.7.0, MAIL 450 4.7.1, RCPT 452 4.7.1 (never 5xx). Not applied to relay.trustedNetworks,
     * limits.exemptNetworks or policy.accessList permits.
     */
    perClient: perClientSchema.prefault({}),
    /** Networks (CIDR) that no per-client limit, tarpit or data-rate check applies to (besides relay.trustedNetworks). */
    exemptNetworks: z.array(cidr).default([]),
    /**
     * Minimum data rate in DATA/BDAT: at least `bytes` in every `windowMs` (time our own disk makes
     * the client wait does not count); a slower client gets 421 4.4.2 and is closed. bytes 0 = off.
     */
    minDataRate: z.object({
      bytes: z.number().int().min(0).default(15_000),
      windowMs: z.number().int().min(100).default(30_000),
    }).strict().prefault({}),
    /** Error tarpit (Postfix smtpd_soft_error_limit): errors in a session after which each error reply waits errorSleepMs. */
    softErrorLimit: z.number().int().min(0).default(10),
    /** How long each error reply waits once the session has more than softErrorLimit errors, ms (Postfix smtpd_error_sleep_time 1s). */
    errorSleepMs: z.number().int().min(0).max(60_000).default(1000),
    /** AUTH failure throttling across sessions (src/policy/auth-throttle.ts). */
    auth: authLimitsSchema.prefault({}),
    /** Entries the per-client counter table keeps (least recently used forgotten first: counts, never blocks). */
    clientTableEntries: z.number().int().min(100).max(10_000_000).default(200_000),
  }).strict().prefault({}),
  policy: policySchema.prefault({}),
  events: z.object({
    /** Days the event log keeps events (then pruned in the background, a few thousand rows at a time). */
    retentionDays: z.number().min(0.001).max(3650).default(7),
  }).strict().prefault({}),
  metrics: z.object({
    /** Keep Prometheus metrics (served by the HTTP API on GET /metrics). */
    enabled: z.boolean().default(true),
    /** Distinct values of a name-like label (listener, webhook endpoint); more are counted as "other". */
    maxLabelValues: z.number().int().min(1).max(1000).default(64),
  }).strict().prefault({}),
  timeouts: z.object({
    /** Wait for the next command (RFC 5321 4.5.3.2.7: 5 minutes). */
    commandMs: z.number().int().positive().default(300_000),
    /** Wait for each DATA block (RFC 5321 4.5.3.2.6 for the client; we use the server's 5 min). */
    dataBlockMs: z.number().int().positive().default(300_000),
    /** Whole session limit. */
    sessionMs: z.number().int().positive().default(3_600_000),
    /** TLS handshake. */
    tlsHandshakeMs: z.number().int().positive().default(30_000),
    /**
     * Pregreet check (postscreen): send the first banner line ("220-"), wait this long, and refuse a
     * client that talked before the final greeting line (554 5.5.1, then only QUIT). 0 = off.
     * Applies to mx listeners only, never to trusted, exempt or permitted clients.
     */
    greetPauseMs: z.number().int().min(0).max(60_000).default(0),
    /** Listeners with proxyProtocol: the whole PROXY header must arrive within this, ms, else the connection is closed. */
    proxyHeaderMs: z.number().int().min(100).max(300_000).default(10_000),
  }).strict().prefault({}),
  received: z.object({
    /**
     * Record the TLS version and cipher in the Received field of mail that came over TLS (RFC 8314
     * 4.3; like Postfix's smtpd_tls_received_header, but on by default).
     */
    tlsDetails: z.boolean().default(true),
  }).strict().prefault({}),
  http: httpSchema.nullable().prefault({}),
  /** DKIM signing (RFC 6376, RFC 8463) of our own users' mail; reloaded on SIGHUP. */
  dkim: z.object({
    keys: z.array(dkimKeySchema).max(1000).default([]),
    /** Header fields for h= (default: From, Sender, Reply-To, To, Cc, Subject, Date, Message-ID, ...). From is always over-signed. */
    headers: z.array(z.string().regex(/^[\x21-\x39\x3b-\x7e]+$/, 'expected a header field name')).min(1).max(64).optional(),
    /** Also sign mail from clients that are neither authenticated nor trusted (relayed mail). Default false. */
    signRelayed: z.boolean().default(false),
  }).strict().prefault({}),
  /** Inbound verification on mx listeners (src/auth/); reloaded on SIGHUP. */
  auth: authSchema.prefault({}),
  /** ARC sealing (src/auth/seal.ts); reloaded on SIGHUP. */
  arc: arcSchema.optional(),
  /** Webhook endpoints (src/webhooks/); reloaded on SIGHUP. */
  webhooks: z.array(webhookSchema).max(100).default([]),
  /** Limits of the inbound DSN, bounce and complaint parsers (src/feedback/, config/feedback-schema.ts). */
  feedback: feedbackSchema.prefault({}),
  /** Open and click tracking (src/tracking/, tracking-schema.ts); reloaded on SIGHUP. */
  tracking: trackingSchema.prefault({}),
  /** List-Unsubscribe and one-click unsubscribe (RFC 2369, RFC 8058); reloaded on SIGHUP. */
  unsubscribe: unsubscribeSchema.prefault({}),
  /** Gmail's Feedback-ID header from tags and metadata; reloaded on SIGHUP. */
  feedbackId: feedbackIdSchema.prefault({}),
  /** The sendmail command's submit socket and maildrop (sendmail-schema.ts). */
  sendmail: sendmailSchema.prefault({}),
  /** The suppression list (src/suppression/): enforcement and automatic adds; live on SIGHUP. */
  suppression: suppressionSchema.prefault({}),
  log: z.object({
    level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
    /** json: one JSON line per event; pretty: human-readable; auto: pretty on a terminal. */
    format: z.enum(['json', 'pretty', 'auto']).default('auto'),
  }).strict().prefault({}),
}).strict();

export type PostlineConfig = z.infer<typeof configSchema>;
export type ListenerConfig = z.infer<typeof listenerSchema>;
export type RelayhostConfig = z.infer<typeof relayhostSchema>;
export type RouteConfig = z.infer<typeof routeSchema>;
export type HttpConfig = z.infer<typeof httpSchema>;

/**
 * The largest HTTP API request body, bytes: `http.maxBodyBytes`, else limits.maxMessageSize as
 * base64 (4 bytes per 3) plus 1 MiB for the JSON fields around it.
 */
export function apiMaxBodyBytes(config: Pick<PostlineConfig, 'http' | 'limits'>): number {
  return config.http?.maxBodyBytes ?? Math.ceil(config.limits.maxMessageSize / 3) * 4 + MiB;
}
export type WebhookConfig = z.infer<typeof webhookSchema>;
export type DkimConfig = PostlineConfig['dkim'];
export type AuthConfig = PostlineConfig['auth'];
export type ArcConfig = NonNullable<PostlineConfig['arc']>;

/**
 * The postmaster's address (RFC 5321 4.5.1): `relay.postmaster`, default postmaster@hostname.
 * Mail to "postmaster" goes there, and double bounces are sent to it.
 */
export function postmasterAddress(config: PostlineConfig): string {
  return config.relay.postmaster ?? `postmaster@${config.hostname}`;
}
