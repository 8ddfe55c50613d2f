/**
 * DKIM canonicalization and hashing (RFC 6376 3.4.2 relaxed header, 3.4.4 relaxed body, 3.7 the
 * hash input, 5.4.2 which header fields are signed).
 *
 * Owns: the streaming relaxed body hash (constant memory: only state bits and a count of deferred
 * empty lines are kept between chunks), relaxed header canonicalization, and picking the header
 * fields named by h= from the bottom up. Never `l=`: the whole body is always hashed.
 */
import { createHash, type Hash } from 'node:crypto';

const SP = 0x20;
const HT = 0x09;
const CR = 0x0d;
const LF = 0x0a;
const CRLF = Buffer.from('\r\n');
const BLANKS = Buffer.from('\r\n'.repeat(512));

/**
 * SHA-256 of the relaxed canonical body (RFC 6376 3.4.4): WSP at line ends removed, WSP runs as
 * one SP, empty lines at the end removed, a CRLF added after a last line without one; an empty
 * body hashes as the empty string. Feed stored body bytes (after the header section's empty line).
 */
export class RelaxedBodyHash {
  private readonly hash: Hash = createHash('sha256');
  /** WSP seen since the last content byte of this line. */
  private wsp = false;
  /** A CR seen, not yet known to start a CRLF. */
  private cr = false;
  /** No content byte in the current line yet. */
  private lineEmpty = true;
  /** Empty lines held back (they count only if content follows). */
  private blank = 0;
  private out: Buffer = Buffer.alloc(0);
  private n = 0;

  /** Hashes one more chunk of body bytes. */
  update(chunk: Buffer): void {
    if (this.out.length < chunk.length * 3 + 4) this.out = Buffer.allocUnsafe(chunk.length * 3 + 4);
    this.n = 0;
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk[i]!;
      if (c === LF) {
        if (this.cr) {
          this.cr = false;
          this.wsp = false;
          if (this.lineEmpty) this.blank++;
          else {
            this.out[this.n++] = CR;
            this.out[this.n++] = LF;
          }
          this.lineEmpty = true;
          continue;
        }
        this.content(c); // a bare LF is an ordinary character here
      } else if (c === CR) {
        if (this.cr) this.content(CR);
        this.cr = true;
      } else if (c === SP || c === HT) {
        if (this.cr) {
          this.cr = false;
          this.content(CR);
        }
        this.wsp = true;
      } else {
        if (this.cr) {
          this.cr = false;
          this.content(CR);
        }
        this.content(c);
      }
    }
    if (this.n) this.hash.update(this.out.subarray(0, this.n));
  }

  /** @returns the body hash (bh=), base64. Call once, after the last chunk. */
  digest(): string {
    if (this.out.length < 8) this.out = Buffer.allocUnsafe(8);
    this.n = 0;
    if (this.cr) {
      this.cr = false;
      this.content(CR);
    }
    if (!this.lineEmpty) {
      this.out[this.n++] = CR;
      this.out[this.n++] = LF;
    }
    if (this.n) this.hash.update(this.out.subarray(0, this.n));
    return this.hash.digest('base64');
  }

  private content(c: number): void {
    if (this.lineEmpty && this.blank) {
      if (this.n) this.hash.update(this.out.subarray(0, this.n));
      this.n = 0;
      for (let left = this.blank; left > 0; left -= 512) this.hash.update(BLANKS.subarray(0, Math.min(left, 512) * 2));
      this.blank = 0;
    }
    if (this.wsp) {
      this.out[this.n++] = SP;
      this.wsp = false;
    }
    this.out[this.n++] = c;
    this.lineEmpty = false;
  }
}

/** One header field as written: its name and the whole field (folding kept), without the final CRLF. */
export interface RawField {
  readonly name: string;
  readonly raw: string;
}

/**
 * Splits a header section into fields (continuation lines join their field). Bytes are read as
 * latin1 so every byte survives, UTF-8 included.
 */
export function splitFields(header: Buffer | string): RawField[] {
  const text = typeof header === 'string' ? header : header.toString('latin1');
  const out: RawField[] = [];
  for (const line of text.split('\r\n')) {
    if (!line) continue;
    if ((line[0] === ' ' || line[0] === '\t') && out.length) {
      const last = out[out.length - 1]!;
      out[out.length - 1] = { name: last.name, raw: `${last.raw}\r\n${line}` };
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    out.push({ name: line.slice(0, colon).replace(/^[ \t]+|[ \t]+$/g, ''), raw: line });
  }
  return out;
}

/**
 * Relaxed header canonicalization (RFC 6376 3.4.2) of one field: name in lower case, unfolded, WSP
 * runs as one SP, no WSP around the colon or at the end; with CRLF.
 */
export function relaxedHeader(raw: string): string {
  const colon = raw.indexOf(':');
  const name = raw.slice(0, colon).replace(/[ \t]+$/, '').toLowerCase();
  // Not String.trim(): it would also take U+00A0, which is a byte (0xA0) of UTF-8 text read as latin1.
  const value = raw.slice(colon + 1).replace(/\r\n/g, '').replace(/[ \t]+/g, ' ').replace(/^ | $/g, '');
  return `${name}:${value}\r\n`;
}

/**
 * The fields h= names, in h= order, each instance taken from the bottom up (RFC 6376 5.4.2); a
 * name with no instance left signs nothing (an over-signed name then forbids adding one).
 * @param fields the header section top first.
 */
export function pickSigned(fields: readonly RawField[], names: readonly string[]): RawField[] {
  const used = new Map<string, number>();
  const out: RawField[] = [];
  for (const n of names) {
    const lower = n.toLowerCase();
    const skip = used.get(lower) ?? 0;
    let seen = 0;
    for (let i = fields.length - 1; i >= 0; i--) {
      if (fields[i]!.name.toLowerCase() !== lower) continue;
      if (seen++ === skip) {
        out.push(fields[i]!);
        break;
      }
    }
    used.set(lower, skip + 1);
  }
  return out;
}

/** The hash input of RFC 6376 3.7: the signed fields canonicalized, then the signature field without its CRLF. */
export function headerHashInput(signed: readonly RawField[], signatureField: string): Buffer {
  const parts = signed.map((f) => relaxedHeader(f.raw));
  parts.push(relaxedHeader(signatureField).slice(0, -2));
  return Buffer.from(parts.join(''), 'latin1');
}

export { CRLF };
