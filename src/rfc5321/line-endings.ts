/**
 * Line endings of BDAT content (RFC 3030 with RFC 5321 2.3.8), across chunk boundaries. DATA gets
 * the same rules from the DATA reader; this keeps BDAT from carrying SMTP smuggling sequences
 * ("\r.\r", "\n.\n") to a next hop, which would receive the message as DATA.
 *
 * - A bare CR (not followed by LF) is refused in every mode.
 * - A bare LF (not preceded by CR) is refused in `reject` mode; in `normalize` mode a CR is added
 *   before it, so the stored message has CRLF lines only (a deviation from RFC 5321 2.3.8 for
 *   clients that send LF-only text, like Postfix's smtpd_forbid_bare_newline = normalize).
 */
import type { BareNewlineMode } from './data-reader.js';
import { Pieces } from './pieces.js';

const CR = Buffer.from('\r');

/** Feeds chunks in order; `error` is set at the first refused bare CR or LF and stays set. */
export class LineEndingCheck {
  private prevCr = false;
  private readonly out = new Pieces();
  error: 'bareLf' | 'bareCr' | undefined;

  /** @param mode what a bare LF gets (default 'reject'). */
  constructor(private readonly mode: BareNewlineMode = 'reject') {}

  /** True while no bare line ending was refused. */
  get ok(): boolean {
    return this.error === undefined;
  }

  /**
   * Checks (and in normalize mode repairs) one chunk. Cost: two indexOf scans per chunk.
   * @returns the bytes to store: `[chunk]`, slices of it with added CRs or one copy when there
   *          would be more than a few pieces; [] once `error` is set.
   */
  feed(chunk: Buffer): Buffer[] {
    if (this.error || chunk.length === 0) return [];
    const n = chunk.length;
    if (this.prevCr && chunk[0] !== 0x0a) return this.fail('bareCr');
    for (let i = chunk.indexOf(0x0d); i >= 0; i = chunk.indexOf(0x0d, i + 1)) {
      if (i + 1 < n && chunk[i + 1] !== 0x0a) return this.fail('bareCr');
    }
    const out = this.out;
    out.reset(chunk);
    let runStart = 0;
    for (let i = chunk.indexOf(0x0a); i >= 0; i = chunk.indexOf(0x0a, i + 1)) {
      const crBefore = i > 0 ? chunk[i - 1] === 0x0d : this.prevCr;
      if (crBefore) continue;
      if (this.mode === 'reject') return this.fail('bareLf');
      out.run(runStart, i);
      out.insert(CR);
      runStart = i;
    }
    out.run(runStart, n);
    this.prevCr = chunk[n - 1] === 0x0d;
    return out.build();
  }

  /** At the last chunk: a trailing CR without its LF is bare too. Returns `ok`. */
  end(): boolean {
    if (this.prevCr && !this.error) this.error = 'bareCr';
    return this.ok;
  }

  private fail(kind: 'bareLf' | 'bareCr'): Buffer[] {
    this.error = kind;
    return [];
  }
}
