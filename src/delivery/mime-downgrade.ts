/**
 * 8-bit to 7-bit MIME downgrade for servers without 8BITMIME (like Postfix's smtp 8bit→QP conversion).
 *
 * RFCs: RFC 6152 3 (8-bit data needs 8BITMIME; otherwise convert), RFC 2045 6.1/6.7 (Content-Transfer-
 * Encoding, quoted-printable), RFC 2046 5.2 (message/* must not be re-encoded), RFC 3463 (5.6.3
 * conversion required but not supported). Owns: rewriting leaf parts with 8-bit content to
 * quoted-printable as a stream. A message that cannot be converted fails the stream with
 * MimeDowngradeError (permanent 5.6.3).
 */
import { createRequire } from 'node:module';
import * as nodeStream from 'node:stream';
import { Transform, type Duplex, type TransformCallback } from 'node:stream';
import { PostlineError } from '../core/errors.js';
import { reply } from '../core/reply.js';

const require = createRequire(import.meta.url);

/** The parts of mailsplit's MimeNode we use (the package ships no types). */
interface MimeNode {
  type: 'node';
  root: boolean;
  multipart: string | false;
  encoding: string | false;
  contentType: string | false;
  /** True when mailsplit parses the body of a message/rfc822 part as an embedded message. */
  messageNode?: boolean;
  headers: { update(key: string, value: string): void; hasHeader(key: string): boolean; add(key: string, value: string): void };
  getHeaders(): Buffer;
}
type SplitItem = MimeNode | { type: 'body'; node?: MimeNode; value: Buffer } | { type: 'data'; value: Buffer };
interface MailsplitModule { Splitter: new (opts?: object) => Duplex; Joiner: new () => Duplex }
interface LibqpModule { encode(b: Buffer): string; wrap(s: string, lineLength?: number): string }

const mailsplit = require('mailsplit') as MailsplitModule;
const libqp = require('libqp') as LibqpModule;

/** A message that must be converted to 7-bit but cannot be (RFC 3463 5.6.3). */
export class MimeDowngradeError extends PostlineError {
  readonly dsnStatus = '5.6.3';
  constructor(message: string) {
    super('ERR_MIME_DOWNGRADE', message, { temporary: false, reply: reply(554, '5.6.3', message) });
    this.name = 'MimeDowngradeError';
  }
}

/** Bytes of a 7-bit part we hold while looking for 8-bit data before giving up the option to convert. */
const PROBE_LIMIT = 1024 * 1024;
/** A QP-encoded line is cut (soft break) when the input holds this many bytes without a line break. */
const MAX_PENDING = 64 * 1024;

/** True when `b` holds a byte ≥ 0x80. */
export function has8bit(b: Buffer): boolean {
  for (let i = 0; i < b.length; i += 4096) {
    const end = Math.min(b.length, i + 4096);
    // latin1 decode + regex is far faster than a JS byte loop for typical ASCII text.
    if (/[\x80-\xff]/.test(b.toString('latin1', i, end))) return true;
  }
  return false;
}

type Mode = 'pass' | 'strict' | 'probe' | 'qp';

/** Object-mode step between mailsplit's Splitter and Joiner that re-encodes 8-bit leaf parts. */
class Downgrader extends Transform {
  private node?: MimeNode;
  private mode: Mode = 'pass';
  private held: Buffer[] = [];
  private heldLen = 0;
  private pending: Buffer = Buffer.alloc(0);

  constructor() { super({ objectMode: true }); }

  override _transform(item: SplitItem, _enc: BufferEncoding, done: TransformCallback): void {
    try {
      if (item.type === 'node') this.startNode(item);
      else if (item.type === 'body') this.body(item.value);
      else {
        this.finishNode();
        if (has8bit(item.value)) throw new MimeDowngradeError('8-bit data in a multipart preamble, boundary or epilogue cannot be converted to 7-bit');
        this.push(item);
      }
      done();
    } catch (err) {
      done(err as Error);
    }
  }

  override _flush(done: TransformCallback): void {
    try {
      this.finishNode();
      done();
    } catch (err) {
      done(err as Error);
    }
  }

  private startNode(node: MimeNode): void {
    this.finishNode();
    if (has8bit(node.getHeaders())) throw new MimeDowngradeError('8-bit data in message headers cannot be converted to 7-bit');
    this.node = node;
    const enc = node.encoding || '';
    const eightBit = enc === '8bit' || enc === 'binary';
    if (node.multipart || node.messageNode) {
      // A multipart, or a message/rfc822 whose embedded message is walked part by part (RFC 2046
      // 5.2.1: its own encoding must be 7bit once every part inside is 7-bit).
      if (eightBit) node.headers.update('Content-Transfer-Encoding', '7bit');
      this.mode = 'pass';
    } else if ((node.contentType || '').startsWith('message/')) {
      if (eightBit) throw new MimeDowngradeError(`a ${node.contentType} part with 8-bit content cannot be converted to 7-bit`);
      this.mode = 'strict';
    } else if (eightBit) {
      this.toQp(node);
    } else if (enc === 'base64' || enc === 'quoted-printable') {
      this.mode = 'strict';
    } else {
      this.mode = 'probe';
      return; // hold the node until we know whether its body is 8-bit
    }
    this.push(node);
  }

