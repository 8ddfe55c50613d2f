/**
 * One message flowing through cleanup into the queue (the IncomingMessage of src/core/session.ts).
 *
 * Owns the byte rules: only the header section is buffered (at most HEADER_LIMIT bytes; a longer
 * header section is refused with 552 5.3.4, so no field can slip past the checks below; past that
 * the rest counts as body so memory stays bounded), our Received field goes first, Date and
 * Message-ID are added only for authenticated submission (RFC 6409 8.2, 8.3) and only when an empty
 * line ends the header section; every other byte goes to the store exactly as received.
 * Also the hop limit (RFC 5321 6.3, 554 5.4.6) and the message size limit (552 5.3.4).
 */
import { isAscii } from 'node:buffer';
import { PostlineError, toPostlineError } from '../core/errors.js';
import { R } from '../core/reply.js';
import type { IncomingMessage, MessageMeta } from '../core/session.js';
import type { BodyWriter } from '../spool/types.js';
import { formatDate, makeMessageId } from '../rfc5322/format.js';
import {
  findHeaderEnd, getHeaderFields, isWellFormedHeader, parseHeaderFields, withoutFields, type HeaderBounds,
} from '../rfc5322/header.js';
import { isPostlineField, metaFromHeaders, type MetaLimits } from './meta.js';

/** Largest header section buffered, bytes; a longer one is passed through as body. */
export const HEADER_LIMIT = 1024 * 1024;

const CRLFCRLF = Buffer.from('\r\n\r\n');
/** A header line whose name begins with X-Postline- (case-insensitive). */
const POSTLINE_LINE = /(?:^|\n)x-postline-/i;

/** What cleanup decided for this message before the first byte. */
export interface IncomingPlan {
  /** The Received field with its CRLF. */
  readonly received: string;
  /** Add a missing Date / Message-ID (authenticated submission only). */
  readonly addMissingFields: boolean;
  readonly hostname: string;
  /** More Received fields than this fails the message (554 5.4.6). */
  readonly maxReceived: number;
  /** Largest message from the client, bytes (552 5.3.4). */
  readonly maxSize: number;
  /** ms since epoch, for an added Date. */
  readonly now: () => number;
  /**
   * The sender asked for SMTPUTF8 (RFC 6531): then the buffered header section is checked for
   * non-ASCII bytes (one native scan), so delivery knows whether a hop needs SMTPUTF8.
   */
  readonly smtputf8?: boolean;
  /**
   * Read X-Postline-Tags / X-Postline-Metadata (authenticated or trusted clients) with these
   * bounds; absent: they are not read. Those fields are removed from every message either way.
   */
  readonly readMeta?: MetaLimits;
  /**
   * Commits the body; resolves with the queue ID. `messageId` is the Message-ID found or added;
   * `utf8Headers` says whether the header section holds non-ASCII bytes (undefined: not checked,
   * the message is not SMTPUTF8); `meta` what the X-Postline-* fields gave.
   */
  readonly commit: (messageId: string | undefined, utf8Headers: boolean | undefined, meta: MessageMeta | undefined) => Promise<string>;
}

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

  constructor(readonly queueId: string, private readonly body: BodyWriter, private readonly plan: IncomingPlan) {}

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
    if (this.headerDone) return this.body.stream.write(chunk);
    return this.bufferHeader(chunk);
  }

  /** Resolves when the body stream can take more (or has failed; finish() reports that). */
  async drain(): Promise<void> {
    const s = this.body.stream;
    if (!this.headerDone || this.failure || s.destroyed || !s.writableNeedDrain) return;
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
    if (this.failure) {
      await this.body.abort();
      this.state = 'aborted';
      throw this.failure;
    }
    try {
      const id = await this.plan.commit(this.messageId, this.utf8Headers, this.meta);
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
    await this.body.abort();
  }

  /** Client bytes received so far (without our Received field). */
  size(): number {
    return this.clientBytes;
  }

  private fail(err: PostlineError): void {
    this.failure = err;
    this.head = Buffer.alloc(0);
    this.headLen = 0;
    void this.body.abort();
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
   * Checks the hop count, adds fields when planned, and writes Received + buffered bytes.
   * `bounds` undefined: no empty line seen (over the limit, or the message has none).
   */
  private emitHeader(buf: Buffer, bounds: HeaderBounds | undefined): boolean {
    this.headerDone = true;
    let header = bounds ? buf.subarray(0, bounds.headerEnd) : buf;
    const fields = parseHeaderFields(header);
    const hops = getHeaderFields(fields, 'received').length;
    if (hops > this.plan.maxReceived) {
      this.fail(new PostlineError('ERR_LOOP', `message ${this.queueId} has ${hops} Received fields`, {
        temporary: false, reply: R.tooManyHops,
      }));
      return true;
    }
    // On the raw text, not the parsed fields: a malformed name ("X-Postline-Tags\0:") is no field
    // to the parser but must not pass either.
    if (POSTLINE_LINE.test(header.toString('latin1'))) {
      if (this.plan.readMeta) {
        try {
          this.meta = metaFromHeaders(fields, this.plan.readMeta);
        } catch (err) {
          this.fail(toPostlineError(err));
          return true;
        }
      }
      // Our own fields never leave Postline: the header section is written without them.
      const rest = bounds ? buf.subarray(bounds.headerEnd) : Buffer.alloc(0);
      header = withoutFields(header, isPostlineField);
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
    const s = this.body.stream;
    s.write(Buffer.from(this.plan.received, 'utf8'));
    let ok: boolean;
    if (added) {
      s.write(buf.subarray(0, bounds!.headerEnd));
      s.write(Buffer.from(added, 'latin1'));
      ok = s.write(buf.subarray(bounds!.headerEnd));
    } else {
      ok = s.write(buf); // the header buffer is dropped below, never reused
    }
    this.head = Buffer.alloc(0);
    this.headLen = 0;
    return ok;
  }
}
