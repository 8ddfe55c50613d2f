// A private Postfix instance for the comparison: its own config, queue and data directories in a
// temp dir, smtpd on a loopback port, everything relayed to an smtp-sink. The configuration is
// Debian's (its main.cf pieces and master.cf, read at run time) with only what the bench needs
// changed; deviations() lists each change and why. Default durability (cleanup fsyncs the queue
// file before smtpd answers 250). The system instance is not touched:
// every postfix command gets -c <our config dir>.
import { execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
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

// Debian's own main.cf pieces (what its postinst writes for every site type), read at run time.
const DEBIAN_MAIN = '/usr/share/postfix/main.cf.debian';
const DEBIAN_TLS = '/usr/share/postfix/main.cf.tls';
const DEBIAN_MASTER = '/etc/postfix/master.cf';

// Used when the Debian files are missing (another distribution): Debian 12's shipped values.
const FALLBACK_MAIN = `smtpd_banner = $myhostname ESMTP $mail_name (Debian/GNU)
biff = no
append_dot_mydomain = no
readme_directory = no
compatibility_level = 3.6
`;
const FALLBACK_TLS = `smtpd_tls_cert_file=/etc/ssl/certs/ssl-cert-snakeoil.pem
smtpd_tls_key_file=/etc/ssl/private/ssl-cert-snakeoil.key
smtpd_tls_security_level=may
smtp_tls_CApath=/etc/ssl/certs
smtp_tls_security_level=may
smtp_tls_session_cache_database = btree:\${data_directory}/smtp_scache
`;
const FALLBACK_MASTER = `smtp      inet  n       -       y       -       -       smtpd
pickup    unix  n       -       y       60      1       pickup
cleanup   unix  n       -       y       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       y       1000?   1       tlsmgr
rewrite   unix  -       -       y       -       -       trivial-rewrite
bounce    unix  -       -       y       -       0       bounce
defer     unix  -       -       y       -       0       bounce
trace     unix  -       -       y       -       0       bounce
verify    unix  -       -       y       -       1       verify
flush     unix  n       -       y       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       y       -       -       smtp
relay     unix  -       -       y       -       -       smtp
showq     unix  n       -       y       -       -       showq
error     unix  -       -       y       -       -       error
retry     unix  -       -       y       -       -       error
discard   unix  -       -       y       -       -       discard
local     unix  -       n       n       -       -       local
anvil     unix  -       -       y       -       1       anvil
scache    unix  -       -       y       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`;

const readOr = (path, fallback) => { try { return readFileSync(path, 'utf8'); } catch { return fallback; } };

export class PostfixServer {
  /**
   * @param {{ dir: string, port: number, sinkPort: number, env?: object,
   *   transport?: { domain: string, nexthop: string }[],
   *   main?: { key: string, value: string, default: string, reason: string }[] }} o
   *   transport: transport_maps entries (a texthash: map in the config dir, "domain nexthop", e.g.
   *   "d0.test smtp:[127.0.0.2]:2525"), tried before the relay host; main: more main.cf settings,
   *   each listed in deviations() with its reason.
   */
  constructor({ dir, port, sinkPort, env = {}, transport = [], main = [] }) {
    this.name = 'postfix';
    this.dir = dir;
    this.port = port;
    this.sinkPort = sinkPort;
    this.env = env;
    this.transport = transport;
    this.mainExtra = main;
    this.conf = join(dir, 'conf');
    this.queue = join(dir, 'queue');
    this.data = join(dir, 'data');
    this.maillog = join(dir, 'maillog');
    this.variant = 'grid';
    this.rootPid = null;
    this.started = false;
  }

  /** True when a transport_maps entry delivers over LMTP (master.cf keeps its lmtp service). */
  #usesLmtp() { return this.transport.some((t) => t.nexthop.startsWith('lmtp:')); }

  /** Every main.cf/master.cf change from Debian's shipped configuration, and why. */
  deviations() {
    return [
      { key: 'master.cf smtp inet', value: `127.0.0.1:${this.port} inet ... smtpd`, default: 'smtp inet (port 25, all interfaces)', reason: 'a free loopback port for the load; inet_interfaces = 127.0.0.1 likewise' },
      { key: 'master.cf chroot column', value: 'n for every service', default: 'y for most services', reason: 'the private queue dir has no copy of /etc (Debian\'s init script makes one for /var/spool/postfix); chroot changes no file I/O of the mail path' },
      { key: 'master.cf pipe transports', value: `maildrop, uucp, ifmail, bsmtp, scalemail, mailman, virtual${this.#usesLmtp() ? '' : ', lmtp'} left out`, default: 'present', reason: 'unused (their users do not exist here); no process runs for an unused service' },
      { key: 'relayhost', value: `[127.0.0.1]:${this.sinkPort}`, default: '(empty: MX lookup)', reason: this.#usesLmtp() ? 'unused here: the load\'s domain has a transport_maps entry' : 'everything goes to this server\'s own smtp-sink' },
      { key: 'myhostname, mydestination', value: 'postfix-bench.test; $myhostname, localhost', default: 'the host FQDN; $myhostname, localhost.localdomain, localhost', reason: 'stable names; sink.test stays non-local' },
      { key: 'mynetworks', value: '127.0.0.0/8 [::ffff:127.0.0.0]/104 [::1]/128', default: 'the same (Debian postinst)', reason: 'listed because the relay permission of the load rests on it' },
      { key: 'queue_directory, data_directory', value: `${this.queue}, ${this.data}`, default: '/var/spool/postfix, /var/lib/postfix', reason: 'a private instance with a fresh queue in the bench temp dir (same filesystem as Postline\'s)' },
      { key: 'maillog_file', value: this.maillog, default: '(empty: syslog)', reason: 'no syslog daemon here; postlogd writes one file, as Postline writes its log to one file (both at their default verbosity)' },
      { key: 'smtpd_tls_cert_file, smtpd_tls_key_file', value: 'a self-signed pair made with openssl in the temp dir', default: 'ssl-cert-snakeoil.pem/.key', reason: 'the ssl-cert package is not installed; smtpd_tls_security_level = may is kept (STARTTLS offered, smtp-source does not use it)' },
      ...(this.transport.length ? [{ key: 'transport_maps', value: `texthash:${join(this.conf, 'transport')} (${this.transport.length} entries: ${this.transport[0].domain} ${this.transport[0].nexthop}${this.transport.length > 1 ? ', ...' : ''})`, default: '(empty)', reason: this.#usesLmtp() ? 'local delivery bench: the domain goes over LMTP to the same Dovecot as Postline\'s (the lmtp service of Debian\'s master.cf is kept)' : 'one next hop per destination domain, each its own smtp-sink' }] : []),
      ...this.mainExtra.map((o) => ({ key: o.key, value: o.value, default: o.default, reason: o.reason })),
      { key: 'import_environment', value: '+ LD_PRELOAD SLOWSYNC_DIR SLOWSYNC_CTL SLOWSYNC_LOCK', default: 'MAIL_CONFIG MAIL_DEBUG ... POSTLOG_HOSTNAME', reason: 'master clears the environment; the slowsync shim (fsync counter, slow-disk delay) must reach every daemon, as it reaches Postline' },
    ];
  }

  memtestDeviations() {
    return [{ key: 'message_size_limit', value: 200 * 1024 * 1024, default: 10240000, reason: '100 MB message memory test only (Postline gets the same maxMessageSize there)' }];
  }

  mainCf() {
    const importEnv = (() => {
      try { return execFileSync('/usr/sbin/postconf', ['-dh', 'import_environment'], { encoding: 'utf8' }).trim(); } catch { return 'MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ XAUTHORITY DISPLAY LANG=C POSTLOG_SERVICE POSTLOG_HOSTNAME'; }
    })();
    const tls = readOr(DEBIAN_TLS, FALLBACK_TLS)
      .replace(/^smtpd_tls_cert_file\s*=.*$/m, `smtpd_tls_cert_file = ${join(this.conf, 'cert.pem')}`)
      .replace(/^smtpd_tls_key_file\s*=.*$/m, `smtpd_tls_key_file = ${join(this.conf, 'key.pem')}`);
    const settings = [
      ...(this.variant === 'memtests' ? this.memtestDeviations() : []),
      ...(this.transport.length ? [{ key: 'transport_maps', value: `texthash:${join(this.conf, 'transport')}` }] : []),
      ...this.mainExtra,
    ];
    const extra = settings.map((d) => `${d.key} = ${d.value}\n`).join('');
    return `# Postline bench: private Postfix peer (generated). Debian's main.cf first, then the bench's changes.
# --- ${DEBIAN_MAIN}
${readOr(DEBIAN_MAIN, FALLBACK_MAIN).replace(/^#.*\n/gm, '').replace(/\n{2,}/g, '\n').trim()}
# --- ${DEBIAN_TLS} (cert paths: see deviations)
${tls.replace(/^#.*\n/gm, '').replace(/\n{2,}/g, '\n').trim()}
# --- what Debian's postinst adds for a site, with the bench's values
myhostname = postfix-bench.test
mydestination = $myhostname, localhost
relayhost = [127.0.0.1]:${this.sinkPort}
mynetworks = 127.0.0.0/8 [::ffff:127.0.0.0]/104 [::1]/128
mailbox_size_limit = 0
recipient_delimiter = +
inet_interfaces = 127.0.0.1
inet_protocols = all
# --- the private instance
queue_directory = ${this.queue}
data_directory = ${this.data}
maillog_file_prefixes = ${this.dir}
maillog_file = ${this.maillog}
import_environment = ${importEnv} LD_PRELOAD SLOWSYNC_DIR SLOWSYNC_CTL SLOWSYNC_LOCK
${extra}`;
  }

  masterCf() {
    // Debian's master.cf: smtpd on our loopback port, chroot off, the pipe/virtual/lmtp transports
    // (unused, for users that do not exist here) left out.
    const drop = new Set(['maildrop', 'uucp', 'ifmail', 'bsmtp', 'scalemail-backend', 'mailman', 'virtual', ...(this.#usesLmtp() ? [] : ['lmtp'])]);
    const out = ['# Postline bench: private Postfix peer (generated from Debian\'s master.cf)'];
    let skipping = false;
    for (const line of readOr(DEBIAN_MASTER, FALLBACK_MASTER).split('\n')) {
      if (/^\s*(#|$)/.test(line)) continue;
      if (/^\s/.test(line)) { if (!skipping) out.push(line); continue; } // -o continuation
      const f = line.trim().split(/\s+/);
      skipping = drop.has(f[0]);
      if (skipping) continue;
      if (f[1] === 'inet') { if (f[0] !== 'smtp') { skipping = true; continue; } f[0] = `127.0.0.1:${this.port}`; }
      if (f.length >= 8) f[4] = 'n';
      out.push(f.slice(0, 8).join('\t') + (f.length > 8 ? ' ' + f.slice(8).join(' ') : ''));
    }
    return out.join('\n') + '\n';
  }

  /** Files in the queue (maildrop, incoming, active, deferred, hold): Postfix's queue depth. */
  queueDepth() {
    let n = 0;
    const walk = (d, depth) => {
      let es;
      try { es = readdirSync(d, { withFileTypes: true }); } catch { return; }
      for (const e of es) {
        if (e.isDirectory()) { if (depth < 4) walk(join(d, e.name), depth + 1); } else n++;
      }
    };
    for (const q of ['maildrop', 'incoming', 'active', 'deferred', 'hold']) walk(join(this.queue, q), 0);
    return n;
  }

  /** Restarts with another variant ('grid' or 'memtests': message_size_limit for the 100 MB test). */
  async restart(variant = this.variant) {
    await this.stop();
    this.variant = variant;
    await this.start();
  }

  #postfix(...args) {
    try {
      return execFileSync(POSTFIX_BIN, ['-c', this.conf, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60000, env: { ...process.env, ...this.env } });
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
    if (!existsSync(join(this.conf, 'key.pem'))) {
      execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=postfix-bench.test',
        '-keyout', join(this.conf, 'key.pem'), '-out', join(this.conf, 'cert.pem')], { stdio: 'ignore' });
    }
    if (this.transport.length) writeFileSync(join(this.conf, 'transport'), this.transport.map((t) => `${t.domain} ${t.nexthop}\n`).join(''));
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

  /**
   * Outbound SMTP connections, counted from the maillog's delivery lines (postfix/smtp ... status=):
   * the smtp client appends "conn_use=N" (N >= 2) to a delivery over a connection it took from the
   * connection cache, so a line without conn_use is the first delivery on a connection it opened.
   * Connections that delivered nothing (failed before a status) are not seen here.
   * @returns {{ deliveries: number, sent: number, opened: number, reused: number, maxConnUse: number }}
   */
  deliveryConnections() {
    let text = '';
    try { text = readFileSync(this.maillog, 'utf8'); } catch { /* no log yet */ }
    const r = { deliveries: 0, sent: 0, opened: 0, reused: 0, maxConnUse: 1 };
    for (const line of text.split('\n')) {
      if (!/ postfix\/smtp\[\d+\]: [0-9A-Za-z]+: to=</.test(line) || !/ status=/.test(line)) continue;
      r.deliveries++;
      if (/ status=sent /.test(line)) r.sent++;
      const cu = /, conn_use=(\d+),/.exec(line);
      if (cu) { r.reused++; r.maxConnUse = Math.max(r.maxConnUse, Number(cu[1])); } else r.opened++;
    }
    return r;
  }

  describe() {
    return { transport: this.transport.length ? this.transport.map((t) => `${t.domain} ${t.nexthop}`).join('\n') : undefined, mainCf: this.mainCf(), masterCf: this.masterCf(), start: `postfix -c ${this.conf} start`, deviations: this.deviations(), memtestOverrides: this.memtestDeviations() };
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
