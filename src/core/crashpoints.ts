/**
 * Named crash points for the fault test suite (test/torture/).
 *
 * A crash point is a place in the code where a real crash would leave state half written: after
 * the queue commit and before the 250, after a body was sent to a next hop and before its reply is
 * read, after a bounce is recorded and before its DSN is queued. Production code calls
 * `crashPoint(name)` there. It does nothing unless the environment variable POSTLINE_CRASHPOINT
 * names the point, as a comma-separated list of `name[:probability]` (probability 0..1, default 1):
 *
 *   POSTLINE_CRASHPOINT=after-commit-before-reply:0.05,dsn-before-queue
 *
 * When a listed point fires, the process writes one line to stderr and kills itself with SIGKILL
 * (no cleanup, no flush: the same as a power cut for everything not yet fsynced). The variable is
 * read once at start; when unset, `crashPoint` is one Map lookup on an empty map.
 *
 * Owns: the list of crash point names (CRASH_POINTS) and how they are switched on.
 */
import { writeSync } from 'node:fs';

/** Every crash point the code has, with where it sits. */
export const CRASH_POINTS = {
  /** smtpd: the message is committed (durable), the 250 not yet written. */
  'after-commit-before-reply': 'after the store commit, before the 250 reply',
  /** delivery: the body and final "." are sent, the next hop's reply not yet read. */
  'delivery-after-data': 'after DATA and the body were sent, before the reply is processed',
  /** scheduler: the next hop answered, the outcome not yet written to the store. */
  'delivery-before-outcome': 'after the delivery results came back, before they are written',
  /** scheduler: a bounce (with a DSN owed) is recorded, the DSN not yet queued. */
  'dsn-before-queue': 'after the bounce is recorded, before the DSN is queued',
  /** scheduler: the DSN is queued, the "DSN owed" mark not yet cleared. */
  'dsn-after-queue': 'after the DSN is queued, before the owed mark is cleared',
  /** maildir agent: the first body chunk is in tmp/, the rest not yet (local/maildir.ts). */
  'maildir-mid-write': 'while a Maildir file is written in tmp/, after its first body chunk',
  /** maildir agent: the file is renamed into new/ (delivered), the outcome not yet returned. */
  'maildir-after-rename': 'after a Maildir file was renamed into new/, before the outcome is written',
  /** HTTP API: a sending request's messages are committed and their IDs recorded under its Idempotency-Key, the 202 not yet sent. */
  'api-after-commit-before-answer': 'after the API request\'s submits committed, before its 202 answer',
  /** pickup: a maildrop file's message is committed, the file not yet deleted (it is queued again at the next start). */
  'pickup-after-commit-before-unlink': 'after a maildrop file\'s message is committed, before the file is deleted',
} as const;

export type CrashPointName = keyof typeof CRASH_POINTS;

/** Parses POSTLINE_CRASHPOINT ("name[:p],name[:p]"); unknown names are ignored with a warning. */
export function parseCrashPoints(spec: string | undefined): Map<string, number> {
  const out = new Map<string, number>();
  if (!spec) return out;
  for (const part of spec.split(',')) {
    const [name, p] = part.trim().split(':');
    if (!name) continue;
    if (!(name in CRASH_POINTS)) {
      writeSync(2, `postline: unknown crash point ${JSON.stringify(name)} in POSTLINE_CRASHPOINT (ignored)\n`);
      continue;
    }
    const prob = p === undefined || p === '' ? 1 : Number(p);
    out.set(name, Number.isFinite(prob) ? Math.min(1, Math.max(0, prob)) : 1);
  }
  return out;
}

const active = parseCrashPoints(process.env.POSTLINE_CRASHPOINT);

/**
 * Kills the process with SIGKILL when `name` is switched on (with its probability). A no-op
 * otherwise. Never returns when it fires.
 */
export function crashPoint(name: CrashPointName): void {
  if (active.size === 0) return;
  const p = active.get(name);
  if (p === undefined || Math.random() >= p) return;
  try { writeSync(2, `postline: crash point ${name} fired (pid ${process.pid})\n`); } catch { /* stderr gone */ }
  process.kill(process.pid, 'SIGKILL');
}
