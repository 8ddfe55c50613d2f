/**
 * A budget of bytes shared by concurrent work (the http transport's messages being parsed and
 * sent): `acquire(n)` waits until `n` more bytes fit under the limit, first come first served, and
 * gives a release function. One request alone always goes, even one bigger than the limit, so
 * nothing waits forever; the limit is read at each acquire (live reload).
 */

/** A pending acquire. */
interface Waiter {
  readonly n: number;
  readonly resolve: (release: () => void) => void;
  readonly reject: (err: Error) => void;
}

export class ByteBudget {
  private used = 0;
  private holders = 0;
  private readonly waiting: Waiter[] = [];

  /** @param limit the bytes held at once at most (read at each acquire and release). */
  constructor(private readonly limit: () => number) {}

  /** Bytes held now. */
  get inUse(): number {
    return this.used;
  }

  /** Acquires waiting now. */
  get queued(): number {
    return this.waiting.length;
  }

  /**
   * Waits for `n` bytes (n >= 0). @returns the release function (idempotent).
   * @throws the signal's reason (an AbortError) when `signal` aborts while waiting.
   */
  acquire(n: number, signal?: AbortSignal): Promise<() => void> {
    if (signal?.aborted) return Promise.reject(abortError());
    if (this.waiting.length === 0 && this.fits(n)) return Promise.resolve(this.take(n));
    return new Promise((resolve, reject) => {
      const w: Waiter = {
        n,
        resolve: (rel) => { signal?.removeEventListener('abort', onAbort); resolve(rel); },
        reject,
      };
      const onAbort = (): void => {
        const i = this.waiting.indexOf(w);
        if (i >= 0) this.waiting.splice(i, 1);
        reject(abortError());
        this.pump();
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(w);
    });
  }

  private fits(n: number): boolean {
    return this.holders === 0 || this.used + n <= this.limit();
  }

  private take(n: number): () => void {
    this.used += n;
    this.holders++;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.used -= n;
      this.holders--;
      this.pump();
    };
  }

  /** Lets waiters go, in order, while they fit. */
  private pump(): void {
    while (this.waiting.length > 0 && this.fits(this.waiting[0]!.n)) {
      const w = this.waiting.shift()!;
      w.resolve(this.take(w.n));
    }
  }
}

function abortError(): Error {
  return Object.assign(new Error('aborted while waiting for the inbound parse memory budget'), { name: 'AbortError', code: 'ABORT_ERR' });
}
