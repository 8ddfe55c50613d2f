/**
 * The tracking rewrite of one text/html part, as it streams (a body-rewrite.ts part filter):
 * the href of every <a> element that is an absolute http or https URL becomes a click-tracking URL,
 * and the open pixel goes before the first </body> (or at the end of the part).
 *
 * HTML facts used (WHATWG HTML, "tokenization" and "URL parsing"; no full parser): markup starts at
 * "<"; comments ("<!-- ... -->") and the contents of <script> and <style> are not markup, so nothing
 * in them is rewritten (Outlook's conditional comments stay as written); an attribute value may be
 * double-quoted, single-quoted or bare; character references in it are decoded (numeric ones, and
 * amp, lt, gt, quot, apos, nbsp) before the URL is parsed, and the value written back is our own
 * URL, HTML-escaped. Only the href value changes: every other byte of a tag stays.
 *
 * Input and output are latin1 strings (one character per byte, body-rewrite.ts). A URL with bytes
 * over 0x7F is read as UTF-8 when the part's charset is UTF-8, US-ASCII or absent; in another
 * charset such a link is left alone. Bounded: a tag longer than MAX_TAG bytes passes unchanged, and
 * at most `maxLinks` links of a message are rewritten (the rest stay as they are).
 */
import type { HtmlPartFilter } from '../cleanup/body-rewrite.js';

/** Longest <a ...> tag looked into, bytes; a longer one passes unchanged. */
export const MAX_TAG = 16 * 1024;
/** Longest URL rewritten, characters. */
export const MAX_URL = 4096;

/** What one message's link rewrite does. */
export interface LinkRewriteOptions {
  /** The tracking URL standing for an original absolute http(s) URL (already normalised); undefined leaves the link. */
  readonly click?: (url: string) => string | undefined;
  /** The pixel's HTML, for this part; absent: no pixel. */
  readonly pixel?: string;
  /** The part's charset (lower case), when given. */
  readonly charset: string | undefined;
  /** Counts the links rewritten across the message's parts; at most `max`. */
  readonly budget: { used: number; readonly max: number };
}

type State = 'text' | 'comment' | 'raw';
const utf8 = new TextDecoder('utf-8', { fatal: true });
const NAMED: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: '\u00a0' };

/** Decodes the character references of an attribute value (WHATWG HTML 13.2.5.72, the common ones). */
export function decodeAttribute(v: string): string {
  return v.replace(/&(#[xX][0-9a-fA-F]{1,6}|#[0-9]{1,7}|[a-zA-Z]{2,6})(;?)/g, (all, ref: string, semi: string, at: number, s: string) => {
    if (ref.startsWith('#')) {
      const n = ref[1] === 'x' || ref[1] === 'X' ? parseInt(ref.slice(2), 16) : parseInt(ref.slice(1), 10);
      return n > 0 && n <= 0x10ffff && !(n >= 0xd800 && n <= 0xdfff) ? String.fromCodePoint(n) : '\ufffd';
    }
    const named = Object.hasOwn(NAMED, ref) ? NAMED[ref] : undefined;
    if (named === undefined) return all;
    // Without ";", a reference in an attribute followed by "=" or an alphanumeric stays literal.
    if (!semi && /[=A-Za-z0-9]/.test(s[at + all.length] ?? '')) return all;
    return named;
  });
}

