/**
 * Test helper: a private Postfix instance as a real receiving MTA on loopback (its own config,
 * queue and data directories in a temp dir; smtpd on a chosen 127.0.0.1 port with STARTTLS from a
 * given key and certificate, CHUNKING and PIPELINING as Postfix offers them), relaying everything
 * to `relayPort` (an smtp-sink). Needs root and the postfix package (`available()` says whether
 * the test can run). The instance's log goes to `maillog` (postlogd). Stopped by its master pid.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const POSTFIX = '/usr/sbin/postfix';

/** True when a private Postfix can be started here (root, postfix installed, user postfix). */
export function postfixAvailable(): boolean {
  if (process.getuid?.() !== 0 || !existsSync(POSTFIX)) return false;
  try {
    execFileSync('id', ['-u', 'postfix'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export class PostfixInstance {
  readonly dir = mkdtempSync(join(tmpdir(), 'postline-postfix-'));
  readonly maillog = join(this.dir, 'maillog');
  private readonly conf = join(this.dir, 'conf');
  private readonly queue = join(this.dir, 'queue');
  private masterPid = 0;

  constructor(private readonly o: { port: number; relayPort: number; tls: { key: string; cert: string } }) {}

  private run(...args: string[]): string {
    try {
      return execFileSync(POSTFIX, ['-c', this.conf, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 });
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      throw new Error(`postfix -c ${this.conf} ${args.join(' ')} failed: ${String(e.stderr ?? e.message).trim()}`);
    }
  }

  /** Writes main.cf / master.cf and starts the master; resolves when its pid file names a live process. */
  async start(): Promise<void> {
    const data = join(this.dir, 'data');
    chmodSync(this.dir, 0o755); // mkdtemp makes it 0700: the postfix user must reach data/
    for (const d of [this.conf, this.queue, data]) mkdirSync(d, { recursive: true });
    const uid = Number(execFileSync('id', ['-u', 'postfix'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postfix'], { encoding: 'utf8' }).trim());
    chownSync(data, uid, gid);
    writeFileSync(join(this.conf, 'chain.pem'), this.o.tls.key + this.o.tls.cert, { mode: 0o600 });
    writeFileSync(join(this.conf, 'main.cf'), [
      'compatibility_level = 3.6',
      `queue_directory = ${this.queue}`,
      `data_directory = ${data}`,
      `maillog_file_prefixes = ${this.dir}`,
      `maillog_file = ${this.maillog}`,
      'myhostname = postfix-peer.test',
      'mydestination =',
      `relayhost = [127.0.0.1]:${this.o.relayPort}`,
      'mynetworks = 127.0.0.0/8',
      'inet_interfaces = 127.0.0.1',
      'inet_protocols = ipv4',
      'smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination',
      'smtpd_tls_security_level = may',
      `smtpd_tls_chain_files = ${join(this.conf, 'chain.pem')}`,
      'smtpd_tls_loglevel = 1',
      'smtp_tls_security_level = none',
      'alias_maps =',
      'alias_database =',
      'biff = no',
      '',
    ].join('\n'));
    const services = [
      `127.0.0.1:${this.o.port} inet n - n - - smtpd`,
      'cleanup unix n - n - 0 cleanup', 'qmgr unix n - n 300 1 qmgr', 'tlsmgr unix - - n 1000? 1 tlsmgr',
      'rewrite unix - - n - - trivial-rewrite', 'bounce unix - - n - 0 bounce', 'defer unix - - n - 0 bounce',
      'trace unix - - n - 0 bounce', 'verify unix - - n - 1 verify', 'flush unix n - n 1000? 0 flush',
      'proxymap unix - - n - - proxymap', 'smtp unix - - n - - smtp', 'relay unix - - n - - smtp',
      'error unix - - n - - error', 'retry unix - - n - - error', 'discard unix - - n - - discard',
      'anvil unix - - n - 1 anvil', 'scache unix - - n - 1 scache', 'postlog unix-dgram n - n - 1 postlogd',
    ];
    writeFileSync(join(this.conf, 'master.cf'), services.join('\n') + '\n');
    this.run('start');
    const pidFile = join(this.queue, 'pid', 'master.pid');
    for (let i = 0; i < 200 && !this.masterPid; i++) {
      if (existsSync(pidFile)) {
        const pid = Number(readFileSync(pidFile, 'utf8').trim());
        if (pid && alive(pid)) this.masterPid = pid;
      }
      if (!this.masterPid) await new Promise((r) => setTimeout(r, 100));
    }
    if (!this.masterPid) throw new Error(`postfix master did not start; see ${this.maillog}`);
  }

  /** The log so far ('' when none). */
  log(): string {
    try { return readFileSync(this.maillog, 'utf8'); } catch { return ''; }
  }

  /** Stops the instance (its master pid, SIGKILL after 15 s) and removes the directory. */
  async cleanup(): Promise<void> {
    if (this.masterPid) {
      try { this.run('stop'); } catch { /* killed below */ }
      for (let i = 0; i < 150 && alive(this.masterPid); i++) await new Promise((r) => setTimeout(r, 100));
      if (alive(this.masterPid)) try { process.kill(this.masterPid, 'SIGKILL'); } catch { /* gone */ }
      this.masterPid = 0;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
