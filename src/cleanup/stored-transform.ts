/**
 * The stored form of a message when cleanup transforms it on the way to the store: the 'rewrite'
 * stage's HTML rewrite (body-rewrite.ts), then the 7-bit conversion a signer asked for
 * (delivery/mime-downgrade.ts), composed into one stream piped into the body writer. Its output is
 * what is stored, so the chain's views are fed from it: the header section once it is complete (for
 * `end()`), then every body byte after the empty line (for `body()`). Streamed, memory flat.
 */
import type { Duplex, Writable } from 'node:stream';

const CRLFCRLF = Buffer.from('\r\n\r\n');

/** What the stored bytes pass through, in this order. */
export interface TransformParts {
  /** The HTML rewrite (createBodyRewrite). */
  readonly rewrite?: Duplex;
  /** The 7-bit conversion (createMimeDowngrade). */
  readonly downgrade?: Duplex;
}

/** Callbacks of one StoredTransform. */
export interface TransformSinks {
  /** The stored header section (CRLF lines, without the empty line), once. */
  readonly header: (h: Buffer) => void;
  /** Stored body bytes after the empty line, in order. */
  readonly body: (b: Buffer) => void;
  /** A part failed (once); the stream is unusable. */
  readonly error: (err: Error) => void;
}

/** One message's stored bytes through its transforms into `store`. */
export class StoredTransform {
  /** Where cleanup writes the stored bytes (the first part). */
  readonly stream: Duplex;
  /** True when the 7-bit conversion is one of the parts. */
  readonly converting: boolean;
  private readonly parts: Duplex[];
  private readonly exit: Duplex;
  private failed: Error | undefined;
  private readonly failures = new Set<() => void>();

  /** @param parts at least one of rewrite, downgrade. */
  constructor(parts: TransformParts, store: Writable, sinks: TransformSinks) {
    // Piped, not stream.compose'd: a composed pair of composed streams (the rewrite and the
    // conversion are each one) did not pass on the second one's error in Node 20.
    this.parts = [parts.rewrite, parts.downgrade].filter((d): d is Duplex => d !== undefined);
    for (let i = 0; i + 1 < this.parts.length; i++) this.parts[i]!.pipe(this.parts[i + 1]!);
    this.stream = this.parts[0]!;
    this.exit = this.parts[this.parts.length - 1]!;
    this.converting = parts.downgrade !== undefined;
    let head: Buffer | undefined = Buffer.alloc(0);
    this.exit.on('data', (chunk: Buffer) => {
      if (!head) return sinks.body(chunk);
      head = Buffer.concat([head, chunk]);
      const i = head.indexOf(CRLFCRLF);
      if (i < 0) return;
      sinks.header(head.subarray(0, i + 2));
      const rest = head.subarray(i + 4);
      head = undefined;
      if (rest.length) sinks.body(rest);
    });
    for (const p of this.parts) {
      p.on('error', (err: Error) => {
        if (this.failed) return;
        this.failed = err;
        for (const q of this.parts) if (q !== p) q.destroy();
        sinks.error(err);
        for (const f of this.failures) f();
      });
    }
    this.exit.pipe(store, { end: false });
    // A store stream that fails stops the transform too, so nobody waits for its drain forever.
    store.once('close', () => this.destroy());
  }

  /** Ends the input; resolves once the last output byte was handed to the store (or a part failed or closed). */
  async end(): Promise<void> {
    if (this.failed) return;
    const d = this.exit;
    await new Promise<void>((resolve) => {
      const done = (): void => { d.off('end', done); d.off('close', done); this.failures.delete(done); resolve(); };
      d.on('end', done);
      d.on('close', done);
      this.failures.add(done);
      this.stream.end();
    });
  }

  /** Stops it (the message was abandoned or failed). */
  destroy(): void {
    for (const p of this.parts) p.destroy();
  }
}
