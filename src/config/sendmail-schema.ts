/**
 * The `sendmail` section: how local programs hand mail to Postline through `postline sendmail`
 * (the submit socket `dataDir/submit.sock` while the server runs, the maildrop `dataDir/maildrop/`
 * when it does not; src/pickup/). Kept apart from schema.ts by size only; the README documents
 * every key. All keys need a restart, except `origin`, which the command reads at each run.
 */
import { z } from 'zod';

export const sendmailSchema = z.object({
  /** Open `dataDir/submit.sock` and pick up `dataDir/maildrop/` (false: neither; the command then fails with EX_UNAVAILABLE). */
  enabled: z.boolean().default(true),
  /**
   * Who may submit: absent, every local user (submit.sock mode 0666, maildrop 1733 as Postfix's
   * without a setgid postdrop); a group name or gid: its members only (0660 and 1730, that group;
   * the server's user must be able to chown to it: its member, or root).
   */
  group: z.union([z.string().regex(/^[A-Za-z_][A-Za-z0-9_.-]{0,31}$/, 'expected a group name'), z.number().int().min(0)]).optional(),
  /** Submit socket connections at once; more are closed at once (the command then uses the maildrop). */
  maxConnections: z.number().int().positive().max(10_000).default(64),
  /** A submit connection that sends nothing for this long is dropped, ms. */
  idleTimeoutMs: z.number().int().min(100).default(60_000),
  /** How often the maildrop is scanned besides the directory watch, ms (Postfix's pickup: 60 s). */
  scanIntervalMs: z.number().int().min(50).default(30_000),
  /** Maildrop files picked up at once. */
  pickupConcurrency: z.number().int().min(1).max(256).default(8),
  /**
   * The domain the command appends to a local user name (the default sender user@origin) and to
   * recipients without a domain ("root" from cron), like Postfix's myorigin. Default: hostname.
   */
  origin: z.string().min(1).max(253).regex(/^[^\s@<>]+$/, 'expected a domain').optional(),
}).strict();

export type SendmailConfig = z.infer<typeof sendmailSchema>;
