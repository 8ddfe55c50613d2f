// The benches run the built server (dist/): build it when it is missing or older than src/.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Builds Postline (tsc -p tsconfig.json in `root`) when dist/src/main.js is missing or older than
 * a file under src/. Exits the process (code 2) when the build fails.
 * @param {string} root the project folder
 * @param {(msg: string) => void} log
 */
export function ensureBuilt(root, log) {
  const newest = (dir) => {
    let t = 0;
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
    }
    return t;
  };
  const built = join(root, 'dist', 'src', 'main.js');
  if (existsSync(built) && statSync(built).mtimeMs >= newest(join(root, 'src'))) return;
  log('dist/ is missing or older than src/: building (tsc -p tsconfig.json)');
  try {
    execFileSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(root, 'tsconfig.json')], { stdio: 'inherit', cwd: root });
  } catch {
    console.error('build failed; fix it or run the bench on a tree that compiles');
    process.exit(2);
  }
}
