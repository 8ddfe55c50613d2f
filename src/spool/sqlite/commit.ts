/**
 * The acceptance commit of the SQLite store (QueueStore.commit): the body finished, then either
 * inline in the row's transaction (no file, no directory fsync) or renamed into its bucket and
 * the row committed after the directory's fsync (the writer does that fsync); the body writer is
 * aborted on any failure, so nothing half-made stays.
 */
import { rename } from 'node:fs/promises';
import { StoreError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import type { EventRecord } from '../../events/record.js';
import type { BodyWriter, NewMessage, QueuedMessage } from '../types.js';
import type { BodyCache } from './body-cache.js';
import { SpoolBodyWriter } from './body-writer.js';
import type { SpoolLayout } from './layout.js';
import { prependOf } from './listing.js';
import { newMessageRow, newRecipientRows, toMessage } from './rows.js';
import { toStoreError } from './store-errors.js';
import type { WriteOutcome } from './writer-client.js';
import type { WriteOp } from './writer-protocol.js';

export interface CommitDeps {
  readonly layout: SpoolLayout;
  readonly cache: BodyCache;
  readonly logger: Logger;
  /** The store's write with events (one savepoint in the next group commit). */
  readonly write: (op: WriteOp, events?: readonly EventRecord[]) => Promise<WriteOutcome>;
}

/**
 * Commits `msg` with its body. @returns the queued message.
 * @throws StoreError (full or not) when it could not commit; then nothing is kept.
 */
export async function commitMessage(d: CommitDeps, msg: NewMessage, body: BodyWriter, events: readonly EventRecord[] | undefined): Promise<QueuedMessage> {
  if (!(body instanceof SpoolBodyWriter) || body.id !== msg.id || !body.isOpen()) {
    throw new StoreError(`commit of ${msg.id}: body writer does not belong to this message`);
  }
  try {
    if (!msg.recipients.length) throw new StoreError(`commit of ${msg.id}: no recipients`);
    await body.finish();
    const message = newMessageRow(msg, body.size());
    const recipients = newRecipientRows(msg);
    const inline = body.inlineBody();
    if (inline) {
      await d.write({ kind: 'insert', message, recipients, body: inline, dir: null }, events);
      const head = prependOf(msg.prepend);
      d.cache.set(msg.id, head ? [head, inline] : [inline]);
    } else {
      const finalPath = d.layout.bodyPath(msg.id);
      await rename(body.currentPath(), finalPath);
      body.placed(finalPath);
      await d.write({ kind: 'insert', message, recipients, body: null, dir: d.layout.bucketDir(msg.id) }, events);
    }
    body.committed();
    return toMessage(message, recipients);
  } catch (err) {
    await body.abort();
    const e = toStoreError(err, `cannot commit ${msg.id}`);
    d.logger.error({ queueId: msg.id, err: (err as Error)?.message, code: e.code }, 'queue commit failed');
    throw e;
  }
}
