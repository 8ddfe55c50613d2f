/**
 * The `local.lmtp` section: how the LMTP delivery agent (src/local/lmtp-agent.ts, RFC 2033) talks
 * to the targets that `local.routes` name ("host:port", "[v6]:port", "unix:/path"). Like Postfix's
 * lmtp_* parameters. The README documents every key. Read at each delivery, so a reload applies
 * to the next one, except maxConnections, connectionsPerTarget and idleTimeoutMs (the connection
 * pool's, set at start).
 */
import { z } from 'zod';

export const lmtpSchema = z.object({
  /** Name sent in LHLO; default delivery.heloName, else hostname. */
  lhloName: z.string().min(1).max(255).regex(/^[^\s]+$/, 'one word, no spaces').optional(),
  /** Connect to the target (TCP or unix socket), ms. */
  connectTimeoutMs: z.number().int().positive().default(10_000),
  /** The greeting and each reply to LHLO, MAIL, RCPT, DATA, BDAT and RSET, ms. */
  commandTimeoutMs: z.number().int().positive().default(120_000),
  /** Each per-recipient reply after the final "." or BDAT LAST (the server delivers meanwhile), ms. */
  dataDoneTimeoutMs: z.number().int().positive().default(600_000),
  /** One delivery request as a whole (all its transactions), ms. */
  transactionTimeoutMs: z.number().int().positive().default(1_800_000),
  /** How long an idle LMTP session is kept for the next message, ms (0: closed after each delivery). */
  idleTimeoutMs: z.number().int().min(0).default(10_000),
  /** LMTP connections open at most, over all targets. */
  maxConnections: z.number().int().positive().default(50),
  /**
   * LMTP connections per target at most (deliveries beyond wait for a slot); absent: the
   * scheduler's per-destination limit alone (delivery.connectionsPerDestination or a
   * delivery.shaping rule for the next-hop key "lmtp:TARGET").
   */
  connectionsPerTarget: z.number().int().positive().optional(),
  /** Messages over one LMTP session before it is closed (the lower of this and the destination's limit). */
  messagesPerConnection: z.number().int().positive().default(1000),
  /** Recipients per transaction; more go in further transactions over the same session. */
  recipientsPerTransaction: z.number().int().positive().default(50),
  /** Send the message with BDAT when the server offers CHUNKING (RFC 3030); else DATA with dot-stuffing. */
  chunking: z.boolean().default(true),
}).strict();

export type LmtpConfig = z.infer<typeof lmtpSchema>;
