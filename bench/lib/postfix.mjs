// A private Postfix instance for the comparison: its own config, queue and data directories in a
// temp dir, smtpd on a loopback port, everything relayed to an smtp-sink, default durability
// (cleanup fsyncs the queue file before smtpd answers 250). The system instance is not touched:
// every postfix command gets -c <our config dir>.
import { execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readStat } from './proc.mjs';

export const POSTFIX_BIN = '/usr/sbin/postfix';

export function postfixInstallHint() {
  return [
    'Postfix (smtp-source, smtp-sink and the peer server) is needed. On Debian/Ubuntu, as root:',
    '  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections',
    '  DEBIAN_FRONTEND=noninteractive apt-get install -y postfix',
    'The system instance stays stopped and unconfigured; the bench runs a private instance.',
  ].join('\n');
}

/** Installs Postfix when running as root on Debian; otherwise explains how. Returns true when present. */
export function ensurePostfix(log) {
  const present = () => ['/usr/sbin/postfix', '/usr/sbin/smtp-source', '/usr/sbin/smtp-sink'].every((p) => existsSync(p));
  if (present()) return true;
  if (process.getuid?.() === 0 && existsSync('/usr/bin/apt-get')) {
    log('postfix is missing: installing it with apt-get (no configuration, system instance not started)');
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    execFileSync('/bin/sh', ['-c', 'echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections'], { stdio: 'inherit', env });
    execFileSync('apt-get', ['update'], { stdio: 'inherit', env, timeout: 300000 });
    execFileSync('apt-get', ['install', '-y', '--no-install-recommends', 'postfix'], { stdio: 'inherit', env, timeout: 600000 });
    return present();
  }
  return false;
}

export class PostfixServer {
  constructor({ dir, port, sinkPort, messageSizeLimit }) {
    this.name = 'postfix';
    this.dir = dir;
    this.port = port;
    this.sinkPort = sinkPort;
    this.conf = join(dir, 'conf');
    this.queue = join(dir, 'queue');
    this.data = join(dir, 'data');
    this.maillog = join(dir, 'maillog');
    this.messageSizeLimit = messageSizeLimit;
    this.rootPid = null;
    this.started = false;
  }

  mainCf() {
    return `# Postline bench: private Postfix peer (generated)
compatibility_level = 3.6
myhostname = postfix-bench.test
mydomain = postfix-bench.test
myorigin = $myhostname
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost = [127.0.0.1]:${this.sinkPort}
# no local delivery
mydestination =
local_recipient_maps =
local_transport = error:local delivery disabled
alias_maps =
alias_database =
# plain SMTP on both sides, as Postline is configured
smtpd_tls_security_level = none
smtp_tls_security_level = none
smtp_dns_support_level = disabled
message_size_limit = ${this.messageSizeLimit}
queue_directory = ${this.queue}
data_directory = ${this.data}
maillog_file_prefixes = ${this.dir}
maillog_file = ${this.maillog}
biff = no
`;
  }

  masterCf() {
    // The Debian defaults minus chroot (the queue dir is private) and minus local/pipe transports.
    return `# Postline bench: private Postfix peer (generated)
127.0.0.1:${this.port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`;
  }

  #postfix(...args) {
    try {
      return execFileSync(POSTFIX_BIN, ['-c', this.conf, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60000 });
    } catch (e) {
      let maillog = '';
      try { maillog = readFileSync(this.maillog, 'utf8').split('\n').slice(-5).join('\n'); } catch { /* none yet */ }
      throw new Error(`postfix -c ${this.conf} ${args.join(' ')} failed: ${String(e.stderr ?? e.message).trim()}\n${maillog}`);
    }
  }

  version() {
    try { return execFileSync('/usr/sbin/postconf', ['-c', this.conf, '-h', 'mail_version'], { encoding: 'utf8' }).trim(); } catch { return 'unknown'; }
  }

  async start() {
    if (process.getuid?.() !== 0) throw new Error('the private Postfix instance needs root (postfix start); run the bench as root');
    mkdirSync(this.conf, { recursive: true });
    mkdirSync(this.queue, { recursive: true }); // root-owned; postfix creates its subdirectories
    mkdirSync(this.data, { recursive: true });
    const pw = execFileSync('id', ['-u', 'postfix'], { encoding: 'utf8' }).trim();
    const gr = execFileSync('id', ['-g', 'postfix'], { encoding: 'utf8' }).trim();
    chownSync(this.data, Number(pw), Number(gr));
    writeFileSync(join(this.conf, 'main.cf'), this.mainCf());
    writeFileSync(join(this.conf, 'master.cf'), this.masterCf());
    this.#postfix('check');
    this.#postfix('start');
    this.started = true;
    const pidFile = join(this.queue, 'pid', 'master.pid');
    const deadline = Date.now() + 20000;
    while (Date.now() < deadline) {
      if (existsSync(pidFile)) {
        const pid = Number(readFileSync(pidFile, 'utf8').trim());
        if (pid && readStat(pid)) { this.rootPid = pid; break; }
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    if (!this.rootPid) throw new Error(`postfix master did not start; see ${this.maillog}`);
  }

  describe() {
    return { mainCf: this.mainCf(), masterCf: this.masterCf(), start: `postfix -c ${this.conf} start` };
  }

  /** Stops the instance and makes sure no process of it is left. Safe to call twice. */
  async stop() {
    if (!this.started) return;
    this.started = false;
    try { this.#postfix('stop'); } catch { /* fall through to the check below */ }
    const deadline = Date.now() + 15000;
    while (this.rootPid && readStat(this.rootPid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    if (this.rootPid && readStat(this.rootPid)) {
      try { this.#postfix('abort'); } catch { /* ignore */ }
      try { process.kill(this.rootPid, 'SIGKILL'); } catch { /* gone */ }
    }
  }

  /** Sync variant for exit handlers. */
  stopSync() {
    if (!this.started) return;
    this.started = false;
    try { this.#postfix('stop'); } catch { /* ignore */ }
    try { if (this.rootPid) process.kill(this.rootPid, 'SIGKILL'); } catch { /* gone */ }
  }
}
