/**
 * The stored form of a message when cleanup transforms it on the way to the store: the 'rewrite'
 * stage's HTML rewrite (body-rewrite.ts), then the 7-bit conversion a signer asked for
 * (delivery/mime-downgrade.ts), composed into one stream piped into the body writer. Its output is
 * what is stored, so the chain's views are fed from it: the header section once it is complete (for
 * `end()`), then every body byte after the empty line (for `body()`). Streamed, memory flat.
 */
import * as nodeStream from 'node:stream';
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
  /** Where cleanup writes the stored bytes. */
  readonly stream: Duplex;
  /** True when the 7-bit conversion is one of the parts. */
  readonly converting: boolean;

  /** @param parts at least one of rewrite, downgrade. */
  constructor(parts: TransformParts, store: Writable, sinks: TransformSinks) {
    const list = [parts.rewrite, parts.downgrade].filter((d): d is Duplex => d !== undefined);
    // stream.compose exists in Node 20 (experimental) but is missing from @types/node 20.
    const compose = (nodeStream as unknown as { compose(...s: Duplex[]): Duplex }).compose;
    this.stream = list.length === 1 ? list[0]! : compose(...list);
    this.converting = parts.downgrade !== undefined;
    let head: Buffer | undefined = Buffer.alloc(0);
    this.stream.on('data', (chunk: Buffer) => {
      if (!head) return sinks.body(chunk);
      head = Buffer.concat([head, chunk]);
      const i = head.indexOf(CRLFCRLF);
      if (i < 0) return;
      sinks.header(head.subarray(0, i + 2));
      const rest = head.subarray(i + 4);
      head = undefined;
      if (rest.length) sinks.body(rest);
    });
    let failed = false;
    this.stream.on('error', (err: Error) => {
      if (failed) return;
      failed = true;
      sinks.error(err);
    });
    this.stream.pipe(store, { end: false });
    // A store stream that fails stops the transform too, so nobody waits for its drain forever.
    store.once('close', () => this.stream.destroy());
  }

  /** Ends the input; resolves once the last output byte was handed to the store (or the stream failed or closed). */
  async end(): Promise<void> {
    const d = this.stream;
    await new Promise<void>((resolve) => {
      const done = (): void => { d.off('end', done); d.off('error', done); d.off('close', done); resolve(); };
      d.on('end', done);
      d.on('error', done);
      d.on('close', done);
      d.end();
    });
  }

  /** Stops it (the message was abandoned or failed). */
  destroy(): void {
    this.stream.destroy();
  }
}
