/**
 * Test helper: a private Dovecot (Debian dovecot-core + dovecot-lmtpd) speaking LMTP only, run in
 * the foreground (-F) with its own dovecot.conf in a temp directory: base_dir, state_dir and the
 * log file there, no SSL, an LMTP listener on a free loopback port and a unix socket, users from a
 * passwd-file (no passwords are ever checked: LMTP only looks users up), Maildirs under the temp
 * directory, and the quota plugin with a per-user limit for the users that ask for one.
 *
 * As root, Dovecot's own processes run as its usual system users (dovecot / dovenull, else
 * nobody) and the mailboxes belong to nobody (Dovecot refuses mail access as uid 0). As another
 * user everything runs as that user (default_internal_user = default_login_user = the user, the
 * mailboxes with its uid): Dovecot then starts without root. stop() ends it and removes the dir.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { startDaemon } from './daemon.js';
import { freePort, waitFor } from './net.js';

/** The dovecot binary, when installed. */
export function dovecotBinary(): string | undefined {
  for (const p of ['/usr/sbin/dovecot', '/usr/local/sbin/dovecot']) if (existsSync(p)) return p;
  return spawnSync('sh', ['-c', 'command -v dovecot']).stdout?.toString().trim() || undefined;
}

/** One mailbox user (looked up by the local part of any address: alice@anything). */
export interface DovecotUser {
  readonly name: string;
  /** Quota storage limit in Dovecot's notation ("1K", "10M"); absent: no limit. */
  readonly quota?: string;
  /** Over quota answers 452 4.2.2 (quota_full_tempfail) instead of 552 5.2.2. */
  readonly tempfail?: boolean;
}

export interface DovecotHandle {
  readonly dir: string;
  /** The master process (its children are Dovecot's services). */
  readonly pid: number;
  /** The LMTP TCP listener on 127.0.0.1. */
  readonly port: number;
  /** The LMTP unix socket. */
  readonly socketPath: string;
  /** `local.routes` targets: "127.0.0.1:PORT" and "unix:/path". */
  readonly tcpTarget: string;
  readonly unixTarget: string;
  /** The user's Maildir. */
  maildir(user: string): string;
  /** Full paths of the user's delivered messages (new/ and cur/), sorted by name. */
  messages(user: string): string[];
  /** Dovecot's log so far. */
  log(): string;
  /** LMTP connections Dovecot accepted since it started (its "Connect from" log lines; the two start-up probes not counted). */
  connections(): number;
  stop(): Promise<void>;
}

const ids = (name: string): { uid: number; gid: number } | undefined => {
  const r = spawnSync('id', [name], { encoding: 'utf8' });
  const uid = /uid=(\d+)/.exec(r.stdout ?? '')?.[1];
  const gid = /gid=(\d+)/.exec(r.stdout ?? '')?.[1];
  return r.status === 0 && uid && gid ? { uid: Number(uid), gid: Number(gid) } : undefined;
};
const exists = (name: string): boolean => ids(name) !== undefined;

/** Connects and reads Dovecot's 220 greeting (the sign that the LMTP service answers). */
function greets(opts: { port: number } | { path: string }): Promise<boolean> {
  return new Promise((resolve) => {
    const s: Socket = 'path' in opts ? connect(opts.path) : connect(opts.port, '127.0.0.1');
    const done = (ok: boolean) => { s.destroy(); resolve(ok); };
    s.setTimeout(2000, () => done(false));
    s.once('data', (d: Buffer) => done(d.toString().startsWith('220')));
    s.once('error', () => done(false));
  });
}

/**
 * Starts Dovecot with `users` (default alice, bob). Resolves when both listeners greet.
 * @throws Error when dovecot is not installed or does not start within 20 s (with its log).
 */
