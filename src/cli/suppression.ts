/**
 * `postline suppression list|add|remove|export|import`: the suppression list (src/suppression/).
 * Like `postline queue`: while a server runs, requests go over its control socket (its store
 * writes the change with its event and its RCPT check sees it at once); when none answers, the
 * queue store is opened directly (never created). Errors are thrown with a clear message;
 * src/cli/index.ts prints them and exits non-zero.
 */
import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PostlineConfig } from '../config/schema.js';
import { systemClock } from '../core/clock.js';
import { controlRequest, isNoServer } from '../control/client.js';
import { executeSuppressionRequest, MAX_ADD_ENTRIES, suppressionWire, type SuppressionRequest } from '../control/suppression-ops.js';
import type { QueueStore } from '../spool/types.js';
import { normalizeEntries, SuppressionAdmin, type SuppressionInput } from '../suppression/admin.js';
import { SuppressionInputError } from '../suppression/address.js';
import { entriesFromCsv, entriesFromJson, toCsv } from '../suppression/csv.js';
import type { Suppression, SuppressionPage } from '../suppression/types.js';
import { parseDuration } from './queue-destinations.js';

export interface SuppressionCommandDeps {
  readonly loadConfig: (file?: string) => PostlineConfig;
  readonly openStore: (config: PostlineConfig) => Promise<QueueStore>;
  readonly stdout?: NodeJS.WritableStream;
  /** Control socket deadline per request, ms (default 10000). */
  readonly timeoutMs?: number;
}

/** A refused suppression command (bad address, no such entry, server error). */
export class SuppressionCommandError extends Error {
  constructor(message: string, readonly code?: string) {
    super(message);
    this.name = 'SuppressionCommandError';
  }
}

/** Bytes of entries per add request (the control socket takes lines up to 64 KiB). */
const REQUEST_BYTES = 48 * 1024;

/**
 * Runs `fn` with a request runner: the control socket while a server answers, else the store
 * opened once for all of `fn`'s requests (closed at the end). @throws SuppressionCommandError for {ok:false}.
 */
export async function withSuppressions<T>(deps: SuppressionCommandDeps, configFile: string | undefined, fn: (run: (req: SuppressionRequest) => Promise<unknown>) => Promise<T>): Promise<T> {
  const config = deps.loadConfig(configFile);
  const socketPath = join(config.dataDir, 'control.sock');
  let offline: { store: QueueStore; admin: SuppressionAdmin } | undefined;
  const run = async (req: SuppressionRequest): Promise<unknown> => {
    if (!offline) {
      try {
        const res = await controlRequest(socketPath, suppressionWire(req), deps.timeoutMs ?? 10_000);
        if (!res.ok) throw new SuppressionCommandError(res.error, res.code);
        return res.result;
      } catch (err) {
        if (!isNoServer(err)) throw err;
      }
      const store = await deps.openStore(config);
      if (!store.suppressionStore) {
        await store.close();
        throw new SuppressionCommandError('this queue store keeps no suppression list');
      }
      offline = { store, admin: new SuppressionAdmin(store.suppressionStore(), systemClock) };
    }
    const res = await executeSuppressionRequest(offline.admin, req);
    if (!res.ok) throw new SuppressionCommandError(res.error, res.code);
    return JSON.parse(JSON.stringify(res.result ?? null)) as unknown;
  };
  try {
    return await fn(run);
  } finally {
    await offline?.store.close();
  }
}

const iso = (ms: number | undefined): string => (ms === undefined ? '-' : new Date(ms).toISOString());

/** The `suppression list` table: address, scope, reason, since, until, source, description. */
export function formatSuppressions(items: readonly Suppression[]): string {
  if (items.length === 0) return 'The suppression list is empty (for this filter)\n';
  const w = Math.max(9, ...items.map((e) => e.address.length));
  const ws = Math.max(7, ...items.map((e) => e.scope.length));
  const out = [`${'-Address-'.padEnd(w)} ${'-Scope-'.padEnd(ws)} -Reason-     -Since-                  -Until-                  -Source-  -Description-`];
  for (const e of items) {
    out.push(`${e.address.padEnd(w)} ${e.scope.padEnd(ws)} ${e.reason.padEnd(12)} ${iso(e.createdAt).padEnd(24)} ${iso(e.expiresAt).padEnd(24)} ${e.source.padEnd(9)} ${e.description ?? ''}`.trimEnd());
  }
  return out.join('\n') + '\n';
}

/** Splits entries into add requests of at most MAX_ADD_ENTRIES and REQUEST_BYTES. */
function chunks(entries: readonly SuppressionInput[]): SuppressionInput[][] {
  const out: SuppressionInput[][] = [];
  let cur: SuppressionInput[] = [];
  let bytes = 0;
  for (const e of entries) {
    const n = Buffer.byteLength(JSON.stringify(e)) + 1;
    if (cur.length && (cur.length >= MAX_ADD_ENTRIES || bytes + n > REQUEST_BYTES)) { out.push(cur); cur = []; bytes = 0; }
    cur.push(e);
    bytes += n;
  }
  if (cur.length) out.push(cur);
  return out;
}

interface Filters { config?: string; scope?: string; reason?: string; address?: string; domain?: string }
const filters = (o: Filters): Record<string, string> => Object.fromEntries(Object.entries({ scope: o.scope, reason: o.reason, address: o.address, domain: o.domain }).filter(([, v]) => v !== undefined)) as Record<string, string>;

