/**
 * `postline queue list|show|flush|delete|hold|release` (and destinations|suspend|resume|bounce,
 * queue-destinations.ts): operator commands on the mail queue.
 * When a server runs, requests go over its control socket (`${dataDir}/control.sock`, see
 * src/control/) so the scheduler stays the only writer; when none answers, the store is opened
 * directly (flush then only sets the next attempt time to now). Errors are thrown with a clear
 * message; src/cli/index.ts prints them and exits non-zero.
 */
import type { Command } from 'commander';
import { join } from 'node:path';
import type { PostlineConfig } from '../config/schema.js';
import { systemClock } from '../core/clock.js';
import { isQueueId } from '../core/queue-id.js';
import { controlRequest, isNoServer } from '../control/client.js';
import { StoreQueueAdmin } from '../control/offline.js';
import { executeRequest, type ControlRequest } from '../control/protocol.js';
import type { MessageDetail } from '../scheduler/admin.js';
import { SqliteDestinationStateStore, type DestinationStateStore } from '../scheduler/destination-store.js';
import type { QueueStore, QueueSummary } from '../spool/types.js';
import { registerDestinationCommands } from './queue-destinations.js';

export interface QueueCommandDeps {
  readonly loadConfig: (file?: string) => PostlineConfig;
  readonly openStore: (config: PostlineConfig) => Promise<QueueStore>;
  /** Where output goes (default process.stdout). */
  readonly stdout?: NodeJS.WritableStream;
  /** Control socket deadline in ms (default 10000). */
  readonly timeoutMs?: number;
  /** The destination states table with no server running (default: queue.db's, never created). */
  readonly openDestinationStates?: (config: PostlineConfig) => DestinationStateStore;
}

/** Requests that read or write the destination states table. */
const STATE_OPS: ReadonlySet<ControlRequest['op']> = new Set(['destinations', 'suspend', 'resume']);

/** An operator error from a queue command (unknown ID, bad ID, refused operation). */
export class QueueCommandError extends Error {
  constructor(message: string, readonly code?: string) {
    super(message);
    this.name = 'QueueCommandError';
  }
}

/** Validates a queue ID argument (upper-cased first). @throws QueueCommandError */
function queueIdArg(id: string): string {
  const up = id.trim().toUpperCase();
  if (!isQueueId(up)) throw new QueueCommandError(`bad queue ID "${id}": expected 18 characters 0-9 A-Z`);
  return up;
}

/**
 * Runs one request: over the control socket when a server answers, else on the store directly.
 * @returns the JSON result. @throws QueueCommandError for {ok:false}, ConfigError from loadConfig, control errors (timeout).
 */
export async function runQueueRequest(deps: QueueCommandDeps, configFile: string | undefined, req: ControlRequest, timeoutMs?: number): Promise<unknown> {
  const config = deps.loadConfig(configFile);
  const socketPath = join(config.dataDir, 'control.sock');
  try {
    const res = await controlRequest(socketPath, req, deps.timeoutMs ?? timeoutMs ?? 10_000);
    if (!res.ok) throw new QueueCommandError(idPrefix(req) + res.error, res.code);
    return res.result;
  } catch (err) {
    if (!isNoServer(err)) throw err;
  }
  const store = await deps.openStore(config);
  let states: DestinationStateStore | undefined;
  try {
    if (STATE_OPS.has(req.op)) states = (deps.openDestinationStates ?? ((c) => SqliteDestinationStateStore.open(c.dataDir, false)))(config);
    const res = await executeRequest(new StoreQueueAdmin(store, systemClock, states), req);
    if (!res.ok) throw new QueueCommandError(idPrefix(req) + res.error, res.code);
    const result = JSON.parse(JSON.stringify(res.result ?? null)) as unknown;
    // Tell the caller nothing was delivered now: the store was changed with no server running.
    const offline = req.op === 'flush' || req.op === 'bounce' || req.op === 'suspend' || req.op === 'resume';
    return offline && result && typeof result === 'object' && !Array.isArray(result) ? { ...result, offline: true } : result;
  } finally {
    await states?.close();
    await store.close();
  }
}