  private toQp(node: MimeNode): void {
    node.headers.update('Content-Transfer-Encoding', 'quoted-printable');
    if (node.root && !node.headers.hasHeader('MIME-Version')) node.headers.add('MIME-Version', '1.0');
    this.mode = 'qp';
    this.pending = Buffer.alloc(0);
  }

  private body(value: Buffer): void {
    switch (this.mode) {
      case 'pass':
        return void this.push({ type: 'body', node: this.node, value });
      case 'strict':
        if (has8bit(value)) throw new MimeDowngradeError('8-bit data in a part that cannot be re-encoded');
        return void this.push({ type: 'body', node: this.node, value });
      case 'qp':
        return this.encode(value, false);
      case 'probe':
        return this.probe(value);
    }
  }

  private probe(value: Buffer): void {
    this.held.push(value);
    this.heldLen += value.length;
    if (has8bit(value)) {
      this.toQp(this.node!);
      this.push(this.node);
      const all = Buffer.concat(this.held);
      this.held = [];
      this.heldLen = 0;
      this.encode(all, false);
    } else if (this.heldLen > PROBE_LIMIT) {
      this.releaseHeld();
      this.mode = 'strict';
    }
  }

  private releaseHeld(): void {
    this.push(this.node);
    for (const value of this.held) this.push({ type: 'body', node: this.node, value });
    this.held = [];
    this.heldLen = 0;
  }

  /** QP-encodes whole lines; a partial last line waits for more input (RFC 2045 6.7 rules 1-5). */
  private encode(value: Buffer, final: boolean): void {
    const buf = this.pending.length ? Buffer.concat([this.pending, value]) : value;
    const cut = final ? buf.length : buf.lastIndexOf(0x0a) + 1;
    if (cut === 0 && buf.length <= MAX_PENDING) {
      this.pending = buf;
      return;
    }
    const upto = cut === 0 ? buf.length : cut;
    this.pending = Buffer.from(buf.subarray(upto));
    let text = libqp.wrap(libqp.encode(buf.subarray(0, upto)), 76);
    // A cut inside a line gets a soft line break; the last line of a part keeps no line break,
    // because the CRLF before a boundary belongs to the boundary (RFC 2046 5.1.1).
    if (!final && buf[upto - 1] !== 0x0a) text += '=\r\n';
    if (text) this.push({ type: 'body', node: this.node, value: Buffer.from(text, 'latin1') });
  }

  private finishNode(): void {
    if (this.mode === 'probe' && this.node) this.releaseHeld();
    if (this.mode === 'qp' && (this.pending.length > 0)) this.encode(Buffer.alloc(0), true);
    this.node = undefined;
    this.mode = 'pass';
    this.pending = Buffer.alloc(0);
  }
}

/** Longest partial line held by LineAligner before it is passed on anyway, bytes. */
const MAX_LINE_HOLD = 1024 * 1024;

/**
 * Passes bytes on in whole lines only. mailsplit 5.4 mis-splits a multipart body when a chunk ends
 * inside a line that holds 8-bit characters, so its input is aligned to line ends.
 */
export class LineAligner extends Transform {
  private rest: Buffer = Buffer.alloc(0);
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    const buf = this.rest.length ? Buffer.concat([this.rest, chunk]) : chunk;
    const cut = buf.lastIndexOf(0x0a) + 1;
    if (cut === 0 && buf.length <= MAX_LINE_HOLD) {
      this.rest = buf;
      return done();
    }
    const upto = cut === 0 ? buf.length : cut;
    this.rest = Buffer.from(buf.subarray(upto));
    done(null, buf.subarray(0, upto));
  }
  override _flush(done: TransformCallback): void {
    done(null, this.rest.length ? this.rest : undefined);
  }
}

/**
 * A byte stream transform: message in (CRLF lines, 8-bit), message out with 8-bit leaf parts as
 * quoted-printable (RFC 6152 3, RFC 2045 6.7). Errors with MimeDowngradeError (permanent 5.6.3) when
 * 8-bit data sits in headers, in message/* parts or outside parts.
 */
export function createMimeDowngrade(): Duplex {
  // stream.compose exists in Node 20 (experimental) but is missing from @types/node 20.
  const compose = (nodeStream as unknown as { compose(...s: Duplex[]): Duplex }).compose;
  // defaultInlineEmbedded: walk into message/rfc822 parts (returned originals in DSNs) unless they are attachments.
  return compose(new LineAligner(), new mailsplit.Splitter({ defaultInlineEmbedded: true }), new Downgrader(), new mailsplit.Joiner());
}
