/**
 * `postline webhooks status [--json]`: per webhook endpoint its URL, cursor (last acknowledged
 * event id), backlog (newest event id - cursor), last success, failing since, last error and
 * counters. Reads queue.db over a side connection (spool/sqlite/side-db.ts), so it works while the
 * server runs; it never creates a queue (NoDataDirError when there is none).
 *
 * Endpoints that are configured but never started show state "new"; stored endpoints no longer in
 * the configuration are listed with configured: false (their cursor is kept).
 */
import type { Command } from 'commander';
import type { PostlineConfig } from '../config/schema.js';
import { openSideDatabase } from '../spool/sqlite/side-db.js';
import { SqliteWebhookCursorStore, lastEventIdIn, type WebhookCursor } from '../webhooks/cursor-store.js';

/** One endpoint as `webhooks status --json` prints it (times ISO 8601). */
export interface WebhookStatusLine {
  readonly name: string;
  readonly url?: string;
  readonly configured: boolean;
  /** new: no stored cursor yet; ok; retrying: failed attempts since the last success; failing: older than maxAgeMs. */
  readonly state: 'new' | 'ok' | 'retrying' | 'failing';
  readonly cursor?: number;
  readonly backlog?: number;
  readonly lastSuccessAt?: string;
  readonly failingSince?: string;
  readonly lastError?: string;
  readonly lastAttemptAt?: string;
  /** Failed attempts since the last success (same as failedAttempts; kept for compatibility). */
  readonly attempts: number;
  /** Failed attempts since the last success. */
  readonly failedAttempts?: number;
  readonly delivered: number;
  readonly skipped: number;
}

/** The whole answer of `webhooks status --json`. */
export interface WebhookStatusReport {
  readonly lastEventId: number;
  readonly endpoints: WebhookStatusLine[];
}

const iso = (ms: number | undefined): string | undefined => (ms === undefined ? undefined : new Date(ms).toISOString());

/** Builds the report from the configuration and the stored cursors. */
export function statusReport(config: PostlineConfig, cursors: readonly WebhookCursor[], lastEventId: number): WebhookStatusReport {
  const byName = new Map(cursors.map((c) => [c.endpoint, c]));
  const line = (name: string, url: string | undefined, configured: boolean): WebhookStatusLine => {
    const c = byName.get(name);
    if (!c) return { name, url, configured, state: 'new', attempts: 0, delivered: 0, skipped: 0 };
    return {
      name, url, configured,
      state: c.failingSince !== undefined ? 'failing' : c.attempts > 0 ? 'retrying' : 'ok',
      cursor: c.cursor,
      backlog: Math.max(0, lastEventId - c.cursor),
      lastSuccessAt: iso(c.lastSuccessAt),
      failingSince: iso(c.failingSince),
      lastError: c.lastError,
      lastAttemptAt: iso(c.lastAttemptAt),
      attempts: c.attempts,
      failedAttempts: c.attempts,
      delivered: c.delivered,
      skipped: c.skipped,
    };
  };
  const endpoints = config.webhooks.map((w) => line(w.name, w.url, true));
  for (const c of cursors) if (!config.webhooks.some((w) => w.name === c.endpoint)) endpoints.push(line(c.endpoint, undefined, false));
  return { lastEventId, endpoints };
}

/** Human-readable form: one block per endpoint. */
export function formatStatus(r: WebhookStatusReport): string {
  if (r.endpoints.length === 0) return 'no webhook endpoints configured (and none ever ran with this data directory)\n';
  const out: string[] = [];
  for (const e of r.endpoints) {
    out.push(`${e.name}  ${e.url ?? '(not in the configuration read: is this the server\'s? give --config FILE or POSTLINE_CONFIG)'}  [${e.state}]`);
    if (e.state === 'new') { out.push('  not started yet'); continue; }
    out.push(`  cursor ${e.cursor}  backlog ${e.backlog}  delivered ${e.delivered}  skipped ${e.skipped}  failed attempts ${e.attempts}`);
    out.push(`  last success   ${e.lastSuccessAt ?? '-'}`);
    out.push(`  failing since  ${e.failingSince ?? '-'}`);
    out.push(`  last error     ${e.lastError ?? '-'}${e.lastError && e.lastAttemptAt ? ` (${e.lastAttemptAt})` : ''}`);
  }
  return out.join('\n') + '\n';
}

/** Registers `postline webhooks status`. */
export function registerWebhookCommands(program: Command, loadConfig: (file?: string) => PostlineConfig): void {
  const hooks = program.command('webhooks').description('webhook endpoints (events POSTed by the Standard Webhooks scheme)');
  hooks
    .command('status')
    .description('per endpoint: URL, cursor, backlog, last success, failing since, last error')
    .option('-c, --config <file>', 'YAML configuration file')
    .option('--json', 'print JSON')
    .action(async (opts: { config?: string; json?: boolean }) => {
      const config = loadConfig(opts.config);
      const db = openSideDatabase(config.dataDir, { create: false });
      const store = new SqliteWebhookCursorStore(db);
      try {
        const report = statusReport(config, await store.list(), lastEventIdIn(db));
        process.stdout.write(opts.json ? JSON.stringify(report, null, 2) + '\n' : formatStatus(report));
      } finally {
        await store.close();
      }
    });
}
