/**
 * Test helper: a real HAProxy (Debian package haproxy) in TCP mode on loopback, in front of
 * Postline listeners, sending the PROXY protocol header (send-proxy: v1, send-proxy-v2: v2).
 * Runs in the foreground (-db) with a configuration written into a temp directory; stop() ends it
 * and removes the directory. No chroot, no user switch, no stats socket.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon } from './daemon.js';
import { freePort, waitFor } from './net.js';

/** The haproxy binary, when installed. */
export function haproxyBinary(): string | undefined {
  for (const p of ['/usr/sbin/haproxy', '/usr/bin/haproxy']) {
    if (spawnSync(p, ['-v']).status === 0) return p;
  }
  return spawnSync('sh', ['-c', 'command -v haproxy']).stdout?.toString().trim() || undefined;
}

/** One frontend (a free loopback port) forwarding to a Postline port with the given PROXY version. */
export interface Route {
  readonly name: string;
  readonly target: number;
  /** 'v1' send-proxy, 'v2' send-proxy-v2. */
  readonly proxy: 'v1' | 'v2';
}

export interface HaproxyHandle {
  /** Frontend port by route name. */
  readonly ports: ReadonlyMap<string, number>;
  /** Everything haproxy wrote (its log goes to stderr). */
  output(): string;
  stop(): Promise<void>;
}

/**
 * Starts haproxy with one TCP frontend per route, and (with `healthCheck`) a backend without a
 * frontend whose server is health-checked every 300 ms with send-proxy-v2 (LOCAL command) and
 * `option smtpchk` (EHLO), each check logged. Resolves when every frontend accepts connections.
 */
export async function startHaproxy(routes: readonly Route[], opts: { healthCheck?: number } = {}): Promise<HaproxyHandle> {
  const bin = haproxyBinary();
  if (!bin) throw new Error('haproxy is not installed');
  const dir = mkdtempSync(join(tmpdir(), 'postline-haproxy-'));
  const ports = new Map<string, number>();
  for (const r of routes) {
    let p = await freePort();
    for (let i = 0; i < 20 && [...ports.values()].includes(p); i++) p = await freePort();
    ports.set(r.name, p);
  }
  const lines = [
    'global', '  maxconn 512', '  log stderr format raw local0 info',
    'defaults', '  mode tcp', '  log global', '  option log-health-checks',
    '  timeout connect 5s', '  timeout client 60s', '  timeout server 60s',
  ];
  for (const r of routes) {
    lines.push(`frontend fe_${r.name}`, `  bind 127.0.0.1:${ports.get(r.name)}`, `  default_backend be_${r.name}`);
    lines.push(`backend be_${r.name}`, `  server postline 127.0.0.1:${r.target} ${r.proxy === 'v1' ? 'send-proxy' : 'send-proxy-v2'}`);
  }
  if (opts.healthCheck) {
    lines.push('backend be_health', '  option smtpchk EHLO haproxy.test',
      `  server postline 127.0.0.1:${opts.healthCheck} send-proxy-v2 check check-send-proxy inter 300 rise 1 fall 1`);
  }
  const cfg = join(dir, 'haproxy.cfg');
  writeFileSync(cfg, lines.join('\n') + '\n');
  const check = spawnSync(bin, ['-c', '-f', cfg], { encoding: 'utf8' });
  if (check.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`haproxy -c failed: ${check.stdout}${check.stderr}`);
  }
  const d = startDaemon(bin, ['-db', '-f', cfg]);
  const { child } = d;
  const stop = async (): Promise<void> => {
    await d.stop(5000);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (const p of ports.values()) {
      await waitFor(`haproxy on ${p} (${d.output().slice(-500)})`, async () => {
        if (child.exitCode !== null) throw new Error(`haproxy exited: ${d.output()}`);
        return new Promise<boolean>((res) => {
          const s = connect(p, '127.0.0.1');
          s.once('connect', () => { s.destroy(); res(true); });
          s.once('error', () => res(false));
        });
      }, 10_000);
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { ports, output: d.output, stop };
}
