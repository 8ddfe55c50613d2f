/**
 * `postline sendmail`: the sendmail-compatible command (and `mailq`, `newaliases` when called by
 * those names through a symlink). Options in sendmail-args.ts, the input rules in
 * sendmail-input.ts, the way into the server in sendmail-submit.ts, -bs in sendmail-bs.ts, exit
 * codes in sysexits.ts. Returns an exit code; never calls process.exit itself.
 *
 * Configuration: -C FILE, else POSTLINE_CONFIG, else /etc/postline/postline.yaml when it exists,
 * else the embedded defaults (the other commands skip the /etc file: programs that call sendmail
 * pass neither a flag nor, often, an environment).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { userInfo } from 'node:os';
import { basename, join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { loadConfig } from '../config/load.js';
import type { PostlineConfig } from '../config/schema.js';
import type { DsnNotify, Envelope, Recipient } from '../core/envelope.js';
import { ConfigError } from '../core/errors.js';
import { parsePath } from '../rfc5321/address.js';
import addressparser from 'nodemailer/lib/addressparser';
import type { SubmitEnvelope } from '../pickup/protocol.js';
import { parseSendmailArgs, type SendmailArgs } from './sendmail-args.js';
import { sendmailHelp } from './sendmail-help.js';
import { readMessage } from './sendmail-input.js';
import { submitMessage } from './sendmail-submit.js';
import { EX, SendmailExit, type ExitCode } from './sysexits.js';

/** The system-wide configuration file the command looks for last. */
export const SYSTEM_CONFIG = '/etc/postline/postline.yaml';

export interface SendmailIo {
  readonly stdin: Readable;
  readonly stdout: Writable;
  readonly stderr: Writable;
  readonly env: NodeJS.ProcessEnv;
  /** Where to look for the system configuration (tests). */
  readonly systemConfig?: string;
}

/** The names the program answers to: argv[1]'s base name decides (a symlink or a copy). */
export function invokedAs(argv1: string | undefined): 'sendmail' | 'mailq' | 'newaliases' | undefined {
  const name = basename(argv1 ?? '').replace(/\.(m?js)$/, '');
  return name === 'sendmail' || name === 'mailq' || name === 'newaliases' ? name : undefined;
}

/** The configuration file: -C (a file, or a directory with postline.yaml), POSTLINE_CONFIG, the system file when present. */
export function configFileFor(flag: string | undefined, env: NodeJS.ProcessEnv, systemConfig = SYSTEM_CONFIG): string | undefined {
  if (flag) {
    try { if (statSync(flag).isDirectory()) return join(flag, 'postline.yaml'); } catch { /* loadConfig reports it */ }
    return flag;
  }
  if (env.POSTLINE_CONFIG) return env.POSTLINE_CONFIG;
  return existsSync(systemConfig) ? systemConfig : undefined;
}

/** The user running the command (the kernel's uid through getpwuid), else $USER / $LOGNAME, else "uid<N>". */
function currentUser(env: NodeJS.ProcessEnv): string {
  try {
    return userInfo().username;
  } catch {
    return env.USER || env.LOGNAME || `uid${process.getuid?.() ?? 'unknown'}`;
  }
}

/** The user name as the envelope line may carry it (protocol.ts), or undefined. */
const claimable = (u: string): string | undefined => (/^[A-Za-z0-9_][A-Za-z0-9_.@-]{0,63}$/.test(u) ? u : undefined);

/** One address as given on the command line or in a header: domain added when it has none; checked by the RFC 5321 path grammar. @throws SendmailExit (EX_NOUSER). */
function qualify(address: string, origin: string, what: string): string {
  const a = address.trim().replace(/^<(.*)>$/, '$1');
  const full = a.includes('@') ? a : `${a}@${origin}`;
  const p = parsePath(`<${full}>`);
  if (!p.ok) throw new SendmailExit(EX.NOUSER, `bad ${what} address "${address}": ${p.detail}`);
  return p.address;
}

