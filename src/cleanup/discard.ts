/**
 * The message of a transaction whose every recipient was dropped (suppressed, `suppression.mode:
 * drop`): the client sends the data and gets 250 as for any message, but nothing is stored; at
 * the end only the recipient.dropped events are written (with the queue ID the reply names).
 * The size limit still applies (552 5.3.4), so a client learns the same as for stored mail.
 */
import { PostlineError } from '../core/errors.js';
import { R } from '../core/reply.js';
import type { IncomingMessage } from '../core/session.js';

export class DiscardedMessage implements IncomingMessage {
  private bytes = 0;

  /**
   * @param maxSize limits.maxMessageSize, bytes
   * @param done writes the events of the dropped recipients; its failure fails the message (451).
   */
  constructor(readonly queueId: string, private readonly maxSize: number, private readonly done: () => Promise<void>) {}

  write(chunk: Buffer): boolean {
    this.bytes += chunk.length;
    return true;
  }

  drain(): Promise<void> {
    return Promise.resolve();
  }

  /** @throws PostlineError 552 5.3.4 over the size limit; the events' write error otherwise. */
  async finish(): Promise<string> {
    if (this.bytes > this.maxSize) throw new PostlineError('ERR_SIZE', 'message over the size limit', { temporary: false, reply: R.sizeExceeded });
    await this.done();
    return this.queueId;
  }

  async abort(): Promise<void> { /* nothing was kept */ }
}
