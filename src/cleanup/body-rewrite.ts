/**
 * The body rewrite of the modifier chain's 'rewrite' stage (modifiers.ts): a byte stream transform
 * of the whole stored message (header section and body) that hands the decoded content of every
 * text/html part to the rewrites' part filters and re-encodes what they give back.
 *
 * RFCs: RFC 2045 6 (Content-Transfer-Encoding: base64 6.8, quoted-printable 6.7, line length of
 * 7bit/8bit data 2.7/2.8), RFC 2046 5.1.1 (the CRLF before a boundary belongs to the boundary),
 * RFC 2183 (Content-Disposition: attachments are left alone).
 *
 * Built on mailsplit (Splitter, Joiner), like the 7-bit downgrade (delivery/mime-downgrade.ts):
 * every byte outside a rewritten part passes as it came (header sections of untouched parts are
 * mailsplit's original bytes). A rewritten part keeps base64 or quoted-printable; a 7bit, 8bit or
 * binary part becomes quoted-printable (rewritten lines may outgrow the 998 octets of 7bit/8bit
 * data). The part filters see the decoded bytes as a latin1 string, in pieces as they stream
 * (memory stays flat: at most a line of encoded input and 64 KiB of decoded output are held).
 * text/plain, attachments, parts inside an attached or embedded message, and text/html in UTF-16 or
 * UTF-32 are never handed to a filter.
 */
import { createRequire } from 'node:module';
import * as nodeStream from 'node:stream';
import { Transform, type Duplex, type TransformCallback } from 'node:stream';
import { LineAligner } from '../delivery/mime-downgrade.js';

const require = createRequire(import.meta.url);

/** What a part filter learns of its text/html part. */
export interface HtmlPartInfo {
  /** The charset parameter, lower case, when given. */
  readonly charset: string | undefined;
  /** 0 for the first text/html part of the message handed to this rewrite, then 1, 2... */
  readonly index: number;
}

/** Rewrites one text/html part's decoded content as it streams. */
export interface HtmlPartFilter {
  /** Takes decoded bytes (a latin1 string: one character per byte), returns what to put out now (same form). Must not throw. */
  write(text: string): string;
  /** The part ended: returns the rest. Must not throw. */
  end(): string;
}

/** A modifier's rewrite of a message's text/html parts ('rewrite' stage). */
export interface HtmlRewrite {
  /** @returns the filter for this part, or undefined to leave the part as it is. Must not throw. */
  part(info: HtmlPartInfo): HtmlPartFilter | undefined;
}

/** The parts of mailsplit's MimeNode used here (the package ships no types). */
interface MimeNode {
  type: 'node';
  root: boolean;
  parentNode?: MimeNode;
  multipart: string | false;
  encoding: string | false;
  contentType: string | false;
  charset?: string | false;
  disposition?: string | false;
  headers: { update(key: string, value: string): void; hasHeader(key: string): boolean; add(key: string, value: string, index?: number): void };
  getHeaders(): Buffer;
}
type SplitItem = MimeNode | { type: 'body'; node?: MimeNode; value: Buffer } | { type: 'data'; value: Buffer };
interface MailsplitModule { Splitter: new (opts?: object) => Duplex; Joiner: new () => Duplex }
interface LibqpModule { encode(b: Buffer): string; decode(s: string): Buffer; wrap(s: string, lineLength?: number): string }

const mailsplit = require('mailsplit') as MailsplitModule;
const libqp = require('libqp') as LibqpModule;

/** Decoded output held before it is encoded anyway (a quoted-printable line is cut with a soft break), bytes. */
const MAX_PENDING = 64 * 1024;
/** Encoded input held while waiting for a line end (quoted-printable), bytes. */
const MAX_LINE = 64 * 1024;
/** Base64 lines: 57 bytes become 76 characters (RFC 2045 6.8). */
const B64_LINE_BYTES = 57;
const CRLF = Buffer.from('\r\n');