/** The recipient arguments: each may hold a comma-separated list ("a@x, b@y"), as sendmail reads them. */
function argumentRecipients(args: readonly string[], origin: string): string[] {
  const out: string[] = [];
  for (const arg of args) {
    // A bare word ("root") is a local user to addressparser's eyes a display name: take it as is.
    const list = /^[^\s,<>"()]+$/.test(arg) ? [arg] : addressparser(arg, { flatten: true }).map((a) => a.address || (/^[^\s@]+$/.test(a.name) ? a.name : '')).filter(Boolean);
    if (!list.length) throw new SendmailExit(EX.NOUSER, `bad recipient address "${arg}"`);
    for (const a of list) out.push(qualify(a, origin, 'recipient'));
  }
  return out;
}

/** The envelope sender: -f / -r as given ('' or '<>': null), else USER@origin. */
function senderOf(a: SendmailArgs, user: string, origin: string): string {
  if (a.from === undefined) return qualify(user, origin, 'sender');
  const f = a.from.trim();
  if (f === '' || f === '<>') return '';
  return qualify(f, origin, 'sender');
}

/**
 * Runs the command. @param argv the arguments after the command name ("postline sendmail" or the
 * symlink's name). @returns the exit code (sysexits.ts); errors are printed on stderr.
 */
export async function runSendmail(argv: readonly string[], io: SendmailIo, name: 'sendmail' | 'mailq' | 'newaliases' = 'sendmail'): Promise<number> {
  const say = (line: string): void => void io.stderr.write(`${name === 'sendmail' ? 'postline sendmail' : name}: ${line}\n`);
  try {
    const a = parseSendmailArgs(argv, name);
    if (a.mode === 'help') {
      io.stdout.write(sendmailHelp());
      return EX.OK;
    }
    if (a.verbose && a.ignored.length) say(`ignored: ${a.ignored.join(' ')}`);
    if (a.mode === 'nothing') return EX.OK;
    let config: PostlineConfig;
    const file = configFileFor(a.configFile, io.env, io.systemConfig);
    try {
      config = loadConfig(file, io.env);
    } catch (err) {
      throw new SendmailExit(EX.CONFIG, err instanceof ConfigError ? err.message : `configuration: ${(err as Error).message}`, { cause: err });
    }
    if (a.verbose) say(`configuration ${file ?? '(embedded defaults)'}, dataDir ${config.dataDir}`);
    if (a.mode === 'aliases') return newaliases(config, say);
    if (a.mode === 'list' || a.mode === 'flush') {
      const { runQueueMode } = await import('./sendmail-queue.js');
      return await runQueueMode(a, config, io.stdout, say);
    }
    if (!config.sendmail.enabled) throw new SendmailExit(EX.UNAVAILABLE, 'sendmail.enabled is false in the configuration: local submission is off');
    const user = currentUser(io.env);
    if (a.mode === 'smtp') {
      const { runStdioSession } = await import('./sendmail-bs.js');
      return await runStdioSession(config, { input: io.stdin, output: io.stdout, stderr: io.stderr, user: claimable(user) ?? 'unknown', verbose: a.verbose });
    }
    return await deliver(a, config, io, user, say);
  } catch (err) {
    if (err instanceof SendmailExit) {
      say(err.message);
      return err.exitCode;
    }
    say(`internal error: ${(err as Error).stack ?? String(err)}`);
    return EX.SOFTWARE;
  }
}

/**
 * newaliases / -bi: aliases are `local.aliases` in the configuration (already checked by loading
 * it: a loop is a configuration error), so there is no database to build; a running server is told
 * to read its configuration again (SIGHUP, as `kill -HUP`), which takes the aliases over live.
 * @throws SendmailExit EX_NOPERM when the server cannot be signalled (not root or its user).
 */
function newaliases(config: PostlineConfig, say: (l: string) => void): ExitCode {
  const a = config.local.aliases;
  const n = Array.isArray(a) ? a.length : Object.keys(a).length;
  const what = `${n} alias${n === 1 ? '' : 'es'} in local.aliases, configuration valid`;
  let pid = NaN;
  try { pid = Number(readFileSync(join(config.dataDir, 'postline.pid'), 'utf8').trim()); } catch { /* no server */ }
  let alive = Number.isInteger(pid) && pid > 0;
  if (alive) {
    try { process.kill(pid, 0); } catch (err) { alive = (err as NodeJS.ErrnoException).code === 'EPERM'; }
  }
  if (!alive) {
    say(`${what}; no server is running: they apply when it starts`);
    return EX.OK;
  }
  try {
    process.kill(pid, 'SIGHUP');
  } catch (err) {
    throw new SendmailExit(EX.NOPERM, `${what}, but the server (pid ${pid}) cannot be told to reload (${(err as NodeJS.ErrnoException).code}): run as root or the server's user, or send it SIGHUP`, { cause: err });
  }
  say(`${what}; the server (pid ${pid}) was told to reload its configuration (SIGHUP)`);
  return EX.OK;
}

/** -bm: read the message, make the envelope, queue it. */
async function deliver(a: SendmailArgs, config: PostlineConfig, io: SendmailIo, user: string, say: (l: string) => void): Promise<ExitCode> {
  const origin = config.sendmail.origin ?? config.hostname;
  const mailFrom = senderOf(a, user, origin);
  const fromArgs = argumentRecipients(a.recipients, origin);
  if (!a.extract && fromArgs.length === 0) throw new SendmailExit(EX.USAGE, 'no recipients: give them as arguments, or use -t to take them from the message header');
  const fullName = a.fullName ?? io.env.NAME;
  const msg = await readMessage(io.stdin, {
    ignoreDots: a.ignoreDots, extract: a.extract, fromAddress: mailFrom || qualify(user, origin, 'sender'), ...(fullName ? { fullName } : {}),
  });
  const fromHeader = msg.headerRecipients.map((r) => qualify(r, origin, 'recipient'));
  const all = [...new Set([...fromHeader, ...fromArgs])]; // cleanup removes duplicates too, case-insensitively
  if (all.length === 0) throw new SendmailExit(EX.NOUSER, 'no recipient addresses found in the message header (-t)');
  if (all.length > config.limits.maxRecipients) throw new SendmailExit(EX.DATAERR, `${all.length} recipients: more than limits.maxRecipients (${config.limits.maxRecipients})`);
  const notify: readonly DsnNotify[] | undefined = a.notify;
  const recipients: Recipient[] = all.map((address) => ({ address, ...(notify ? { notify } : {}) }));
  const envelope: Envelope = {
    mailFrom, recipients, bodyType: a.bodyType ?? '8BITMIME',
    smtputf8: /[^\x00-\x7f]/.test(mailFrom) || all.some((r) => /[^\x00-\x7f]/.test(r)),
    ...(a.ret ? { ret: a.ret } : {}), ...(a.envid !== undefined ? { envid: a.envid } : {}),
  };
  const claimed = claimable(user);
  const env: SubmitEnvelope = { envelope, ...(claimed ? { user: claimed } : {}) };
  const verbose = a.verbose ? say : undefined;
  const out = await submitMessage({ dataDir: config.dataDir, maxMessageSize: config.limits.maxMessageSize, ...(verbose ? { verbose } : {}) }, env, msg.head, msg.body);
  if (a.verbose) {
    say(out.via === 'socket' ? `${out.reply} (sender <${mailFrom}>, ${all.length} recipient${all.length === 1 ? '' : 's'})` : `written to the maildrop as ${out.file} (${out.why}); the server picks it up when it runs`);
  }
  return EX.OK;
}
