/**
 * The Authentication-Results header field (RFC 8601): writing ours, and recognising one that
 * claims our authserv-id (RFC 8601 5: a border MTA removes those, they are forged or stale).
 *
 * Owns: the field's text. Only printable ASCII goes out (a comment's other characters become "?";
 * a property value that is not ASCII is left out unless the message is SMTPUTF8, RFC 8601 2.2 with
 * RFC 6532), lines are folded between results, so the field is always one valid header field.
 */

/** One result: "method=result (comment) ptype.property=value ...". */
export interface ResInfo {
  readonly method: string;
  readonly result: string;
  readonly comment?: string;
  /** [ptype.property, value] pairs, e.g. ['smtp.mailfrom', 'a@example.com']. */
  readonly props?: readonly (readonly [string, string | undefined])[];
}

const TOKEN = /^[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+$/; // RFC 2045 token (no tspecials, no space, ASCII)
const ADDRISH = /^[!#$%&'*+\-./0-9=?A-Z^_`a-z{|}~]*@[A-Za-z0-9.-]+$/; // [local-part] "@" domain-name, unquoted (RFC 8601 2.2 pvalue)
const MAX_COMMENT = 200;

/** A comment's text: printable ASCII only, parentheses and backslashes escaped, bounded. */
export function commentText(s: string): string {
  const clean = s.replace(/[\r\n\t]+/g, ' ').replace(/[^\x20-\x7e]/g, '?').replace(/ {2,}/g, ' ').trim();
  const cut = clean.length > MAX_COMMENT ? clean.slice(0, MAX_COMMENT - 3) + '...' : clean;
  return cut.replace(/[\\()]/g, (c) => `\\${c}`);
}

/**
 * A property value: as is when it is a token or an address, else a quoted-string; undefined when
 * it holds control characters, or non-ASCII while `utf8` is false.
 */
export function propValue(v: string, utf8 = false): string | undefined {
  if (!v || /[\x00-\x1f\x7f]/.test(v)) return undefined;
  if (/[^\x00-\x7f]/.test(v) && !utf8) return undefined;
  if (v.includes('@') ? ADDRISH.test(v) && !v.startsWith('.') : TOKEN.test(v)) return v;
  return `"${v.replace(/["\\]/g, (c) => `\\${c}`)}"`;
}

/** The authserv-id as written: a token as is, else quoted (RFC 8601 2.2: value). */
function idText(id: string): string {
  return TOKEN.test(id) ? id : `"${id.replace(/[^\x20-\x7e]/g, '?').replace(/["\\]/g, (c) => `\\${c}`)}"`;
}

/** One resinfo as text. */
export function resinfoText(r: ResInfo, utf8 = false): string {
  const parts = [`${r.method}=${r.result}`];
  if (r.comment) parts.push(`(${commentText(r.comment)})`);
  for (const [k, v] of r.props ?? []) {
    const pv = v === undefined ? undefined : propValue(v, utf8);
    if (pv !== undefined) parts.push(`${k}=${pv}`);
  }
  return parts.join(' ');
}

/**
 * The field value after "Authentication-Results:": " authserv-id;\r\n resinfo;\r\n resinfo" (no
 * CRLF at the end); "authserv-id; none" when there are no results (RFC 8601 2.2).
 */
export function authResultsValue(authservId: string, results: readonly ResInfo[], utf8 = false): string {
  if (!results.length) return ` ${idText(authservId)}; none`;
  return ` ${idText(authservId)};\r\n ` + results.map((r) => resinfoText(r, utf8)).join(';\r\n ');
}

/** The whole field with its CRLF. */
export function authResultsField(authservId: string, results: readonly ResInfo[], utf8 = false): string {
  return `Authentication-Results:${authResultsValue(authservId, results, utf8)}\r\n`;
}

/** Removes RFC 5322 comments (nested, bounded) from the start of a value. */
function stripLeadingCfws(v: string): string {
  let s = v.replace(/^[ \t\r\n]+/, '');
  for (let guard = 0; guard < 20 && s.startsWith('('); guard++) {
    let depth = 0;
    let i = 0;
    for (; i < s.length; i++) {
      const c = s[i];
      if (c === '\\') { i++; continue; }
      if (c === '(') depth++;
      else if (c === ')' && --depth === 0) break;
    }
    s = s.slice(i + 1).replace(/^[ \t\r\n]+/, '');
  }
  return s;
}

/**
 * The authserv-id an Authentication-Results value claims (RFC 8601 2.2: the first item, a token or
 * quoted-string, before an optional version and ";"), lower case; undefined when there is none.
 */
export function authservIdOf(value: string): string | undefined {
  const s = stripLeadingCfws(value);
  if (s.startsWith('"')) {
    const m = /^"((?:[^"\\]|\\.)*)"/.exec(s);
    return m ? m[1]!.replace(/\\(.)/g, '$1').toLowerCase() : undefined;
  }
  const m = /^[^\s;()"]+/.exec(s);
  return m ? m[0].toLowerCase() : undefined;
}

/** True when the Authentication-Results value claims `authservId` (compared case-insensitively, RFC 8601 2.5). */
export function claimsAuthservId(value: string, authservId: string): boolean {
  return authservIdOf(value) === authservId.toLowerCase();
}
