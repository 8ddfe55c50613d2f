/**
 * `mailq` / `sendmail -bp` and `sendmail -q` (-qR DOMAIN, -qI ID): the queue listing and flush of
 * `postline queue list|flush` (queue.ts), through the control socket of the running server, or
 * on the store when none runs. The control socket is 0600: only root and the server's user get
 * there (EX_NOPERM for others, with the reason).
 */
import type { Writable } from 'node:stream';
import type { PostlineConfig } from '../config/schema.js';
import { NoDataDirError } from '../core/errors.js';
import { isQueueId } from '../core/queue-id.js';
import { ControlUnavailableError } from '../control/client.js';
import type { ControlRequest } from '../control/protocol.js';
import { openStore } from '../spool/open.js';
import type { QueueSummary } from '../spool/types.js';
import { formatQueueList, QueueCommandError, runQueueRequest } from './queue.js';
import type { SendmailArgs } from './sendmail-args.js';
import { EX, SendmailExit } from './sysexits.js';

/**
 * Runs -bp or -q. @returns EX_OK.
 * @throws SendmailExit: EX_NOPERM (control socket or queue not readable), EX_TEMPFAIL (no answer in
 *         time), EX_UNAVAILABLE (no queue where the configuration points), EX_USAGE (bad -qI ID).
 */
export async function runQueueMode(a: SendmailArgs, config: PostlineConfig, stdout: Writable, say: (line: string) => void): Promise<number> {
  const deps = { loadConfig: () => config, openStore: (c: PostlineConfig) => openStore(c, undefined, { create: false }) };
  let req: ControlRequest;
  if (a.mode === 'list') req = { op: 'list' };
  else if (a.flushId !== undefined) {
    const id = a.flushId.toUpperCase();
    if (!isQueueId(id)) throw new SendmailExit(EX.USAGE, `-qI ${a.flushId}: not a queue ID`);
    req = { op: 'flush', id };
  } else req = a.flushDomain !== undefined ? { op: 'flush', domain: a.flushDomain } : { op: 'flush' };
  try {
    const result = await runQueueRequest(deps, undefined, req, a.mode === 'flush' ? 600_000 : 10_000);
    if (a.mode === 'list') stdout.write(formatQueueList(result as QueueSummary[]));
    else if (a.verbose) {
      const r = result as { flushed: number; offline?: boolean };
      say(`flushed ${r.flushed} message${r.flushed === 1 ? '' : 's'}${r.offline ? ' (no server is running: they are tried when it starts)' : ''}`);
    }
    return EX.OK;
  } catch (err) {
    throw queueFailure(err);
  }
}

/** The exit for a failed queue request. */
function queueFailure(err: unknown): SendmailExit {
  if (err instanceof SendmailExit) return err;
  const code = (err as NodeJS.ErrnoException).code;
  const text = (err as Error).message;
  if (err instanceof ControlUnavailableError && (code === 'EACCES' || code === 'EPERM')) {
    return new SendmailExit(EX.NOPERM, `${text}: the queue is shown and flushed for root and the server's user only`, { cause: err });
  }
  if (err instanceof ControlUnavailableError && code === 'ETIMEDOUT') return new SendmailExit(EX.TEMPFAIL, text, { cause: err });
  if (err instanceof NoDataDirError) return new SendmailExit(EX.UNAVAILABLE, `${text} (no queue: has \`postline serve\` run with this configuration?)`, { cause: err });
  if (code === 'EACCES' || code === 'EPERM' || /EACCES|permission denied|readonly|unable to open/i.test(text)) {
    return new SendmailExit(EX.NOPERM, `cannot open the queue: ${text}`, { cause: err });
  }
  if (err instanceof QueueCommandError) return new SendmailExit(EX.UNAVAILABLE, text, { cause: err });
  return new SendmailExit(EX.SOFTWARE, text, { cause: err });
}