export async function startDovecot(opts: { users?: readonly DovecotUser[] } = {}): Promise<DovecotHandle> {
  const bin = dovecotBinary();
  if (!bin) throw new Error('dovecot is not installed (Debian packages dovecot-core and dovecot-lmtpd)');
  const users = opts.users ?? [{ name: 'alice' }, { name: 'bob' }];
  const dir = mkdtempSync(join(tmpdir(), 'postline-dovecot-'));
  chmodSync(dir, 0o755); // Dovecot's unprivileged processes reach base_dir and the users file through it
  const root = process.getuid?.() === 0;
  const me = userInfo();
  const mailOwner = root ? (ids('nobody') ?? { uid: 65534, gid: 65534 }) : { uid: me.uid, gid: me.gid };
  const internalUser = root ? (exists('dovecot') ? 'dovecot' : 'nobody') : me.username;
  const loginUser = root ? (exists('dovenull') ? 'dovenull' : 'nobody') : me.username;
  // Not root: the sockets Dovecot makes for its internal group must be chown-able by us.
  const internalGroup = root ? undefined : spawnSync('id', ['-gn'], { encoding: 'utf8' }).stdout.trim();
  const mailRoot = join(dir, 'mail');
  mkdirSync(mailRoot);
  if (root) chownSync(mailRoot, mailOwner.uid, mailOwner.gid);
  const passwd = users.map((u) => {
    const extra = [
      ...(u.quota ? [`userdb_quota_rule=*:storage=${u.quota}`] : []),
      ...(u.tempfail ? ['userdb_quota_full_tempfail=yes'] : []),
    ].join(' ');
    return `${u.name}:{PLAIN}unused:${mailOwner.uid}:${mailOwner.gid}::${join(mailRoot, u.name)}::${extra}`;
  });
  writeFileSync(join(dir, 'users'), passwd.join('\n') + '\n', { mode: 0o644 });
  const port = await freePort();
  const logFile = join(dir, 'dovecot.log');
  const conf = [
    `base_dir = ${join(dir, 'run')}`,
    `state_dir = ${join(dir, 'state')}`,
    `log_path = ${logFile}`,
    `info_log_path = ${logFile}`,
    'protocols = lmtp',
    'ssl = no',
    'listen = 127.0.0.1',
    `default_internal_user = ${internalUser}`,
    `default_login_user = ${loginUser}`,
    ...(internalGroup ? [`default_internal_group = ${internalGroup}`] : []),
    ...(root ? [] : ['service anvil {\n  chroot =\n}']), // chroot needs root
    'first_valid_uid = 1',
    'auth_username_format = %Ln', // users by local part, whatever the domain
    'mail_location = maildir:~/Maildir',
    'mail_save_crlf = yes', // store the lines as they came (CRLF), so tests compare bytes
    'mail_plugins = quota',
    `passdb {\n  driver = passwd-file\n  args = ${join(dir, 'users')}\n}`,
    `userdb {\n  driver = passwd-file\n  args = ${join(dir, 'users')}\n}`,
    'plugin {\n  quota = maildir:User quota\n}',
    `service lmtp {\n  inet_listener lmtp {\n    address = 127.0.0.1\n    port = ${port}\n  }\n  unix_listener lmtp {\n    mode = 0666\n  }\n}`,
  ];
  const confFile = join(dir, 'dovecot.conf');
  writeFileSync(confFile, conf.join('\n') + '\n', { mode: 0o644 });
  const socketPath = join(dir, 'run', 'lmtp');
  const d = startDaemon(bin, ['-F', '-c', confFile]);
  const { child } = d;
  const log = () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : '') + d.output();
  const stop = async (): Promise<void> => {
    await d.stop(10_000); // Dovecot's master ends its services on SIGTERM
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitFor('dovecot LMTP listeners', async () => {
      if (child.exitCode !== null) throw new Error(`dovecot exited with ${child.exitCode}`);
      return existsSync(socketPath) && (await greets({ port })) && (await greets({ path: socketPath }));
    }, 20_000, 100);
    // Dovecot's log process writes the probes' lines a moment later: wait, so that counts start at 0.
    await waitFor('the probes in dovecot.log', () => connectLines(log()) >= 2, 10_000, 20);
  } catch (err) {
    const text = log();
    await stop();
    throw new Error(`${(err as Error).message}\n${text}`);
  }
  const maildir = (user: string) => join(mailRoot, user, 'Maildir');
  return {
    dir, pid: child.pid!, port, socketPath, tcpTarget: `127.0.0.1:${port}`, unixTarget: `unix:${socketPath}`,
    maildir,
    messages(user: string): string[] {
      const files: string[] = [];
      for (const sub of ['new', 'cur']) {
        const d = join(maildir(user), sub);
        if (existsSync(d)) for (const f of readdirSync(d)) files.push(join(d, f));
      }
      return files.sort();
    },
    log,
    connections: () => connectLines(log()) - 2,
    stop,
  };
}

const connectLines = (log: string): number => (log.match(/: Info: Connect from /g) ?? []).length;

/**
 * The message as the sender wrote it: the file without the header fields Dovecot put on top
 * (Return-Path, Delivered-To and its own Received field, the first one there).
 */
export function withoutDovecotFields(file: Buffer): Buffer {
  let at = 0;
  let ownReceived = false;
  for (let guard = 0; guard < 100; guard++) {
    const field = fieldAt(file, at);
    if (!field) break;
    const name = field.name.toLowerCase();
    if (name === 'return-path' || name === 'delivered-to') { at = field.end; continue; }
    if (name === 'received' && !ownReceived && / with LMTP/.test(field.text)) { ownReceived = true; at = field.end; continue; }
    break;
  }
  return file.subarray(at);
}

/** The header field starting at `at` (name, whole text, where the next one starts), or undefined. */
export function fieldAt(b: Buffer, at: number): { name: string; text: string; end: number } | undefined {
  const colon = b.indexOf(':', at);
  const firstEnd = b.indexOf('\r\n', at);
  if (colon < 0 || firstEnd < 0 || colon > firstEnd) return undefined;
  let end = firstEnd + 2;
  while (end < b.length && (b[end] === 0x20 || b[end] === 0x09)) {
    const next = b.indexOf('\r\n', end);
    if (next < 0) break;
    end = next + 2;
  }
  return { name: b.subarray(at, colon).toString('latin1'), text: b.subarray(at, end).toString('latin1'), end };
}
