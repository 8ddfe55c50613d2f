/**
 * Runs the real `postline serve` command as a child process for end-to-end tests: writes a YAML
 * configuration into a temp directory, starts it, waits until every listener accepts connections.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect } from 'node:net';
import { stringify } from 'yaml';
import { freePort, waitFor } from './net.js';

/** The project root (dist/test/helpers -> ../../..). */
export const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const POSTLINE_BIN = join(PROJECT_ROOT, 'bin', 'postline.js');

export interface PostlineOptions {
  /** Config keys merged over the test defaults (listeners are generated unless given). */
  readonly config?: Record<string, unknown>;
  /** Listener roles to create on free ports: default one `mx` listener without TLS. */
  readonly listeners?: Array<{ name: string; role: 'mx' | 'submission'; tls: 'none' | 'starttls' | 'implicit'; allowPlaintextAuth?: boolean; readonly [key: string]: unknown }>;
  readonly env?: Record<string, string>;
  /** Start the HTTP API on a free loopback port (`httpPort`); default off (`http: null`), so tests never bind its default port 8025. */
  readonly http?: boolean;
  /** Start `postline serve` in a process group of its own; kill() then SIGKILLs the whole group. */
  readonly detached?: boolean;
}

export class PostlineProcess {
  readonly dir: string;
  readonly configFile: string;
  readonly ports = new Map<string, number>();
  /** The HTTP API's port (with `opts.http`). */
  httpPort = 0;
  private child?: ChildProcess;
  /** Everything the process wrote to stdout/stderr (JSON log lines). */
  output = '';
  private config: Record<string, unknown> = {};
  /** Extra environment for the next start() (e.g. POSTLINE_CRASHPOINT), merged over opts.env. */
  env: Record<string, string> = {};
  /** Top-level config keys merged over opts.config by the next writeConfig() (e.g. new limits before a restart or SIGHUP). */
  configOverride: Record<string, unknown> = {};

  constructor(private readonly opts: PostlineOptions = {}, dir?: string) {
    this.dir = dir ?? mkdtempSync(join(tmpdir(), 'postline-e2e-'));
    this.configFile = join(this.dir, 'postline.yaml');
  }

  /** Picks ports and writes the configuration file (also called by start()). */
  async writeConfig(): Promise<void> {
    if (this.ports.size === 0) {
      const ls = this.opts.listeners ?? [{ name: 'mx', role: 'mx' as const, tls: 'none' as const }];
      for (const l of ls) {
        // freePort() may hand out a port it just gave (it was free again): keep them distinct.
        let port = await freePort();
        for (let i = 0; i < 20 && [...this.ports.values()].includes(port); i++) port = await freePort();
        this.ports.set(l.name, port);
      }
    }
    const ls = this.opts.listeners ?? [{ name: 'mx', role: 'mx' as const, tls: 'none' as const }];
    if (this.opts.http && this.httpPort === 0) {
      let port = await freePort();
      for (let i = 0; i < 20 && [...this.ports.values()].includes(port); i++) port = await freePort();
      this.httpPort = port;
    }
    this.config = {
      http: this.opts.http ? { address: '127.0.0.1', port: this.httpPort } : null,
      hostname: 'mx.postline.test',
      dataDir: join(this.dir, 'var'),
      log: { level: 'info', format: 'json' },
      limits: { minFreeBytes: 0 },
      ...this.opts.config,
      ...this.configOverride,
      listeners: ls.map((l) => ({ address: '127.0.0.1', port: this.ports.get(l.name), ...l })),
    };
    writeFileSync(this.configFile, stringify(this.config));
  }

  port(name = 'mx'): number {
    const p = this.ports.get(name);
    if (!p) throw new Error(`no listener ${name}`);
    return p;
  }

  /** Runs a `postline` CLI command against this instance's configuration. */
  async cli(args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
    return runCli([...args, '--config', this.configFile], input, this.opts.env);
  }

  /** Starts `postline serve` and waits until every listener accepts TCP connections. */
  async start(): Promise<this> {
    if (!this.config.listeners) await this.writeConfig();
    const child = spawn(process.execPath, [POSTLINE_BIN, 'serve', '--config', this.configFile], {
      cwd: this.dir,
      env: { ...process.env, ...this.opts.env, ...this.env },
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(this.opts.detached ? { detached: true } : {}),
    });
    this.child = child;
    child.stdout!.on('data', (d: Buffer) => { this.output += d.toString(); });
    child.stderr!.on('data', (d: Buffer) => { this.output += d.toString(); });
    for (const port of [...this.ports.values(), ...(this.httpPort ? [this.httpPort] : [])]) {
      await waitFor(`postline to listen on ${port} (output so far: ${this.output.slice(-2000)})`, async () => {
        if (child.exitCode !== null || child.signalCode !== null) throw new Error(`postline exited with ${child.exitCode ?? child.signalCode}: ${this.output.slice(-4000)}`);
        return new Promise<boolean>((res) => {
          const s = connect(port, '127.0.0.1');
          s.once('connect', () => { s.destroy(); res(true); });
          s.once('error', () => res(false));
        });
      }, 30_000);
    }
    return this;
  }