/** Adds `postline suppression ...` to `program`. Each subcommand takes `-c, --config FILE`. */
export function registerSuppressionCommands(program: Command, deps: SuppressionCommandDeps): void {
  const write = (s: string): void => { (deps.stdout ?? process.stdout).write(s); };
  const cmd = program.command('suppression').description('the suppression list: addresses mail is not sent to');
  const withFilters = (c: Command): Command => c.option('-c, --config <file>', 'configuration file')
    .option('--scope <scope>', 'a sending domain, or * for every sender').option('--reason <reason>', 'hard-bounce, soft-bounce, complaint, unsubscribe or manual')
    .option('--address <prefix>', 'addresses starting with this').option('--domain <domain>', "a domain's addresses and its *@domain entry");

  withFilters(cmd.command('list').description('list entries, a page at a time (address order)'))
    .option('--limit <n>', 'entries per page (1..1000)', '100').option('--after <cursor>', 'the page after this cursor (printed after a full page)')
    .option('--json', 'JSON output: { items, next }')
    .action(async (o: Filters & { limit: string; after?: string; json?: boolean }) => {
      const limit = Number(o.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new SuppressionCommandError('--limit: a number from 1 to 1000');
      const page = await withSuppressions(deps, o.config, (run) => run({ op: 'suppression.list', query: { ...filters(o), limit, ...(o.after ? { after: o.after } : {}) } })) as SuppressionPage;
      if (o.json) return write(JSON.stringify(page, null, 2) + '\n');
      write(formatSuppressions(page.items));
      if (page.next) write(`-- more: postline suppression list --after ${page.next}\n`);
    });

  cmd.command('add <address>').description('suppress an address (local@domain) or a whole domain (*@domain)')
    .option('-c, --config <file>', 'configuration file').option('--scope <scope>', 'a sending domain, or * for every sender (default *)')
    .option('--reason <reason>', 'hard-bounce, soft-bounce, complaint, unsubscribe or manual', 'manual')
    .option('--description <text>', 'a note kept with the entry').option('--for <duration>', 'only for this long (e.g. 30d, 12h)')
    .action(async (address: string, o: { config?: string; scope?: string; reason: string; description?: string; for?: string }) => {
      const entry: SuppressionInput = {
        address, reason: o.reason, ...(o.scope !== undefined ? { scope: o.scope } : {}), ...(o.description !== undefined ? { description: o.description } : {}),
        ...(o.for !== undefined ? { expiresAt: Date.now() + parseDuration(o.for) } : {}),
      };
      const r = await withSuppressions(deps, o.config, (run) => run({ op: 'suppression.add', entries: [entry], source: 'operator' })) as { added: Suppression[] };
      for (const e of r.added) write(`${e.address}: suppressed for ${e.scope === '*' ? 'every sender' : e.scope} (${e.reason})${e.expiresAt ? ` until ${iso(e.expiresAt)}` : ''}\n`);
    });

  cmd.command('remove <address>').description('take an address (or *@domain) off the list')
    .option('-c, --config <file>', 'configuration file').option('--scope <scope>', 'a sending domain, or * for every sender (default *)')
    .action(async (address: string, o: { config?: string; scope?: string }) => {
      const r = await withSuppressions(deps, o.config, (run) => run({ op: 'suppression.remove', address, ...(o.scope !== undefined ? { scope: o.scope } : {}) })) as { removed: Suppression | null };
      if (!r.removed) throw new SuppressionCommandError(`${address} is not on the suppression list (scope ${o.scope ?? '*'})`, 'ERR_NOT_SUPPRESSED');
      write(`${r.removed.address}: removed (was ${r.removed.reason}, scope ${r.removed.scope})\n`);
    });

  withFilters(cmd.command('export').description('write every entry (matching the filters) to stdout'))
    .option('--format <format>', 'csv or json', 'csv')
    .action(async (o: Filters & { format: string }) => {
      if (o.format !== 'csv' && o.format !== 'json') throw new SuppressionCommandError('--format: csv or json');
      const all: Suppression[] = [];
      await withSuppressions(deps, o.config, async (run) => {
        let after: string | undefined;
        for (;;) {
          const page = await run({ op: 'suppression.list', query: { ...filters(o), limit: 1000, ...(after ? { after } : {}) } }) as SuppressionPage;
          all.push(...page.items);
          if (!page.next) return;
          after = page.next;
        }
      });
      write(o.format === 'json' ? JSON.stringify(all, null, 2) + '\n' : toCsv(all));
    });

  cmd.command('import <file>').description('add the entries of a CSV or JSON file ("-": stdin); entries there are replaced')
    .option('-c, --config <file>', 'configuration file').option('--format <format>', 'csv or json (default: from the file name, else csv)')
    .action(async (file: string, o: { config?: string; format?: string }) => {
      const format = o.format ?? (/\.json$/i.test(file) ? 'json' : 'csv');
      if (format !== 'csv' && format !== 'json') throw new SuppressionCommandError('--format: csv or json');
      let text: string;
      try {
        text = readFileSync(file === '-' ? 0 : file, 'utf8');
      } catch (err) {
        throw new SuppressionCommandError(`cannot read ${file}: ${(err as Error).message}`);
      }
      let entries: SuppressionInput[];
      try {
        entries = format === 'json' ? entriesFromJson(text) : entriesFromCsv(text);
      } catch (err) {
        throw new SuppressionCommandError(`${file}: ${(err as Error).message}`);
      }
      try {
        normalizeEntries(entries, 'import', Date.now()); // every entry checked before the first is written
      } catch (err) {
        if (err instanceof SuppressionInputError) throw new SuppressionCommandError(`${file}: ${err.message}`, err.code);
        throw err;
      }
      let n = 0;
      await withSuppressions(deps, o.config, async (run) => {
        for (const c of chunks(entries)) n += ((await run({ op: 'suppression.add', entries: c, source: 'import' })) as { added: unknown[] }).added.length;
      });
      write(`imported ${n} entr${n === 1 ? 'y' : 'ies'} from ${file}\n`);
    });
}
