/**
 * `postline apikey create|list|revoke`: manages the HTTP API's keys (src/http/api-keys.ts) in
 * dataDir/queue.db through a side connection, so it works while a server runs; a revoked key fails
 * on the server's next request.
 *
 * `create` prints the key once: its last line of stdout is the key alone (scripts take `tail -n 1`).
 */
import { UsageError } from '../core/errors.js';
import type { Command } from 'commander';
import type { PostlineConfig } from '../config/schema.js';
import { NoDataDirError } from '../core/errors.js';
import { API_SCOPES, type ApiKeyRecord, type ApiScope } from '../http/api-keys.js';
import { SqliteApiKeyStore } from '../http/sqlite-stores.js';
import { SqliteQueueStore } from '../spool/sqlite/store.js';

/** Splits "a,b" and repeated options into one list. */
const list = (values: readonly string[] | undefined): string[] =>
  (values ?? []).flatMap((v) => v.split(',')).map((v) => v.trim()).filter(Boolean);

const iso = (ms: number | undefined): string => (ms === undefined ? '-' : new Date(ms).toISOString());

/** The header row of `apikey list` (the columns of formatKeyLine). */
export const KEY_LIST_HEADER = ['NAME', 'PREFIX', 'SCOPES', 'DOMAINS', 'RATE', 'CREATED', 'STATE'].join('\t');

/** One line of `apikey list` (tab separated): name, prefix, scopes, domains, rate, created, revoked. */
export function formatKeyLine(k: ApiKeyRecord): string {
  return [k.name, `pl_${k.prefix}_...`, k.scopes.join(','), k.domains?.join(',') ?? '*', k.ratePerMinute ? `${k.ratePerMinute}/min` : '-', iso(k.createdAt), k.revokedAt ? `revoked ${iso(k.revokedAt)}` : 'active'].join('\t');
}

/** Adds `postline apikey ...` to `program`. `list` and `revoke` need an existing queue (else NoDataDirError). */
export function registerApiKeyCommands(program: Command, loadConfig: (file?: string) => PostlineConfig): void {
  const cmd = program.command('apikey').description('manage HTTP API keys');
  const open = (cfg: PostlineConfig, create: boolean): SqliteApiKeyStore => {
    if (!create && !SqliteQueueStore.exists(cfg.dataDir)) throw new NoDataDirError(`no queue at ${cfg.dataDir} (no queue.db there)`, cfg.dataDir);
    return SqliteApiKeyStore.open(cfg.dataDir, { create });
  };

  cmd
    .command('create <name>')
    .description('make a key; it is printed once, alone on the last line')
    .requiredOption('-s, --scope <scopes...>', `what the key may do: ${API_SCOPES.join(', ')} (comma separated or repeated; admin implies read)`)
    .option('-d, --domain <domains...>', 'sender domains the key may use (default: any)')
    .option('-r, --rate <n>', 'messages per minute (default: no limit)')
    .option('-c, --config <file>', 'configuration file')
    .action(async (name: string, opts: { scope: string[]; domain?: string[]; rate?: string; config?: string }) => {
      const cfg = loadConfig(opts.config);
      let rate: number | undefined;
      if (opts.rate !== undefined) {
        rate = Number(opts.rate);
        if (!/^\d+$/.test(opts.rate)) throw new UsageError(`--rate must be a whole number of messages per minute, not "${opts.rate}"`);
      }
      const domains = list(opts.domain);
      const store = open(cfg, true);
      try {
        const { key, record } = await store.create({ name, scopes: list(opts.scope) as ApiScope[], ...(domains.length ? { domains } : {}), ...(rate !== undefined ? { ratePerMinute: rate } : {}) });
        console.log(`API key ${record.name} created: scopes ${record.scopes.join(',')}; sender domains ${record.domains?.join(',') ?? 'any'}; rate ${record.ratePerMinute ? `${record.ratePerMinute} messages per minute` : 'unlimited'}`);
        console.log('It is shown only now; send it as "Authorization: Bearer KEY":');
        console.log(key);
        if (!record.domains && record.scopes.includes('send')) console.error('warning: this key may send as any domain; limit it with --domain D');
      } finally {
        await store.close();
      }
    });

  cmd
    .command('list')
    .description('list keys: name, prefix, scopes, sender domains, rate, created, state')
    .option('-c, --config <file>', 'configuration file')
    .option('--json', 'one JSON array')
    .action(async (opts: { config?: string; json?: boolean }) => {
      const store = open(loadConfig(opts.config), false);
      try {
        const keys = await store.list();
        if (opts.json) console.log(JSON.stringify(keys));
        else {
          console.log(KEY_LIST_HEADER);
          for (const k of keys) console.log(formatKeyLine(k));
        }
      } finally {
        await store.close();
      }
    });

  cmd
    .command('revoke <name>')
    .description('revoke a key (a running server refuses it from its next request)')
    .option('-c, --config <file>', 'configuration file')
    .action(async (name: string, opts: { config?: string }) => {
      const store = open(loadConfig(opts.config), false);
      try {
        if (!(await store.revoke(name))) throw new UsageError(`no active API key named ${name}`);
        console.log(`API key ${name} revoked`);
      } finally {
        await store.close();
      }
    });
}