/** Escapes a value for a double-quoted attribute. */
export function escapeAttribute(v: string): string {
  return v.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** The end of the tag starting at `from` ("<"), quotes of attribute values respected; -1 when not within `max` characters of `s`. */
function tagEnd(s: string, from: number, max: number): number {
  const stop = Math.min(s.length, from + max + 1);
  let i = from + 1;
  while (i < stop) {
    const c = s[i]!;
    if (c === '>') return i;
    if (c === '=') {
      let j = i + 1;
      while (j < stop && (s[j] === ' ' || s[j] === '\t' || s[j] === '\n' || s[j] === '\r' || s[j] === '\f')) j++;
      if (j >= stop) return -1;
      if (s[j] === '"' || s[j] === "'") {
        const close = s.indexOf(s[j]!, j + 1);
        if (close < 0 || close >= stop) return -1;
        i = close + 1;
        continue;
      }
      i = j;
      continue;
    }
    i++;
  }
  return -1;
}

/** A part filter that rewrites links and places the pixel (one per text/html part). */
export class LinkRewriter implements HtmlPartFilter {
  private pending = '';
  private state: State = 'text';
  /** The element whose contents are raw text ("script" / "style"). */
  private rawName = '';
  private pixelDone: boolean;

  constructor(private readonly o: LinkRewriteOptions) {
    this.pixelDone = o.pixel === undefined;
  }

  write(text: string): string {
    this.pending += text;
    return this.run(false);
  }

  end(): string {
    let out = this.run(true);
    if (!this.pixelDone) {
      out += this.o.pixel!;
      this.pixelDone = true;
    }
    return out;
  }

  private run(final: boolean): string {
    const s = this.pending;
    let out = '';
    let i = 0;
    while (i < s.length) {
      if (this.state === 'comment') {
        const e = s.indexOf('-->', i);
        if (e < 0) {
          const keep = final ? s.length : Math.max(i, s.length - 2);
          out += s.slice(i, keep);
          i = keep;
          break;
        }
        out += s.slice(i, e + 3);
        i = e + 3;
        this.state = 'text';
        continue;
      }
      if (this.state === 'raw') {
        const close = '</' + this.rawName;
        const e = s.toLowerCase().indexOf(close, i);
        if (e < 0) {
          const keep = final ? s.length : Math.max(i, s.length - close.length);
          out += s.slice(i, keep);
          i = keep;
          break;
        }
        out += s.slice(i, e);
        i = e;
        this.state = 'text';
        // the closing tag is markup again: handled below as any other "<"
      }
      const lt = s.indexOf('<', i);
      if (lt < 0) {
        out += s.slice(i);
        i = s.length;
        break;
      }
      out += s.slice(i, lt);
      i = lt;
      if (!final && s.length - lt < 9) break; // too little to tell what starts here
      const head = s.slice(lt, lt + 9).toLowerCase();
      if (head.startsWith('<!--')) {
        out += '<!--';
        i = lt + 4;
        this.state = 'comment';
        continue;
      }
      const raw = /^<(script|style)[\s>/]/.exec(head);
      if (raw) {
        // Its contents are text up to its end tag; the rest of the start tag goes out as it is.
        this.rawName = raw[1]!;
        out += s.slice(lt, lt + 1 + raw[1]!.length);
        i = lt + 1 + raw[1]!.length;
        this.state = 'raw';
        continue;
      }
      if (/^<\/body[\s>/]/.test(head) && !this.pixelDone) {
        out += this.o.pixel!;
        this.pixelDone = true;
        out += '<';
        i = lt + 1;
        continue;
      }
      if (/^<a[\s>/]/.test(head)) {
        const e = tagEnd(s, lt, MAX_TAG);
        if (e < 0) {
          if (!final && s.length - lt <= MAX_TAG) break; // wait for the rest of the tag
          out += '<'; // longer than MAX_TAG (or never closed): left as it is
          i = lt + 1;
          continue;
        }
        out += this.anchor(s.slice(lt, e + 1));
        i = e + 1;
        continue;
      }
      out += '<';
      i = lt + 1;
    }
    this.pending = s.slice(i);
    return out;
  }

  /** The <a ...> tag with its href rewritten, or as it was. */
  private anchor(tag: string): string {
    if (!this.o.click || this.o.budget.used >= this.o.budget.max) return tag;
    const re = /([^\s"'>/=]+)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s"'=<>`]+))?/g;
    re.lastIndex = 2;
    for (let m = re.exec(tag); m; m = re.exec(tag)) {
      if (m[1]!.toLowerCase() !== 'href') continue;
      const value = m[2];
      if (value === undefined) return tag;
      const quoted = value.startsWith('"') || value.startsWith("'");
      const url = this.original(quoted ? value.slice(1, -1) : value);
      const tracked = url ? this.o.click(url) : undefined;
      if (!tracked) return tag;
      this.o.budget.used++;
      const start = m.index + m[0].length - value.length;
      return tag.slice(0, start) + '"' + escapeAttribute(tracked) + '"' + tag.slice(start + value.length);
    }
    return tag;
  }

  /** The absolute http(s) URL an href value (latin1 bytes) stands for, normalised; undefined for any other. */
  private original(bytes: string): string | undefined {
    let text = bytes;
    if (/[\x80-\xff]/.test(bytes)) {
      const cs = this.o.charset;
      if (cs && !/^(utf-?8|us-ascii|ascii)$/.test(cs)) return undefined;
      try {
        text = utf8.decode(Buffer.from(bytes, 'latin1'));
      } catch {
        return undefined;
      }
    }
    const decoded = decodeAttribute(text);
    if (!/^[\x00-\x20]*https?:/i.test(decoded)) return undefined;
    let u: URL;
    try {
      u = new URL(decoded);
    } catch {
      return undefined;
    }
    if ((u.protocol !== 'http:' && u.protocol !== 'https:') || u.href.length > MAX_URL || u.href.includes('\0')) return undefined;
    return u.href;
  }
}
