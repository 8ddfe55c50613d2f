/**
 * Test helper: a server program run in the foreground as a child process (haproxy -db, dovecot -F),
 * its stdout and stderr kept, and a stop that waits for its exit (SIGTERM, SIGKILL after a grace).
 */
import { spawn, type ChildProcess } from 'node:child_process';

export interface Daemon {
  readonly child: ChildProcess;
  /** Everything it wrote to stdout and stderr so far. */
  output(): string;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once it has exited. Safe to call twice. */
  stop(graceMs: number): Promise<void>;
}

/** Starts `bin args` with stdin closed. */
export function startDaemon(bin: string, args: readonly string[]): Daemon {
  let out = '';
  const child = spawn(bin, [...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
  return {
    child,
    output: () => out,
    stop: async (graceMs) => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
        child.once('exit', () => { clearTimeout(t); resolve(); });
        child.kill('SIGTERM');
      });
    },
  };
}
