/**
 * The `postline` command (commander): serve, user, apikey, queue, events, webhooks status, dkim keygen/check, suppression, config check;
 * `sendmail` (sendmail.ts, its own option parser: bin/postline.js runs it directly).
 * Errors end the process with a clear one-line message and exit code 1 (config errors: 2, also when
 * a command other than `serve` finds no queue where the configuration points: it never creates one).
 * The configuration file is --config FILE, else the POSTLINE_CONFIG environment variable.
 */
import { Command } from 'commander';
import { loadConfig } from '../config/load.js';
import { ConfigError, NoDataDirError } from '../core/errors.js';
import { registerUserCommands } from './user.js';
import { registerQueueCommands } from './queue.js';
import { registerApiKeyCommands } from './apikey.js';
import { registerEventsCommand } from './events.js';
import { registerWebhookCommands } from './webhooks.js';
import { registerDkimCommands } from './dkim.js';
import { registerSuppressionCommands } from './suppression.js';
import { openStore } from '../spool/open.js';

const program = new Command();
program.name('postline').description('Postline mail transfer agent').version('0.1.0').showHelpAfterError();

program
  .command('serve')
  .description('run the MTA: SMTP listeners, queue, scheduler and delivery')
  .option('-c, --config <file>', 'YAML configuration file (default: embedded defaults)')
  .action(async (opts: { config?: string }) => {
    const { runServer } = await import('../main.js');
    await runServer(opts.config);
  });

program
  .command('config')
  .description('check a configuration file and print the effective configuration')
  .option('-c, --config <file>', 'YAML configuration file')
  .action((opts: { config?: string }) => {
    const cfg = loadConfig(opts.config);
    const shown = structuredClone(cfg);
    if (shown.delivery.relayhost?.auth) shown.delivery.relayhost.auth.password = '********';
    for (const w of shown.webhooks) w.secret = 'whsec_********';
    if (shown.local.http.secret) shown.local.http.secret = 'whsec_********';
    console.log(JSON.stringify(shown, null, 2));
  });

/** The configuration file the last command loaded (for the hint after NoDataDirError). */
let configUsed: string | undefined;
const loadForCli = (file?: string): ReturnType<typeof loadConfig> => {
  configUsed = file || process.env.POSTLINE_CONFIG || undefined;
  return loadConfig(file);
};

registerUserCommands(program, loadForCli);
registerApiKeyCommands(program, loadForCli);
registerEventsCommand(program, loadForCli);
// Queue commands open only an existing queue: never a new, empty one where the user happens to be.
registerQueueCommands(program, { loadConfig: loadForCli, openStore: (cfg) => openStore(cfg, undefined, { create: false }) });
registerWebhookCommands(program, loadForCli);
registerSuppressionCommands(program, { loadConfig: loadForCli, openStore: (cfg) => openStore(cfg, undefined, { create: false }) });
registerDkimCommands(program, loadForCli);
// bin/postline.js runs `postline sendmail` without loading this file; listed here for --help.
program
  .command('sendmail')
  .description('sendmail-compatible command for PHP, cron and scripts (`postline sendmail --help`: options, exit codes)')
  .helpOption(false).allowUnknownOption().allowExcessArguments().argument('[args...]')
  .action(async () => {
    const { runSendmail } = await import('./sendmail.js');
    process.exitCode = await runSendmail(process.argv.slice(3), { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, env: process.env });
  });

try {
  await program.parseAsync(process.argv);
} catch (err) {
  const e = err as NodeJS.ErrnoException;
  console.error(`postline: ${e.message}`);
  if (e.code === 'EADDRINUSE') console.error('postline: another program uses that port: stop it, or set other ports under `listeners` in a configuration file (--config)');
  if (e.code === 'EACCES' && /listen/.test(e.message)) console.error('postline: ports below 1024 need root or CAP_NET_BIND_SERVICE');
  if (err instanceof NoDataDirError) {
    console.error(`postline: ${configUsed ? `dataDir as set by ${configUsed}` : 'no configuration file given: the embedded defaults put dataDir in ./var of the working directory'}`);
    console.error("postline: point at the server's configuration with --config FILE or POSTLINE_CONFIG=FILE (or at its data directory with POSTLINE_DATA_DIR=DIR); `postline serve` creates the queue");
  }
  process.exit(err instanceof ConfigError ? 2 : 1);
}
