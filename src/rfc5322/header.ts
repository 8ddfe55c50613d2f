/**
 * Reading the header section of a message (RFC 5322 2.1, 2.2, 3.6).
 *
 * Owns: splitting header section from body (the first empty line, CRLF), unfolding (2.2.3),
 * finding header fields by name (case-insensitive, 1.2.2) and counting Received trace fields
 * (3.6.7, RFC 5321 6.3 loop detection). Works on bytes as latin1 strings so no byte changes.
 */

/** Where the header section ends in a message buffer. */
export interface HeaderBounds {
  /** Offset just after the CRLF of the last header line (where new fields are inserted). */
  readonly headerEnd: number;
  /** Offset of the first body byte (after the empty line). */
  readonly bodyStart: number;
}

/** One header field as found in the message. */
export interface HeaderField {
  /** Field name as written (case preserved). */
  readonly name: string;
  /** Unfolded value: everything after the colon, CRLFs of folding removed (2.2.3). */
  readonly value: string;
  /** The field exactly as written, including folding, without the final CRLF. */
  readonly raw: string;
}

const CRLF = Buffer.from('\r\n');
const CRLFCRLF = Buffer.from('\r\n\r\n');
const FIELD_NAME = /^[\x21-\x39\x3b-\x7e]+$/;

/**
 * Finds the empty line that ends the header section (RFC 5322 2.1).
 * @param buf message bytes with CRLF line endings.
 * @returns offsets, or undefined when the buffer holds no empty line (no separator yet or at all).
 */
export function findHeaderEnd(buf: Buffer): HeaderBounds | undefined {
  if (buf.length >= 2 && buf[0] === 0x0d && buf[1] === 0x0a) return { headerEnd: 0, bodyStart: 2 };
  const i = buf.indexOf(CRLFCRLF);
  if (i < 0) return undefined;
  return { headerEnd: i + 2, bodyStart: i + 4 };
}

/**
 * The header section of a message: bytes up to (not including) the empty line. The whole buffer
 * when it has no empty line.
 */
export function headerSection(buf: Buffer): Buffer {
  const b = findHeaderEnd(buf);
  return b ? buf.subarray(0, b.headerEnd) : buf;
}

/** Removes folding (CRLF followed by WSP) from a field body (RFC 5322 2.2.3). */
export function unfold(s: string): string {
  return s.replace(/\r\n(?=[ \t])/g, '');
}

/**
 * Parses a header section into fields.
 * @param header header section bytes (or latin1 string), CRLF line endings; a trailing empty
 *               line is allowed. Lines that are neither a field nor a continuation are skipped.
 */
export function parseHeaderFields(header: Buffer | string): HeaderField[] {
  const text = typeof header === 'string' ? header : header.toString('latin1');
  const out: HeaderField[] = [];
  let cur: string[] | undefined;
  const flush = (): void => {
    if (!cur) return;
    const raw = cur.join('\r\n');
    const colon = raw.indexOf(':');
    out.push({ name: raw.slice(0, colon).trimEnd(), value: unfold(raw.slice(colon + 1)), raw });
    cur = undefined;
  };
  for (const line of text.split('\r\n')) {
    if (line === '') break;
    if ((line[0] === ' ' || line[0] === '\t') && cur) {
      cur.push(line);
      continue;
    }
    flush();
    const colon = line.indexOf(':');
    if (colon > 0 && FIELD_NAME.test(line.slice(0, colon).trimEnd())) cur = [line];
  }
  flush();
  return out;
}

/**
 * True when every line of `header` is a header field or a continuation line (RFC 5322 2.2, 3.6.8),
 * i.e. fields may safely be appended after it. An empty header section is well-formed.
 */
export function isWellFormedHeader(header: Buffer | string): boolean {
  const text = typeof header === 'string' ? header : header.toString('latin1');
  const lines = text.split('\r\n');
  if (lines[lines.length - 1] === '') lines.pop();
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line.includes('\r') || line.includes('\n')) return false;
    if (line[0] === ' ' || line[0] === '\t') {
      if (i === 0) return false;
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0 || !FIELD_NAME.test(line.slice(0, colon).trimEnd())) return false;
  }
  return true;
}

/** All fields named `name` (case-insensitive), in order. */
export function getHeaderFields(fields: readonly HeaderField[], name: string): HeaderField[] {
  const n = name.toLowerCase();
  return fields.filter((f) => f.name.toLowerCase() === n);
}

/** True when a field named `name` exists (case-insensitive). */
export function hasHeaderField(fields: readonly HeaderField[], name: string): boolean {
  return getHeaderFields(fields, name).length > 0;
}

/** Number of Received trace fields (RFC 5322 3.6.7; RFC 5321 6.3 counts them to detect loops). */
export function countReceived(header: Buffer | string): number {
  return getHeaderFields(parseHeaderFields(header), 'received').length;
}

/** True when the buffer ends with CRLF (complete last line). */
export function endsWithCrlf(buf: Buffer): boolean {
  return buf.length >= 2 && buf.subarray(buf.length - 2).equals(CRLF);
}

/**
 * The header section without the fields whose name matches `drop` (continuation lines go with
 * their field). Other bytes are kept exactly. @param header header section bytes, CRLF lines.
 * @returns `header` itself when nothing matched.
 */
export function withoutFields(header: Buffer, drop: (lowerName: string) => boolean): Buffer {
  return withoutFieldsWhere(header, (name) => drop(name));
}

/**
 * Like `withoutFields`, with the field's unfolded value (everything after the colon, RFC 5322
 * 2.2.3) given to `drop` too. @returns `header` itself when nothing matched.
 */
export function withoutFieldsWhere(header: Buffer, drop: (lowerName: string, value: string) => boolean): Buffer {
  const lines = header.toString('latin1').split('\r\n');
  let changed = false;
  const kept: string[] = [];
  for (let i = 0; i < lines.length;) {
    let j = i + 1;
    while (j < lines.length && (lines[j]![0] === ' ' || lines[j]![0] === '\t')) j++;
    const first = lines[i]!;
    const colon = first.indexOf(':');
    const group = lines.slice(i, j);
    // A line that is no field (no colon) is judged by all of it: "X-Postline-Tags" alone goes too.
    const name = (colon > 0 ? first.slice(0, colon).trimEnd() : first).toLowerCase();
    if (first !== '' && drop(name, colon > 0 ? group.join('').slice(colon + 1) : '')) changed = true;
    else kept.push(...group);
    i = j;
  }
  return changed ? Buffer.from(kept.join('\r\n'), 'latin1') : header;
}
