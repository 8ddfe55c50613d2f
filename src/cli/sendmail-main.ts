/**
 * Entry point of `postline sendmail` and of `sendmail`, `mailq`, `newaliases` (a symlink or copy
 * of bin/postline.js by those names): bin/postline.js loads this file instead of the full CLI, so
 * a program that calls sendmail for every message (PHP, cron) starts only what it needs.
 */
import { invokedAs, runSendmail } from './sendmail.js';

const name = invokedAs(process.argv[1]);
const args = name ? process.argv.slice(2) : process.argv.slice(3); // "postline sendmail ARGS"
const code = await runSendmail(args, { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, env: process.env }, name ?? 'sendmail');
process.exitCode = code;