/** True when `node` is a text/html part a filter may see (not an attachment, not inside a message/* part, not UTF-16/32). */
export function isRewritableHtml(node: MimeNode): boolean {
  if (node.multipart || node.contentType !== 'text/html') return false;
  if (node.disposition === 'attachment') return false;
  for (let p = node.parentNode; p; p = p.parentNode) {
    if ((p.contentType || '').startsWith('message/')) return false;
  }
  return !/^(utf-?(16|32)|ucs-?[24])/i.test(String(node.charset || ''));
}

/** One part being rewritten: decoder, filters, encoder. */
class PartCodec {
  private carry = ''; // encoded input not decoded yet
  private b64Ended = false; // base64 padding seen
  private sawInput = false;
  private pending: Buffer = Buffer.alloc(0); // decoded output not encoded yet
  private endedWithLf = false;
  private lastOut = -1;
  readonly encoding: 'base64' | 'quoted-printable';
  private readonly out: (b: Buffer) => void;

  constructor(private readonly inEncoding: string, private readonly filters: HtmlPartFilter[], out: (b: Buffer) => void) {
    this.encoding = inEncoding === 'base64' ? 'base64' : 'quoted-printable';
    this.out = (b) => {
      if (!b.length) return;
      this.lastOut = b[b.length - 1]!;
      out(b);
    };
  }

  write(value: Buffer): void {
    if (!value.length) return;
    this.sawInput = true;
    this.endedWithLf = value[value.length - 1] === 0x0a;
    this.filtered(this.decode(value.toString('latin1'), false));
  }

  end(): void {
    // An empty part stays empty (what follows it may start on the same line: a boundary right after the header section).
    if (!this.sawInput) return;
    this.filtered(this.decode('', true));
    let text = '';
    let first = true;
    for (const f of this.filters) {
      // Each filter's rest goes through the filters after it.
      text = first ? f.end() : f.write(text) + f.end();
      first = false;
    }
    this.encode(Buffer.from(text, 'latin1'), true);
    // A part that ended with a line break (a message that is one part) still does.
    if (this.endedWithLf && this.lastOut !== 0x0a) this.out(Buffer.from('\r\n'));
  }

  /** Decoded bytes of the input so far, as a latin1 string (a partial line or base64 quantum waits). */
  private decode(s: string, final: boolean): string {
    let text = this.carry + s;
    this.carry = '';
    if (this.inEncoding === 'base64') {
      if (this.b64Ended) return '';
      text = text.replace(/[^A-Za-z0-9+/=]/g, '');
      // Padding ends the data: what follows it (a list footer added to a base64 part) is not decoded.
      const pad = text.indexOf('=');
      if (pad >= 0) {
        this.b64Ended = true;
        text = text.slice(0, pad);
      }
      const cut = final || pad >= 0 ? text.length : text.length - (text.length % 4);
      this.carry = text.slice(cut);
      return Buffer.from(text.slice(0, cut), 'base64').toString('latin1');
    }
    if (this.inEncoding === 'quoted-printable') {
      let cut = final ? text.length : text.lastIndexOf('\n') + 1;
      if (cut === 0 && text.length > MAX_LINE) cut = text.length - 2; // a runaway line: never split "=XX"
      this.carry = text.slice(cut);
      return libqp.decode(text.slice(0, cut)).toString('latin1');
    }
    return text;
  }

  private filtered(text: string): void {
    for (const f of this.filters) text = f.write(text);
    if (text) this.encode(Buffer.from(text, 'latin1'), false);
  }

