// Runs the compiled test files with Node's test runner.
// Usage: node scripts/run-tests.mjs [unit|e2e|torture] [--long]
//   default: unit, e2e and the short profile of the fault suite (test/torture)
//   --long:  the long profile of the fault suite (POSTLINE_TORTURE=long; `npm run torture`)
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const args = process.argv.slice(2);
const long = args.includes('--long');
const which = args.find((a) => !a.startsWith('--'));
const roots = which ? [join('dist', 'test', which)] : ['unit', 'e2e', 'torture'].map((d) => join('dist', 'test', d));
const files = [];
function walk(dir) {
  let entries;
  try { entries = readdirSync(dir); } catch { return; }
  for (const name of entries.sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p);
    else if (name.endsWith('.test.js')) files.push(p);
  }
}
roots.forEach(walk);
if (files.length === 0) {
  console.error('no test files found under', roots.join(', '));
  process.exit(1);
}
const env = { ...process.env, ...(long ? { POSTLINE_TORTURE: 'long' } : {}) };
const timeout = long ? 1_800_000 : 300_000;
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=1', `--test-timeout=${timeout}`, ...files], { stdio: 'inherit', env });
process.exit(r.status ?? 1);
