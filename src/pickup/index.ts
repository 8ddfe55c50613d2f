/**
 * The sendmail command's two doors into the running server (src/pickup/): the submit socket
 * (`dataDir/submit.sock`, submit-server.ts) and the maildrop pickup (`dataDir/maildrop/`,
 * maildrop.ts), started together from the `sendmail` configuration section.
 */
import { join } from 'node:path';
import type { PostlineConfig } from '../config/schema.js';
import { ConfigError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { MessageOrigin, Rejection, StreamSubmissionSink } from '../core/session.js';
import { LocalUsers } from './local-users.js';
import { MaildropPickup } from './maildrop.js';
import { SubmitServer } from './submit-server.js';

export { MaildropPickup } from './maildrop.js';
export { SubmitServer } from './submit-server.js';

export interface LocalSubmission {
  readonly submit: SubmitServer;
  readonly pickup: MaildropPickup;
  /** Stops both (messages being received get `graceMs`). Never rejects. */
  stop(graceMs?: number): Promise<void>;
}

/**
 * Starts the submit socket and the maildrop pickup when `sendmail.enabled` (else undefined).
 * @throws ConfigError for a `sendmail.group` that /etc/group does not name; Error when the socket
 *         is in use or the directory modes cannot be set (whatever started is stopped again).
 */
export async function startLocalSubmission(deps: {
  readonly config: PostlineConfig;
  readonly sink: StreamSubmissionSink;
  readonly logger: Logger;
  readonly rejected: (origin: MessageOrigin, r: Omit<Rejection, 'stage'>) => void;
  readonly users?: LocalUsers;
}): Promise<LocalSubmission | undefined> {
  const { config, logger } = deps;
  const s = config.sendmail;
  if (!s.enabled) return undefined;
  const users = deps.users ?? new LocalUsers();
  const gid = s.group !== undefined ? users.groupId(s.group) : undefined;
  if (s.group !== undefined && gid === undefined) throw new ConfigError(`sendmail.group: no group "${s.group}" in /etc/group`, 'sendmail.group');
  const limits = (): { maxMessageSize: number; maxRecipients: number } => ({ maxMessageSize: config.limits.maxMessageSize, maxRecipients: config.limits.maxRecipients });
  const submit = new SubmitServer({
    socketPath: join(config.dataDir, 'submit.sock'), sink: deps.sink, limits, maxConnections: s.maxConnections,
    idleTimeoutMs: s.idleTimeoutMs, logger, rejected: deps.rejected, ...(gid !== undefined ? { gid } : {}),
  });
  const pickup = new MaildropPickup({
    dir: join(config.dataDir, 'maildrop'), sink: deps.sink, limits, users, scanIntervalMs: s.scanIntervalMs,
    concurrency: s.pickupConcurrency, logger, rejected: deps.rejected, ...(gid !== undefined ? { gid } : {}),
  });
  try {
    await submit.start();
    await pickup.start();
  } catch (err) {
    await submit.stop(0);
    await pickup.stop();
    throw err;
  }
  return {
    submit, pickup,
    stop: async (graceMs = 2000) => {
      await Promise.allSettled([submit.stop(graceMs), pickup.stop()]);
    },
  };
}
