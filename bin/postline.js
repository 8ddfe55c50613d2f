#!/usr/bin/env node
// Entry point of the `postline` command: runs the compiled CLI (npm install builds it).
// Called as `postline sendmail ...`, or through a link named sendmail, mailq or newaliases, it
// runs only the sendmail command (src/cli/sendmail-main.ts), which starts faster.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { basename, dirname, join } from 'node:path';
const here = dirname(fileURLToPath(import.meta.url));
const called = basename(process.argv[1] ?? '').replace(/\.m?js$/, '');
const sendmail = ['sendmail', 'mailq', 'newaliases'].includes(called) || process.argv[2] === 'sendmail';
const cli = join(here, '..', 'dist', 'src', 'cli', sendmail ? 'sendmail-main.js' : 'index.js');
if (!existsSync(cli)) {
  console.error('postline: not built yet; run `npm install` (or `npm run build`) in the project folder first');
  process.exit(1);
}
await import(cli);
