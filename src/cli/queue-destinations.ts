/**
 * `postline queue destinations|suspend|resume|bounce`: the operator's commands on destinations
 * (traffic shaping, src/scheduler/shaping.ts) and the bulk bounce. Registered by queue.ts, through
 * the same request runner (control socket, else the store and the destination states table).
 */
import { UsageError } from '../core/errors.js';
import type { Command } from 'commander';
import type { ControlRequest } from '../control/protocol.js';
import type { DestinationStatus } from '../scheduler/admin.js';

/** What queue.ts hands over: output, and the request runner (control socket, else offline). */
export interface DestinationCommandDeps {
  readonly write: (s: string) => void;
  readonly run: (o: { config?: string }, req: ControlRequest, timeoutMs?: number) => Promise<unknown>;
}

/** A bulk bounce writes one commit per message: a large queue needs more than the usual 10 s. */
const BOUNCE_TIMEOUT_MS = 600_000;

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * A duration: a number with a unit ms, s, m, h or d ("90s", "30m", "2h"); a bare number is seconds
 * (as in Postfix's time values). @returns ms. @throws Error for anything else or below 1 ms.
 */
export function parseDuration(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/i.exec(text);
  const ms = m ? Math.round(Number(m[1]) * UNITS[(m[2] ?? 's').toLowerCase()]!) : NaN;
  if (!(ms >= 1)) throw new UsageError(`bad duration "${text}": expected a number with s, m, h or d (e.g. 30m)`);
  return ms;
}

const iso = (ms: number | undefined): string => (ms === undefined ? 'until resumed' : new Date(ms).toISOString());

/** The `queue destinations` table: destination, state, until, source, reason (and the throttle factor). */
export function formatDestinations(rows: readonly DestinationStatus[]): string {
  if (rows.length === 0) return 'No destination is dead, suspended or throttled\n';
  const w = Math.max(12, ...rows.map((r) => r.destination.length));
  const out = [`${'-Destination-'.padEnd(w)} -State-    ${'-Until-'.padEnd(24)} -Source-    -Reason-`];
  for (const r of rows) {
    const state = r.state === 'throttled' && r.factor !== undefined ? `throttled x${Number(r.factor.toFixed(3))}` : r.state;
    out.push(`${r.destination.padEnd(w)} ${state.padEnd(10)} ${iso(r.until).padEnd(24)} ${r.source.padEnd(11)} ${r.reason}`);
  }
  return out.join('\n') + '\n';
}

/** Adds the commands to the `queue` command. Failures throw for the caller to print. */
export function registerDestinationCommands(queue: Command, deps: DestinationCommandDeps): void {
  const { write, run } = deps;
  const offlineNote = (r: { offline?: boolean }, what: string): string => (r.offline ? ` (no server is running: ${what})` : '');
  queue.command('destinations').description('dead, suspended and throttled destinations, with until when and why')
    .option('-c, --config <file>', 'configuration file').option('--json', 'JSON output')
    .action(async (o: { config?: string; json?: boolean }) => {
      const rows = (await run(o, { op: 'destinations' })) as DestinationStatus[];
      write(o.json ? JSON.stringify(rows, null, 2) + '\n' : formatDestinations(rows));
    });
  queue.command('suspend <destination>').description('hold back all mail for a destination (domain, .domain, [host]:port or next-hop key) without attempts; kept across restarts')
    .option('-c, --config <file>', 'configuration file').option('--for <duration>', 'resume by itself after this long (e.g. 30m, 2h)')
    .action(async (destination: string, o: { config?: string; for?: string }) => {
      const req: ControlRequest = { op: 'suspend', destination, ...(o.for !== undefined ? { forMs: parseDuration(o.for) } : {}) };
      const r = (await run(o, req)) as DestinationStatus & { offline?: boolean };
      write(`${r.destination}: suspended ${r.until === undefined ? 'until resumed' : `until ${iso(r.until)}`}${offlineNote(r, 'it applies when `postline serve` starts')}\n`);
    });
  queue.command('resume <destination>').description('end the suspension or throttle of a destination; its waiting mail is tried now')
    .option('-c, --config <file>', 'configuration file')
    .action(async (destination: string, o: { config?: string }) => {
      const rows = (await run(o, { op: 'resume', destination })) as DestinationStatus[];
      for (const r of rows) write(`${r.destination}: ${r.state === 'suspended' ? 'suspension' : 'throttle'} ended (${r.reason})\n`);
    });
  queue.command('bounce').description('bounce all queued mail for a domain or from a sender, with a DSN ("message bounced by the administrator")')
    .option('-c, --config <file>', 'configuration file').option('--domain <domain>', 'the pending recipients in this domain')
    .option('--sender <address>', 'every message with this envelope sender (exact, as `queue list` shows it; "" for bounces)')
    .action(async (o: { config?: string; domain?: string; sender?: string }) => {
      if (o.domain === undefined && o.sender === undefined) throw new UsageError('give --domain DOMAIN or --sender ADDRESS');
      const req: ControlRequest = { op: 'bounce', ...(o.domain !== undefined ? { domain: o.domain } : {}), ...(o.sender !== undefined ? { sender: o.sender } : {}) };
      const r = (await run(o, req, BOUNCE_TIMEOUT_MS)) as { bounced: number; offline?: boolean };
      write(`bounced ${r.bounced} message${r.bounced === 1 ? '' : 's'}${offlineNote(r, 'the DSNs are sent when `postline serve` starts')}\n`);
    });
}
