/**
 * Writing header fields (RFC 5322): the date-time format (3.3), Message-ID (3.6.4) and folding of
 * long lines at whitespace (2.2.3, 2.1.1 line length limits).
 *
 * Owns: how Postline spells the Date, Message-ID and folded fields it adds.
 */
import { randomBytes } from 'node:crypto';

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const pad = (n: number, w = 2): string => String(n).padStart(w, '0');

/**
 * Formats a date-time per RFC 5322 3.3, e.g. "Tue, 14 Nov 2023 22:13:20 +0000".
 * @param ms milliseconds since the epoch.
 * @param offsetMinutes zone offset east of UTC in minutes (default 0: "+0000").
 */
export function formatDate(ms: number, offsetMinutes = 0): string {
  const d = new Date(ms + offsetMinutes * 60_000);
  const sign = offsetMinutes < 0 ? '-' : '+';
  const abs = Math.abs(offsetMinutes);
  const zone = `${sign}${pad(Math.floor(abs / 60))}${pad(abs % 60)}`;
  return `${DAYS[d.getUTCDay()]}, ${d.getUTCDate()} ${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()} `
    + `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} ${zone}`;
}

/**
 * Makes a Message-ID (RFC 5322 3.6.4 msg-id, dot-atom-text on both sides):
 * "<QUEUEID.random@hostname>", random = 12 hex digits.
 */
export function makeMessageId(queueId: string, hostname: string): string {
  return `<${queueId}.${randomBytes(6).toString('hex')}@${hostname}>`;
}

/**
 * Folds one unfolded header line ("Name: value") at whitespace so each line is at most `max`
 * characters where whitespace allows (RFC 5322 2.2.3: a CRLF is inserted before a WSP; 2.1.1: 78
 * recommended, 998 hard). Never folds inside a quoted-string, right after the colon, or where the
 * continuation would be only whitespace. Text without usable whitespace stays long.
 * @returns the folded field without a trailing CRLF.
 */
export function foldHeaderLine(line: string, max = 78): string {
  const breaks = foldPoints(line);
  const parts: string[] = [];
  let start = 0;
  let prev = -1;
  for (const c of breaks) {
    if (c - start > max && prev > start) {
      parts.push(line.slice(start, prev));
      start = prev;
    }
    prev = c;
  }
  if (line.length - start > max && prev > start) {
    parts.push(line.slice(start, prev));
    start = prev;
  }
  parts.push(line.slice(start));
  return parts.join('\r\n');
}

/** Offsets of whitespace where a fold may go (see foldHeaderLine). */
function foldPoints(line: string): number[] {
  const colon = line.indexOf(':');
  let i = colon + 1;
  while (i < line.length && (line[i] === ' ' || line[i] === '\t')) i++;
  const out: number[] = [];
  let quoted = false;
  for (; i < line.length; i++) {
    const ch = line[i];
    if (quoted && ch === '\\') { i++; continue; }
    if (ch === '"') quoted = !quoted;
    if (quoted || (ch !== ' ' && ch !== '\t')) continue;
    if (line[i - 1] === ' ' || line[i - 1] === '\t') continue; // fold at the first WSP of a run
    if (line.slice(i).trim() === '') break; // continuation would be only whitespace
    out.push(i);
  }
  return out;
}
