/**
 * One message flowing through cleanup into the queue (the IncomingMessage of src/core/session.ts).
 *
 * Owns the byte rules: only the header section is buffered (at most HEADER_LIMIT bytes; a longer
 * header section is refused with 552 5.3.4, so no field can slip past the checks below; past that
 * the rest counts as body so memory stays bounded), our Received field goes first, Date and
 * Message-ID are added only for authenticated submission (RFC 6409 8.2, 8.3) and only when an empty
 * line ends the header section; every other byte goes to the store exactly as received.
 * Also the hop limit (RFC 5321 6.3, 554 5.4.6) and the message size limit (552 5.3.4).
 *
 * The modifier chain (modifiers.ts) runs here: its removals and header-time fields when the header
 * section is written, a view of every stored body byte, and its end-time fields (handed to the
 * commit as `prepend`). When a 'rewrite' modifier hands an HTML rewrite, the stored bytes go
 * through it (body-rewrite.ts); when a modifier asks for a 7-bit stored form and the message is
 * not 7BIT, they go through the MIME downgrade (delivery/mime-downgrade.ts, the same transform
 * delivery would apply); both before the store and the views (stored-transform.ts): so a signed
 * body is what every hop gets.
 */
import { isAscii } from 'node:buffer';
import { PostlineError, toPostlineError } from '../core/errors.js';
import { R, reply } from '../core/reply.js';
import { createMimeDowngrade } from '../delivery/mime-downgrade.js';
import { createBodyRewrite, type HtmlRewrite } from './body-rewrite.js';
import { StoredTransform } from './stored-transform.js';
import type { IncomingMessage, MessageMeta } from '../core/session.js';
import type { BodyWriter } from '../spool/types.js';
import { formatDate, makeMessageId } from '../rfc5322/format.js';
import {
  findHeaderEnd, getHeaderFields, isWellFormedHeader, parseHeaderFields, withoutFieldsWhere, type HeaderBounds,
} from '../rfc5322/header.js';
import { isPostlineField, metaFromHeaders } from './meta.js';
import { ModifierChain } from './modifiers.js';

/** Largest header section buffered, bytes; a longer one is passed through as body. */
export const HEADER_LIMIT = 1024 * 1024;

/**
 * While a message is converted to 7-bit, its original bytes are kept up to this many, bytes: when
 * the conversion fails (8-bit data in a MIME part header, a preamble, a message/* or base64 part),
 * a message of at most this size is stored as it came (8-bit, modifiers run again on it); a larger
 * one is refused with 554 5.6.3.
 */
export const SEVEN_BIT_HOLD = 4 * 1024 * 1024;

const CRLFCRLF = Buffer.from('\r\n\r\n');
/** A header line whose name begins with X-Postline- (case-insensitive). */
const POSTLINE_LINE = /(?:^|\n)x-postline-/i;

import type { IncomingPlan } from './incoming-plan.js';

export type { CommitFacts, IncomingPlan } from './incoming-plan.js';

type State = 'open' | 'finishing' | 'done' | 'aborted';

/** Streams one message into a BodyWriter applying the rules above. */
export class CleanupMessage implements IncomingMessage {
  private head = Buffer.alloc(16 * 1024);
  private headLen = 0;
  private headerDone = false;
  private clientBytes = 0;
  private failure: PostlineError | undefined;
  private messageId: string | undefined;
  private utf8Headers: boolean | undefined;
  private meta: MessageMeta | undefined;
  private state: State = 'open';
  private chain: ModifierChain;
  /** The header section as stored (for the chain's end), once known. */
  private storedHeader: Buffer | undefined;
  /** Set while the stored bytes pass through the HTML rewrite and/or the 7-bit conversion. */
  private transform: StoredTransform | undefined;
  /** The stored form is being converted to 7-bit (the transform holds the conversion). */
  private converting = false;
  /** Body bytes go to the chain's views (the header section was complete). */
  private viewBody = false;
  /** While converting: the header section as it would be stored unconverted (without modifier fields). */
  private heldBase: Buffer | undefined;
  /** The header section as the client sent it (for a new chain after a failed conversion). */
  private clientHeader: Buffer = Buffer.alloc(0);
  /** While converting: the original body bytes (after the empty line), at most SEVEN_BIT_HOLD in all. */
  private held: Buffer[] | undefined;
  private heldLen = 0;
  /** The conversion failed; the original is kept and stored unconverted at finish(). */
  private unconverted = false;

  constructor(readonly queueId: string, private body: BodyWriter, private readonly plan: IncomingPlan) {
    this.chain = plan.chain ?? ModifierChain.EMPTY;
  }

