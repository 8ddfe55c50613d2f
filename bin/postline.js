#!/usr/bin/env node
// Entry point of the `postline` command: runs the compiled CLI (npm install builds it).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
const here = dirname(fileURLToPath(import.meta.url));
const cli = join(here, '..', 'dist', 'src', 'cli', 'index.js');
if (!existsSync(cli)) {
  console.error('postline: not built yet; run `npm install` (or `npm run build`) in the project folder first');
  process.exit(1);
}
await import(cli);
