/**
 * `postline events [--follow] [--since ID|TIME] [--type T...] [--queue-id ID] [--json] [--limit N]`:
 * reads the durable event log (like `tail -f` on a maillog, but structured). It opens queue.db
 * read-only on a side connection, so it works while the server runs and never changes anything.
 *
 * --since takes an event id (a number), an ISO 8601 time, or an age ("30s", "15m", "2h", "7d").
 * Without --since, the last --limit events (default 20; with --follow: then new ones as they come).
 */
import type { Command } from 'commander';
import type Database from 'better-sqlite3';
import type { PostlineConfig } from '../config/schema.js';
import { ConfigError } from '../core/errors.js';
import { isQueueId } from '../core/queue-id.js';
import { authSummary, EVENT_TYPES, RESERVED_EVENT_TYPES, type EventQuery, type StoredEvent } from '../events/record.js';
import { lastEventIdOf, queryEvents } from '../spool/sqlite/event-log.js';
import { openSideDatabase } from '../spool/sqlite/side-db.js';

/** Parsed --since: an event id cursor or a time (ms since epoch). */
export type Since = { readonly after: number } | { readonly at: number };

const AGE = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses --since. @throws ConfigError for anything else. */
export function parseSince(text: string, now: number): Since {
  const t = text.trim();
  if (/^\d+$/.test(t)) return { after: Math.max(0, Number(t) - 1) };
  const age = AGE.exec(t);
  if (age) return { at: now - Number(age[1]) * UNIT_MS[age[2]!]! };
  // ISO 8601 only (Date.parse takes 2026-02-30 and other forms it rolls over): the text must
  // come back the same from the parsed date, to the precision given.
  const iso = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$/.exec(t);
  if (iso) {
    const ms = Date.parse(t.replace(' ', 'T'));
    const [y, mo, d] = [Number(iso[1]), Number(iso[2]), Number(iso[3])];
    const probe = new Date(Date.UTC(y, mo - 1, d));
    if (Number.isFinite(ms) && probe.getUTCFullYear() === y && probe.getUTCMonth() === mo - 1 && probe.getUTCDate() === d) return { at: ms };
  }
  throw new ConfigError(`--since ${JSON.stringify(text)}: give an event id, an ISO 8601 time or an age like 15m`, 'since');
}

/** One line for a terminal: time, id, type, queue ID and the facts that apply. */
export function formatEvent(e: StoredEvent): string {
  const parts = [new Date(e.at).toISOString(), `#${e.id}`, e.type, e.queueId ?? '-'];
  if (e.mailFrom !== undefined && (e.type === 'message.received' || e.type === 'message.rejected')) parts.push(`from=<${e.mailFrom}>`);
  if (e.recipient !== undefined) parts.push(`to=<${e.recipient}>`);
  if (e.recipients !== undefined) parts.push(`nrcpt=${e.recipients.length}`);
  if (e.size !== undefined) parts.push(`size=${e.size}`);
  if (e.remoteHost !== undefined) parts.push(`relay=${e.remoteHost}`);
  if (e.dsn !== undefined) parts.push(`dsn=${e.dsn}`);
  if (e.bounceClass !== undefined) parts.push(`class=${e.bounceClass}`);
  if (e.attempt !== undefined) parts.push(`attempt=${e.attempt}`);
  if (e.dsnQueueId !== undefined) parts.push(`dsn_queue_id=${e.dsnQueueId}`);
  if (e.tags?.length) parts.push(`tags=${e.tags.join(',')}`);
  if (e.auth) parts.push(`auth=(${authSummary(e.auth)})`);
  if (e.reason !== undefined) parts.push(`reason=${JSON.stringify(e.reason)}`);
  if (e.scope !== undefined) parts.push(`scope=${e.scope}`);
  if (e.match !== undefined) parts.push(`match=<${e.match}>`);
  if (e.source !== undefined) parts.push(`source=${e.source}`);
  if (e.reply !== undefined) parts.push(`(${e.reply})`);
  return parts.join(' ');
}

interface EventsOptions {
  config?: string;
  follow?: boolean;
  since?: string;
  type?: string[];
  queueId?: string;
  json?: boolean;
  limit?: string;
  pollMs?: string;
}

/** Adds `postline events` to `program`. */
export function registerEventsCommand(program: Command, loadConfig: (file?: string) => PostlineConfig): void {
  program
    .command('events')
    .description('read the event log (every state change: received, delivered, deferred, bounced, ...)')
    .option('-c, --config <file>', 'configuration file')
    .option('-f, --follow', 'keep printing new events as they are committed (Ctrl-C ends)')
    .option('-s, --since <id|time>', 'from this event id, ISO 8601 time, or age (30s, 15m, 2h, 7d)')
    .option('-t, --type <type...>', 'only these event types (e.g. recipient.bounced message.received); recipient.* for a prefix')
    .option('-q, --queue-id <id>', 'only events about this message')
    .option('--json', 'one JSON object per line')
    .option('-n, --limit <n>', 'how many events at most without --follow (default 20 without --since, 1000 with)')
    .option('--poll-ms <ms>', 'how often --follow looks for new events (default 500)')
    .action(async (opts: EventsOptions) => {
      const cfg = loadConfig(opts.config);
      const db = openSideDatabase(cfg.dataDir, { readonly: true });
      try {
        await runEvents(db, opts, process.stdout);
      } finally {
        db.close();
      }
    });
}