  /** Where stored bytes go: the transform when on, else the store. */
  private get sink(): NodeJS.WritableStream & { destroyed: boolean; writableNeedDrain: boolean } {
    return (this.transform?.stream ?? this.body.stream) as never;
  }

  /** Takes a chunk (dot-unstuffed, CRLF lines). Returns false when the caller should await drain(). */
  write(chunk: Buffer): boolean {
    if (this.state !== 'open' || this.failure) return true;
    this.clientBytes += chunk.length;
    if (this.clientBytes > this.plan.maxSize) {
      this.fail(new PostlineError('ERR_SIZE', `message ${this.queueId} exceeds ${this.plan.maxSize} bytes`, {
        temporary: false, reply: R.sizeExceeded,
      }));
      return true;
    }
    if (this.headerDone) {
      if (this.held) {
        this.hold(chunk);
        if (this.unconverted) return true;
      }
      if (this.viewBody) this.chain.clientBody(chunk);
      if (this.viewBody && !this.transform) this.chain.body(chunk);
      return this.sink.write(chunk);
    }
    return this.bufferHeader(chunk);
  }

  /** Resolves when the body stream can take more (or has failed; finish() reports that). */
  async drain(): Promise<void> {
    const s = this.sink as unknown as NodeJS.WritableStream & { destroyed: boolean; writableNeedDrain: boolean };
    if (!this.headerDone || this.failure || this.unconverted || s.destroyed || !s.writableNeedDrain) return;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        s.off('drain', done);
        s.off('error', done);
        s.off('close', done);
        resolve();
      };
      s.on('drain', done);
      s.on('error', done);
      s.on('close', done);
    });
  }

  /**
   * Ends the message and commits it. @returns the queue ID.
   * @throws PostlineError: 552 5.3.4 size, 554 5.4.6 loop, 452 4.3.1 disk full, 451 4.3.0 other.
   */
  async finish(): Promise<string> {
    if (this.state !== 'open') throw new PostlineError('ERR_STATE', `message ${this.queueId} already ${this.state}`);
    this.state = 'finishing';
    if (!this.headerDone && !this.failure) this.emitHeader(this.head.subarray(0, this.headLen), undefined);
    if (this.transform && !this.failure && !this.unconverted) await this.endTransform();
    if (this.unconverted && !this.failure) {
      await this.storeUnconverted();
      if (this.transform && !this.failure) await this.endTransform();
    }
    if (this.failure) {
      this.chain.abort();
      await this.body.abort();
      this.state = 'aborted';
      throw this.failure;
    }
    try {
      const prepend = this.chain.empty ? '' : await this.chain.end(this.storedHeader ?? Buffer.alloc(0), this.converting);
      this.held = undefined;
      const auth = this.chain.empty ? undefined : this.chain.facts().auth;
      const id = await this.plan.commit({
        messageId: this.messageId, utf8Headers: this.utf8Headers, meta: this.meta, prepend, sevenBit: this.converting,
        ...(auth ? { auth } : {}),
      }, this.body);
      this.state = 'done';
      return id;
    } catch (err) {
      this.state = 'aborted';
      await this.body.abort();
      throw toPostlineError(err);
    }
  }

  /** Abandons the message; removes the partial body. Never throws. */
  async abort(): Promise<void> {
    if (this.state === 'done' || this.state === 'aborted') return;
    this.state = 'aborted';
    this.head = Buffer.alloc(0);
    this.chain.abort();
    this.transform?.destroy();
    await this.body.abort();
  }

  /** Client bytes received so far (without our Received field). */
  size(): number {
    return this.clientBytes;
  }

  private fail(err: PostlineError): void {
    if (this.failure) return;
    this.failure = err;
    this.head = Buffer.alloc(0);
    this.headLen = 0;
    this.chain.abort();
    this.transform?.destroy();
    void this.body.abort();
  }

  /**
   * Routes stored bytes through the HTML rewrites and/or the 7-bit conversion; the output feeds the
   * store and the chain's views (stored-transform.ts).
   */
  private startTransform(html: readonly HtmlRewrite[], sevenBit: boolean): void {
    this.converting = sevenBit;
    this.transform = new StoredTransform({
      ...(html.length ? { rewrite: createBodyRewrite(html) } : {}),
      ...(sevenBit ? { downgrade: createMimeDowngrade() } : {}),
    }, this.body.stream, {
      header: (h) => { this.storedHeader = h; },
      body: (b) => this.chain.body(b),
      error: (err) => {
        if (this.failure) return;
        // Kept whole: store it as it came (finish()). Too large to have kept: refuse.
        if (this.converting && this.held && this.plan.reopen && this.plan.rechain) {
          this.unconverted = true;
          this.converting = false;
          this.transform = undefined;
          return;
        }
        this.fail(this.converting ? unconvertible(this.queueId, err) : toPostlineError(err));
      },
    });
  }

  /** Keeps an original body chunk while converting; past SEVEN_BIT_HOLD the original can no longer be stored. */
  private hold(chunk: Buffer): void {
    this.heldLen += chunk.length;
    if (this.heldLen > SEVEN_BIT_HOLD) {
      this.held = undefined;
      if (this.unconverted) this.fail(unconvertible(this.queueId, new Error('the 7-bit conversion failed')));
      return;
    }
    this.held!.push(chunk);
  }

  /**
   * After a failed 7-bit conversion: a new body with the original bytes, through a new chain
   * (whose modifiers see the 8-bit form and get no conversion).
   */
  private async storeUnconverted(): Promise<void> {
    const base = this.heldBase!;
    const held = this.held!;
    this.held = undefined;
    this.chain.abort();
    await this.body.abort();
    try {
      this.body = await this.plan.reopen!();
      this.unconverted = false; // from here on an ordinary message: drain() waits on the new body
      this.chain = this.plan.rechain!();
      const decided = this.chain.header(base, true, this.meta, parseHeaderFields, this.clientHeader);
      const add = decided.add ? Buffer.from(decided.add, 'utf8') : undefined;
      this.storedHeader = add ? Buffer.concat([add, base]) : base;
      // The HTML rewrite again, without a conversion; its output feeds the views then.
      if (decided.html.length) this.startTransform(decided.html, false);
      const s = this.sink;
      s.write(this.storedHeader);
      s.write(Buffer.from('\r\n'));
      for (const chunk of held) {
        this.chain.clientBody(chunk);
        if (!this.transform) this.chain.body(chunk);
        if (!s.write(chunk)) await this.drain();
        if (this.failure) return;
      }
    } catch (err) {
      this.fail(toPostlineError(err));
    }
  }

  /** Ends the transform; resolves once its last byte was handed to the store (or it failed). */
  private async endTransform(): Promise<void> {
    await this.transform!.end();
    if (!this.failure && !this.unconverted && !this.storedHeader) this.fail(new PostlineError('ERR_MIME_DOWNGRADE', `message ${this.queueId}: the transform lost the header section`));
  }

  /** Appends to the header buffer; emits the header once the empty line or the limit is reached. */
  private bufferHeader(chunk: Buffer): boolean {
    const need = this.headLen + chunk.length;
    if (need > this.head.length) {
      const grown = Buffer.alloc(Math.max(need, this.head.length * 2));
      this.head.copy(grown, 0, 0, this.headLen);
      this.head = grown;
    }
    const from = Math.max(0, this.headLen - 3);
    chunk.copy(this.head, this.headLen);
    this.headLen = need;
    const buf = this.head.subarray(0, this.headLen);
    let bounds: HeaderBounds | undefined;
    if (buf.length >= 2 && buf[0] === 0x0d && buf[1] === 0x0a) bounds = findHeaderEnd(buf);
    else {
      const i = buf.indexOf(CRLFCRLF, from);
      if (i >= 0) bounds = { headerEnd: i + 2, bodyStart: i + 4 };
    }
    if ((bounds && bounds.headerEnd > HEADER_LIMIT) || (!bounds && this.headLen > HEADER_LIMIT)) {
      // A header section longer than HEADER_LIMIT: refused, so that no field beyond what was
      // buffered (an X-Postline-* field, a Received field) escapes the checks.
      this.fail(new PostlineError('ERR_HEADER_SIZE', `message ${this.queueId} has a header section over ${HEADER_LIMIT} bytes`, {
        temporary: false, reply: R.headerTooLong,
      }));
      return true;
    }
    if (bounds) return this.emitHeader(buf, bounds);
    return true;
  }

  /**
   * Checks the hop count, removes fields (X-Postline-*, the chain's declared removals), adds fields
   * when planned, runs the chain's header step, and writes Received + buffered bytes.
   * `bounds` undefined: no empty line seen (over the limit, or the message has none).
   */
  private emitHeader(buf: Buffer, bounds: HeaderBounds | undefined): boolean {
    this.headerDone = true;
    let header = bounds ? buf.subarray(0, bounds.headerEnd) : buf;
    const client = header; // as sent: the buffer is never written again (dropped below)
    const fields = parseHeaderFields(header);
    const hops = getHeaderFields(fields, 'received').length;
    if (hops > this.plan.maxReceived) {
      this.fail(new PostlineError('ERR_LOOP', `message ${this.queueId} has ${hops} Received fields`, {
        temporary: false, reply: R.tooManyHops,
      }));
      return true;
    }
    const chain = this.chain;
    const chainDrops = chain.hasRemovals && fields.some((f) => chain.removes(f.name.toLowerCase(), f.value));
    // On the raw text, not the parsed fields: a malformed name ("X-Postline-Tags\0:") is no field
    // to the parser but must not pass either.
    const ours = POSTLINE_LINE.test(header.toString('latin1'));
    if (chainDrops || ours) {
      if (this.plan.readMeta && ours) {
        try {
          this.meta = metaFromHeaders(fields, this.plan.readMeta);
        } catch (err) {
          this.fail(toPostlineError(err));
          return true;
        }
      }
      // Our own fields never leave Postline; a modifier's declared removals apply here too.
      const rest = bounds ? buf.subarray(bounds.headerEnd) : Buffer.alloc(0);
      header = withoutFieldsWhere(header, (name, value) => isPostlineField(name) || (chainDrops && chain.removes(name, value)));
      buf = Buffer.concat([header, rest]);
      if (bounds) bounds = { headerEnd: header.length, bodyStart: header.length + (bounds.bodyStart - bounds.headerEnd) };
    }
    this.messageId = getHeaderFields(fields, 'message-id')[0]?.value.trim() || undefined;
    if (this.plan.smtputf8) this.utf8Headers = !isAscii(header);
    let added = '';
    if (this.plan.addMissingFields && bounds && isWellFormedHeader(header)) {
      if (!getHeaderFields(fields, 'date').length) added += `Date: ${formatDate(this.plan.now())}\r\n`;
      if (!this.messageId) {
        this.messageId = makeMessageId(this.queueId, this.plan.hostname);
        added += `Message-ID: ${this.messageId}\r\n`;
      }
    }
    const received = Buffer.from(this.plan.received, 'utf8');
    const own = added ? Buffer.from(added, 'latin1') : undefined;
    let top = received;
    if (!chain.empty) {
      const base = Buffer.concat([received, bounds ? buf.subarray(0, bounds.headerEnd) : buf, ...(own ? [own] : [])]);
      let decided: { add: string; sevenBit: boolean; html: HtmlRewrite[] };
      try {
        decided = chain.header(base, bounds !== undefined, this.meta, parseHeaderFields, client);
      } catch (err) {
        this.fail(toPostlineError(err));
        return true;
      }
      const add = decided.add ? Buffer.from(decided.add, 'utf8') : undefined;
      if (add) top = Buffer.concat([add, received]);
      if (bounds) {
        this.viewBody = true;
        this.clientHeader = client;
        this.storedHeader = add ? Buffer.concat([add, base]) : base;
        // 8-bit header fields cannot be converted (and need an SMTPUTF8 hop, which has 8BITMIME: RFC 6531 3.1).
        const convert = decided.sevenBit && (this.plan.bodyType ?? '7BIT') !== '7BIT' && isAscii(this.storedHeader);
        if (convert) {
          this.heldBase = base;
          this.held = [];
        }
        if (convert || decided.html.length) {
          this.storedHeader = undefined; // known from the transform's output
          this.startTransform(decided.html, convert);
        }
      }
    }
    const s = this.sink;
    s.write(top);
    let ok: boolean;
    if (own) {
      s.write(buf.subarray(0, bounds!.headerEnd));
      s.write(own);
      ok = s.write(buf.subarray(bounds!.headerEnd));
    } else {
      ok = s.write(buf); // the header buffer is dropped below, never reused
    }
    if (this.held) this.hold(buf.subarray(bounds!.bodyStart));
    if (this.viewBody) this.chain.clientBody(buf.subarray(bounds!.bodyStart));
    if (this.viewBody && !this.transform) this.chain.body(buf.subarray(bounds!.bodyStart));
    this.head = Buffer.alloc(0);
    this.headLen = 0;
    return ok;
  }
}

/** The refusal of a signed message that cannot be stored 7-bit nor kept whole (554 5.6.3). */
function unconvertible(queueId: string, err: Error): PostlineError {
  return new PostlineError('ERR_MIME_DOWNGRADE', `message ${queueId}: ${err.message}`, {
    temporary: false, cause: err,
    reply: reply(554, '5.6.3', 'Message cannot be converted to 7-bit for signing: ' + err.message.replace(/[\r\n]+/g, ' ').slice(0, 200)),
  });
}
