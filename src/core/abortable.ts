/**
 * Waiting for a promise that an AbortSignal may cut short (shutdown of a stuck connect).
 */

/**
 * Resolves with `p`'s value, or rejects with `reason()` as soon as `signal` aborts; a value that
 * arrives after the abort is handed to `discard` (e.g. a socket to destroy). @throws (rejects) what `p` rejects with.
 */
export function untilAborted<T>(p: Promise<T>, signal: AbortSignal, reason: () => Error, discard: (late: T) => void): Promise<T> {
  if (signal.aborted) {
    void p.then(discard, () => undefined);
    return Promise.reject(reason());
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => {
      reject(reason());
      void p.then(discard, () => undefined);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
