/**
 * `postline user add|list|delete`: manages SMTP AUTH users in the data directory (src/policy/users.ts).
 * The password is read from stdin when it is not a terminal (one line), else prompted for without echo.
 */
import { UsageError } from '../core/errors.js';
import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { PostlineConfig } from '../config/schema.js';
import { NoDataDirError } from '../core/errors.js';
import { UserStore } from '../policy/users.js';
import { SqliteQueueStore } from '../spool/sqlite/store.js';

/** True when dataDir holds Postline data: a queue or a users file (creates nothing). */
function hasData(dataDir: string): boolean {
  return SqliteQueueStore.exists(dataDir) || existsSync(join(dataDir, 'users.json'));
}

/** @throws NoDataDirError when dataDir holds neither a queue nor a users file. */
function needData(dataDir: string): void {
  if (!hasData(dataDir)) throw new NoDataDirError(`no users and no queue at ${dataDir} (neither users.json nor queue.db there)`, dataDir);
}

/** Reads one password: the first line of piped stdin, or an interactive prompt without echo. */
export async function readPassword(prompt: string): Promise<string> {
  const stdin = process.stdin;
  if (!stdin.isTTY) {
    const chunks: Buffer[] = [];
    for await (const c of stdin) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0] ?? '';
  }
  process.stderr.write(prompt);
  return new Promise((resolve) => {
    const rl = createInterface({ input: stdin, terminal: true });
    (rl as unknown as { _writeToOutput: (s: string) => void })._writeToOutput = () => {};
    rl.question('', (answer) => {
      rl.close();
      process.stderr.write('\n');
      resolve(answer);
    });
  });
}

/**
 * Adds `postline user ...` to `program`. `list` and `delete` need existing data (else
 * NoDataDirError); `add` may start users.json in a new data directory (never a queue) and says so.
 */
export function registerUserCommands(program: Command, loadConfig: (file?: string) => PostlineConfig): void {
  const user = program.command('user').description('manage SMTP AUTH users (submission)');
  user
    .command('add <name>')
    .description('add a user or change its password (password from stdin or a prompt)')
    .option('-c, --config <file>', 'configuration file')
    .option('-s, --sender <address...>', 'envelope senders this user may use: addresses or @domain (default: its own address)')
    .action(async (name: string, opts: { config?: string; sender?: string[] }) => {
      const cfg = loadConfig(opts.config);
      const password = await readPassword(`Password for ${name}: `);
      if (!password) throw new UsageError('empty password: give it on stdin or at the prompt');
      const fresh = !hasData(cfg.dataDir);
      await new UserStore(cfg.dataDir).set(name, password, opts.sender);
      console.log(`user ${name} saved`);
      if (fresh) {
        console.error(`postline: note: no queue at ${cfg.dataDir} yet: the user is saved in ${join(cfg.dataDir, 'users.json')} for a server started with this configuration (point at another with --config FILE or POSTLINE_CONFIG=FILE)`);
      }
    });
  user
    .command('list')
    .description('list users and their allowed senders')
    .option('-c, --config <file>', 'configuration file')
    .action((opts: { config?: string }) => {
      const cfg = loadConfig(opts.config);
      needData(cfg.dataDir);
      for (const u of new UserStore(cfg.dataDir).list()) {
        console.log(`${u.name}\t${u.senders.length ? u.senders.join(',') : '(default: own address)'}\t${u.createdAt}`);
      }
    });
  user
    .command('delete <name>')
    .description('delete a user')
    .option('-c, --config <file>', 'configuration file')
    .action((name: string, opts: { config?: string }) => {
      const cfg = loadConfig(opts.config);
      needData(cfg.dataDir);
      if (!new UserStore(cfg.dataDir).delete(name)) throw new UsageError(`no such user: ${name}`);
      console.log(`user ${name} deleted`);
    });
}