/** Expands the --type list: "recipient.*" is every known type with that prefix. */
function expandTypes(types: readonly string[] | undefined): string[] | undefined {
  const list = (types ?? []).flatMap((t) => t.split(',')).map((t) => t.trim()).filter(Boolean);
  if (list.length === 0) return undefined;
  const known: readonly string[] = [...EVENT_TYPES, ...RESERVED_EVENT_TYPES];
  return [...new Set(list.flatMap((t) => (t.endsWith('*') ? known.filter((k) => k.startsWith(t.slice(0, -1))) : [t])))];
}

/**
 * Prints the events `opts` asks for to `out`; with follow, polls until SIGINT/SIGTERM.
 * @throws ConfigError for a bad --since, --limit, --poll-ms or --queue-id.
 */
export async function runEvents(db: Database.Database, opts: EventsOptions, out: NodeJS.WritableStream): Promise<void> {
  if (opts.queueId !== undefined && !isQueueId(opts.queueId.trim().toUpperCase())) throw new ConfigError(`--queue-id ${JSON.stringify(opts.queueId)}: not a queue ID`, 'queueId');
  const limit = opts.limit === undefined ? undefined : Number(opts.limit);
  if (limit !== undefined && !(Number.isSafeInteger(limit) && limit >= 0)) throw new ConfigError('--limit: give a whole number (0 with --follow: only new events)', 'limit');
  const pollMs = opts.pollMs === undefined ? 500 : Number(opts.pollMs);
  if (!(Number.isFinite(pollMs) && pollMs >= 10)) throw new ConfigError('--poll-ms: give at least 10', 'pollMs');
  const types = expandTypes(opts.type);
  const known: readonly string[] = [...EVENT_TYPES, ...RESERVED_EVENT_TYPES];
  const unknown = (types ?? []).filter((t) => !known.includes(t));
  if (unknown.length || (opts.type?.length && types?.length === 0)) {
    throw new ConfigError(`--type: unknown event type ${JSON.stringify(unknown[0] ?? opts.type?.join(','))} (known: ${EVENT_TYPES.join(', ')}; a prefix with .*: recipient.*)`, 'type');
  }
  const base: Omit<EventQuery, 'limit'> = {
    ...(types ? { types } : {}),
    ...(opts.queueId !== undefined ? { queueId: opts.queueId.trim().toUpperCase() } : {}),
  };
  const print = (e: StoredEvent): void => { out.write((opts.json ? JSON.stringify(e) : formatEvent(e)) + '\n'); };
  let after: number;
  if (opts.since === undefined) {
    // The newest N, oldest of them first; --follow goes on after the newest event of all.
    const newest = lastEventIdOf(db);
    const tail = limit === 0 ? [] : queryEvents(db, { ...base, limit: limit ?? 20 }, 'desc').reverse();
    for (const e of tail) print(e);
    after = newest;
  } else {
    const s = parseSince(opts.since, Date.now());
    after = 'after' in s ? s.after : 0;
    const since = 'at' in s ? s.at : undefined;
    let left = opts.follow ? Infinity : limit || 1000;
    for (let i = 0; left > 0 && i < 1_000_000; i++) {
      const batch = queryEvents(db, { ...base, after, limit: Math.min(1000, left), ...(since !== undefined ? { since } : {}) });
      for (const e of batch) print(e);
      if (batch.length) after = batch[batch.length - 1]!.id;
      left -= batch.length;
      if (batch.length < 1000) break;
    }
  }
  if (opts.follow) await follow(db, base, after, pollMs, print);
}

/** Polls for events after `after` until SIGINT or SIGTERM. */
async function follow(db: Database.Database, base: Omit<EventQuery, 'limit'>, after: number, pollMs: number, print: (e: StoredEvent) => void): Promise<void> {
  let stop = false;
  let wake: (() => void) | undefined;
  const onSignal = (): void => { stop = true; wake?.(); };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    while (!stop) {
      const batch = queryEvents(db, { ...base, after, limit: 1000 });
      for (const e of batch) print(e);
      if (batch.length) after = batch[batch.length - 1]!.id;
      if (batch.length === 1000) continue;
      await new Promise<void>((resolve) => { wake = resolve; setTimeout(resolve, pollMs); });
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
