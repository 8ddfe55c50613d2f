/**
 * Dot-stuffing for the DATA command (RFC 5321 4.5.2 transparency, 3.3 end of mail data).
 *
 * Owns: the `DotStuffer` Transform that doubles a leading '.' on every line (also when a line
 * starts in the next chunk) and appends the end-of-data indicator CRLF "." CRLF, adding a CRLF first
 * when the body does not end in one. Scanning uses Buffer.indexOf, not a per-byte loop.
 */
import { Transform, type TransformCallback } from 'node:stream';

const LF_DOT = Buffer.from('\n.');
const DOT = Buffer.from('.');
const END_AFTER_CRLF = Buffer.from('.\r\n');
const END_WITH_CRLF = Buffer.from('\r\n.\r\n');

/**
 * Transform stream: message body bytes (CRLF lines, not stuffed) in, wire bytes for DATA out
 * (RFC 5321 4.5.2). An empty body yields ".\r\n"; a body without a final CRLF yields "...\r\n.\r\n".
 * Lines are recognised after LF, so a body with CRLF line endings is stuffed exactly per the RFC.
 */
export class DotStuffer extends Transform {
  private atLineStart = true;
  private lastTwo = 0; // last two bytes seen, as (b[-2] << 8) | b[-1]
  private seen = 0; // bytes seen, saturating at 2

  /** Bytes of body seen (before stuffing). */
  bytesIn = 0;
  /** The last output chunk, held back so the end-of-data indicator leaves in the same write. */
  private held?: Buffer;

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    if (!Buffer.isBuffer(chunk)) chunk = Buffer.from(chunk as unknown as string);
    const n = chunk.length;
    if (n === 0) return done();
    this.bytesIn += n;
    const parts: Buffer[] = [];
    let start = 0;
    if (this.atLineStart && chunk[0] === 0x2e) parts.push(DOT);
    let i = chunk.indexOf(LF_DOT);
    while (i !== -1) {
      parts.push(chunk.subarray(start, i + 1), DOT);
      start = i + 1;
      i = chunk.indexOf(LF_DOT, start);
    }
    parts.push(start === 0 ? chunk : chunk.subarray(start));
    this.atLineStart = chunk[n - 1] === 0x0a;
    this.lastTwo = n >= 2 ? (chunk[n - 2]! << 8) | chunk[n - 1]! : ((this.lastTwo & 0xff) << 8) | chunk[0]!;
    this.seen = Math.min(2, this.seen + n);
    const out = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
    const prev = this.held;
    this.held = out;
    done(null, prev);
  }

  override _flush(done: TransformCallback): void {
    const endsInCrlf = this.seen >= 2 && this.lastTwo === 0x0d0a;
    const end = this.seen === 0 || endsInCrlf ? END_AFTER_CRLF : END_WITH_CRLF;
    done(null, this.held ? Buffer.concat([this.held, end]) : end);
  }
}

/** Creates a new DotStuffer (RFC 5321 4.5.2). */
export function createDotStuffer(): DotStuffer {
  return new DotStuffer();
}