  /** Encodes whole lines (quoted-printable) or whole 57-byte groups (base64); the rest waits unless `final`. */
  private encode(value: Buffer, final: boolean): void {
    const buf = this.pending.length ? Buffer.concat([this.pending, value]) : value;
    if (this.encoding === 'base64') {
      const cut = final ? buf.length : buf.length - (buf.length % B64_LINE_BYTES);
      this.pending = Buffer.from(buf.subarray(cut));
      if (cut === 0) return;
      const b64 = buf.subarray(0, cut).toString('base64');
      const lines: string[] = [];
      for (let i = 0; i < b64.length; i += 76) lines.push(b64.slice(i, i + 76));
      // The last line of the part keeps no line break: the CRLF before a boundary belongs to it.
      this.out(Buffer.from(lines.join('\r\n') + (final ? '' : '\r\n'), 'latin1'));
      return;
    }
    let cut = final ? buf.length : buf.lastIndexOf(CRLF) + 2;
    if (cut <= 1 && buf.length <= MAX_PENDING) {
      this.pending = buf;
      return;
    }
    if (cut <= 1) cut = buf.length;
    this.pending = Buffer.from(buf.subarray(cut));
    // Only CRLF is a line break (RFC 2045 6.7 rule 4): a bare CR or LF of the content is encoded.
    const encoded = libqp.encode(buf.subarray(0, cut)).replace(/\r(?!\n)/g, '=0D').replace(/(?<!\r)\n/g, '=0A');
    let text = libqp.wrap(encoded, 76);
    if (!final && !(buf[cut - 2] === 0x0d && buf[cut - 1] === 0x0a)) text += '=\r\n'; // cut inside a line: a soft line break
    if (text) this.out(Buffer.from(text, 'latin1'));
  }
}

/** Object-mode step between mailsplit's Splitter and Joiner that rewrites text/html parts. */
class HtmlPartRewriter extends Transform {
  private codec: PartCodec | undefined;
  private htmlParts = 0;

  constructor(private readonly rewrites: readonly HtmlRewrite[]) {
    super({ objectMode: true });
  }

  override _transform(item: SplitItem, _enc: BufferEncoding, done: TransformCallback): void {
    try {
      if (item.type === 'node') {
        this.finishPart();
        this.startNode(item);
      } else if (item.type === 'body' && this.codec) {
        this.codec.write(item.value);
      } else {
        if (item.type === 'data') this.finishPart();
        this.push(item);
      }
      done();
    } catch (err) {
      done(err as Error);
    }
  }

  override _flush(done: TransformCallback): void {
    try {
      this.finishPart();
      done();
    } catch (err) {
      done(err as Error);
    }
  }

  private startNode(node: MimeNode): void {
    if (isRewritableHtml(node)) {
      const info: HtmlPartInfo = { charset: node.charset ? String(node.charset).toLowerCase() : undefined, index: this.htmlParts++ };
      const filters = this.rewrites.map((r) => r.part(info)).filter((f): f is HtmlPartFilter => f !== undefined);
      if (filters.length) {
        const enc = (node.encoding || '7bit').toLowerCase();
        this.codec = new PartCodec(enc, filters, (b) => this.push({ type: 'body', node, value: b }));
        if (this.codec.encoding !== enc) {
          if (node.headers.hasHeader('Content-Transfer-Encoding')) node.headers.update('Content-Transfer-Encoding', this.codec.encoding);
          else node.headers.add('Content-Transfer-Encoding', this.codec.encoding, Number.MAX_SAFE_INTEGER);
          if (node.root && !node.headers.hasHeader('MIME-Version')) node.headers.add('MIME-Version', '1.0', Number.MAX_SAFE_INTEGER);
        }
      }
    }
    this.push(node);
  }

  private finishPart(): void {
    const c = this.codec;
    if (!c) return;
    this.codec = undefined;
    c.end();
  }
}

/**
 * The rewrite as a byte stream transform: a message in (CRLF lines), the message out with its
 * text/html parts rewritten by `rewrites` (each part through every filter, in order).
 * @throws (stream error) what mailsplit throws on input it cannot split; cleanup then fails the message.
 */
export function createBodyRewrite(rewrites: readonly HtmlRewrite[]): Duplex {
  // stream.compose exists in Node 20 (experimental) but is missing from @types/node 20.
  const compose = (nodeStream as unknown as { compose(...s: Duplex[]): Duplex }).compose;
  return compose(new LineAligner(), new mailsplit.Splitter(), new HtmlPartRewriter(rewrites), new mailsplit.Joiner());
}
