/**
 * Waiting on writable streams and sockets: the one drain loop shared by smtpd, cleanup and delivery.
 */

/** How a wait ended. */
export type WaitEnd = 'drain' | 'closed' | 'timeout';

/**
 * Resolves when `s` emits 'drain', or closes or fails (then 'closed'), or after `timeoutMs` (ms;
 * absent: no limit). Never rejects: the stream's own error surfaces where it is written.
 */
export function waitForDrain(s: NodeJS.EventEmitter, timeoutMs?: number): Promise<WaitEnd> {
  return new Promise((resolve) => {
    const finish = (how: WaitEnd): void => {
      if (timer) clearTimeout(timer);
      s.off('drain', onDrain);
      s.off('close', onClose);
      s.off('error', onClose);
      resolve(how);
    };
    const onDrain = (): void => finish('drain');
    const onClose = (): void => finish('closed');
    const timer = timeoutMs === undefined ? undefined : setTimeout(() => finish('timeout'), timeoutMs);
    s.on('drain', onDrain);
    s.on('close', onClose);
    s.on('error', onClose);
  });
}

/** Resolves after `ms`, or earlier when `s` closes. */
export function waitOrClose(s: NodeJS.EventEmitter, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(t);
      s.off('close', done);
      resolve();
    };
    const t = setTimeout(done, ms);
    s.once('close', done);
  });
}
