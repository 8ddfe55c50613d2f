/**
 * The `postline` command (commander): serve, user, queue, config check.
 * Errors end the process with a clear one-line message and exit code 1 (config errors: 2).
 */
import { Command } from 'commander';
import { loadConfig } from '../config/load.js';
import { ConfigError } from '../core/errors.js';
import { registerUserCommands } from './user.js';
import { registerQueueCommands } from './queue.js';
import { openStore } from '../main.js';

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
    console.log(JSON.stringify(shown, null, 2));
  });

registerUserCommands(program, loadConfig);
registerQueueCommands(program, { loadConfig, openStore });

try {
  await program.parseAsync(process.argv);
} catch (err) {
  const e = err as NodeJS.ErrnoException;
  console.error(`postline: ${e.message}`);
  if (e.code === 'EADDRINUSE') console.error('postline: another program uses that port: stop it, or set other ports under `listeners` in a configuration file (--config)');
  if (e.code === 'EACCES' && /listen/.test(e.message)) console.error('postline: ports below 1024 need root or CAP_NET_BIND_SERVICE');
  process.exit(err instanceof ConfigError ? 2 : 1);
}