const idPrefix = (req: ControlRequest): string => (req.id ? `${req.id}: ` : '');

/** A bulk flush writes about 100,000 messages a second: a large queue needs more than the usual 10 s. */
const FLUSH_TIMEOUT_MS = 600_000;

const pad = (n: number): string => String(n).padStart(2, '0');

/** "Tue Nov 14 22:13:20" in local time, like mailq. */
export function mailqTime(ms: number): string {
  const d = new Date(ms);
  const [dow, mon] = d.toDateString().split(' ');
  return `${dow} ${mon} ${String(d.getDate()).padStart(2, ' ')} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** mailq-like listing: ID (with '!' when held), size, arrival, sender, then last error and pending recipients. */
export function formatQueueList(rows: readonly QueueSummary[]): string {
  if (rows.length === 0) return 'Mail queue is empty\n';
  const out: string[] = ['-Queue ID-          --Size-- ----Arrival Time---- -Sender/Recipient-------'];
  const indent = ' '.repeat(51);
  let bytes = 0;
  for (const r of rows) {
    bytes += r.size;
    out.push(`${(r.id + (r.held ? '!' : '')).padEnd(19)} ${String(r.size).padStart(8)} ${mailqTime(r.arrivedAt)}  ${r.mailFrom || 'MAILER-DAEMON'}`);
    if (r.lastError) out.push(`${indent}(${r.lastError})`);
    for (const p of r.pending) out.push(`${indent}${p}`);
    out.push('');
  }
  out.push(`-- ${Math.ceil(bytes / 1024)} Kbytes in ${rows.length} Request${rows.length === 1 ? '' : 's'}.`);
  return out.join('\n') + '\n';
}

const iso = (ms: number | undefined): string => (ms === undefined ? '-' : new Date(ms).toISOString());

/** `queue show` text: envelope, recipients with status, then the headers (or the whole message). */
export function formatMessageDetail(d: MessageDetail, withBody: boolean): string {
  const m = d.message;
  const o = m.origin;
  const lines = [
    `Queue ID:      ${m.id}${m.held ? ' (held)' : ''}`,
    `Sender:        <${m.mailFrom}>`,
    `Size:          ${m.size} bytes`,
    `Arrival:       ${iso(m.arrivedAt)}`,
    `Body:          ${m.bodyType}${m.smtputf8 ? ', SMTPUTF8' : ''}${m.ret ? `, RET=${m.ret}` : ''}${m.envid ? `, ENVID=${m.envid}` : ''}`,
    `Origin:        ${o.kind}${o.clientName ? ` from ${o.clientName}` : ''}${o.clientAddress ? ` [${o.clientAddress}]` : ''}${o.authUser ? ` user=${o.authUser}` : ''}${o.localUser ? ` user=${o.localUser}${o.localUid !== undefined ? ` uid=${o.localUid}` : ' (claimed)'}` : ''}`,
    `Attempts:      ${m.attempts}, next attempt ${iso(m.nextAttemptAt)}`,
  ];
  if (m.lastError) lines.push(`Last error:    ${m.lastError}`);
  lines.push('Recipients:');
  for (const r of m.recipients) {
    const extra = [r.notify ? `NOTIFY=${r.notify.join(',')}` : '', r.dsnStatus ?? '', r.remoteMta ? `via ${r.remoteMta}` : '', r.doneAt ? `at ${iso(r.doneAt)}` : ''].filter(Boolean).join(' ');
    lines.push(`  <${r.address}> ${r.status}${extra ? ' ' + extra : ''}${r.lastReply ? ` (${r.lastReply})` : ''}`);
  }
  if (d.bodyError) lines.push(`Body unreadable: ${d.bodyError}`);
  let text = lines.join('\n') + '\n';
  if (withBody && d.bodyBase64 !== undefined) text += '\nMessage:\n' + Buffer.from(d.bodyBase64, 'base64').toString('utf8');
  else if (d.headers) text += '\nHeaders:\n' + d.headers;
  return text;
}

interface Opts { config?: string; json?: boolean; body?: boolean }

/**
 * Adds `postline queue ...` to `program`. Each subcommand takes `-c, --config FILE`.
 * Failures throw (QueueCommandError, ConfigError, control socket errors) for the caller to print.
 */
export function registerQueueCommands(program: Command, deps: QueueCommandDeps): void {
  const write = (s: string): void => { (deps.stdout ?? process.stdout).write(s); };
  const run = (o: Opts, req: ControlRequest, timeoutMs?: number): Promise<unknown> => runQueueRequest(deps, o.config, req, timeoutMs);
  const queue = program.command('queue').description('inspect and manage the mail queue');
  queue.command('list').description('list queued messages (like mailq)')
    .option('-c, --config <file>', 'configuration file').option('--json', 'JSON output')
    .action(async (o: Opts) => {
      const rows = (await run(o, { op: 'list' })) as QueueSummary[];
      write(o.json ? JSON.stringify(rows, null, 2) + '\n' : formatQueueList(rows));
    });
  queue.command('show <id>').description('show one message: envelope, recipients, headers')
    .option('-c, --config <file>', 'configuration file').option('--body', 'print the whole message').option('--json', 'JSON output')
    .action(async (id: string, o: Opts) => {
      const d = (await run(o, { op: 'show', id: queueIdArg(id), body: o.body === true })) as MessageDetail;
      write(o.json ? JSON.stringify(d, null, 2) + '\n' : formatMessageDetail(d, o.body === true));
    });
  queue.command('flush [id]').description('try deferred mail now (all, one message, or those for one domain with --domain)')
    .option('-c, --config <file>', 'configuration file').option('--domain <domain>', 'only messages with a pending recipient in this domain')
    .action(async (id: string | undefined, o: Opts & { domain?: string }) => {
      if (id !== undefined && o.domain !== undefined) throw new QueueCommandError('give a queue ID or --domain, not both', 'ERR_USAGE');
      const req: ControlRequest = id !== undefined ? { op: 'flush', id: queueIdArg(id) } : o.domain !== undefined ? { op: 'flush', domain: o.domain } : { op: 'flush' };
      const r = (await run(o, req, FLUSH_TIMEOUT_MS)) as { flushed: number; offline?: boolean };
      write(`flushed ${r.flushed} message${r.flushed === 1 ? '' : 's'}${r.offline ? ' (no server is running: they will be tried when `postline serve` starts)' : ''}\n`);
    });
  queue.command('vacuum').description("give queue.db's free space back to the filesystem (run with the server stopped)")
    .option('-c, --config <file>', 'configuration file')
    .action(async (o: Opts) => {
      const store = await deps.openStore(deps.loadConfig(o.config));
      try {
        if (!store.vacuum) throw new QueueCommandError('this queue store cannot be vacuumed');
        const r = await store.vacuum();
        write(`queue.db: ${r.before} bytes before, ${r.after} after\n`);
      } finally {
        await store.close();
      }
    });
  registerDestinationCommands(queue, { write, run: (o, req, timeoutMs) => run(o, req, timeoutMs) });
  for (const [op, done, what] of [['delete', 'deleted', 'delete a message (no bounce is sent)'], ['hold', 'held', 'hold a message (no delivery until released)'], ['release', 'released', 'release a held message']] as const) {
    queue.command(`${op} <id>`).description(what).option('-c, --config <file>', 'configuration file')
      .action(async (id: string, o: Opts) => {
        const qid = queueIdArg(id);
        await run(o, { op, id: qid });
        write(`${qid}: ${done}\n`);
      });
  }
}