  /** SIGTERM and wait for exit (SIGKILL after `timeoutMs`). Resolves with the exit code. */
  async stop(timeoutMs = 15_000): Promise<number | null> {
    const c = this.child;
    this.child = undefined;
    if (!c || c.exitCode !== null || c.signalCode !== null) return c?.exitCode ?? null;
    return new Promise((resolve) => {
      const t = setTimeout(() => c.kill('SIGKILL'), timeoutMs);
      c.once('exit', (code) => { clearTimeout(t); resolve(code); });
      c.kill('SIGTERM');
    });
  }

  /** SIGKILL (crash) and wait for exit; with `detached`, the whole process group. */
  async kill(): Promise<void> {
    const c = this.child;
    this.child = undefined;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      c.once('exit', () => resolve());
      if (this.opts.detached && c.pid !== undefined) {
        try {
          process.kill(-c.pid, 'SIGKILL');
          return;
        } catch { /* group gone: kill the child itself */ }
      }
      c.kill('SIGKILL');
    });
  }

  /** True while the started process has not exited (a crash point may end it on its own). */
  running(): boolean {
    const c = this.child;
    return !!c && c.exitCode === null && c.signalCode === null;
  }

  /** The process id of the running process, if any. */
  pid(): number | undefined {
    return this.running() ? this.child!.pid : undefined;
  }

  /** Sends `sig` (SIGHUP, SIGTERM) without waiting. */
  signal(sig: NodeJS.Signals): void {
    if (this.running()) this.child!.kill(sig);
  }

  /** Resolves with the exit code or signal once the process has exited (bounded by timeoutMs; then rejects). */
  async exited(timeoutMs: number): Promise<number | string | null> {
    const c = this.child;
    if (!c) return null;
    if (c.exitCode !== null || c.signalCode !== null) return c.exitCode ?? c.signalCode;
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`postline did not exit within ${timeoutMs} ms`)), timeoutMs);
      c.once('exit', (code, sig) => { clearTimeout(t); resolve(code ?? sig); });
    });
  }

  /** Parsed JSON log lines so far. */
  logs(): Array<Record<string, unknown>> {
    return this.output.split('\n').filter((l) => l.startsWith('{')).map((l) => {
      try { return JSON.parse(l) as Record<string, unknown>; } catch { return {}; }
    });
  }

  /** Stops the process and removes its directory. */
  async cleanup(): Promise<void> {
    await this.stop(5000);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Runs `postline ARGS` with optional stdin (in `opts.cwd`, without the caller's POSTLINE_* variables when `opts.cleanEnv`); resolves with the exit code and output (bounded to 60 s). */
export function runCli(
  args: string[], input?: string, env?: Record<string, string>,
  opts: { readonly cwd?: string; /** drop the caller's POSTLINE_* variables first */ readonly cleanEnv?: boolean } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const base = opts.cleanEnv ? Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('POSTLINE_'))) : process.env;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [POSTLINE_BIN, ...args], { ...(opts.cwd ? { cwd: opts.cwd } : {}), env: { ...base, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const t = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`postline ${args.join(' ')} took more than 60 s`)); }, 60_000);
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.on('exit', (code) => { clearTimeout(t); resolve({ code: code ?? -1, stdout, stderr }); });
    child.stdin.end(input ?? '');
  });
}

/**
 * Starts `postline serve` with one delivery route per domain to a loopback peer's port (tls none),
 * retries held back (60 s) and a 100 ms scan: the set-up of the end-to-end DSN and SMTPUTF8 tests.
 * @param routes domain -> port of the peer standing for that next hop
 * @param opts.http also start the HTTP API on a free port (`pl.httpPort`)
 */
export async function startRoutedPostline(routes: Record<string, number>, opts: { http?: boolean } = {}): Promise<PostlineProcess> {
  const pl = new PostlineProcess({
    ...(opts.http ? { http: true } : {}),
    config: {
      delivery: {
        routes: Object.entries(routes).map(([domain, port]) => ({ domain, host: '127.0.0.1', port, tls: 'none' })),
        retry: { initialMs: 60_000, maxMs: 60_000, jitter: 0 },
        scanIntervalMs: 100,
      },
    },
  });
  await pl.start();
  return pl;
}
