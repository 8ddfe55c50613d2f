/**
 * xtext encoding (RFC 3461 section 4): the transport form of ENVID=, ORCPT= and AUTH= values.
 *
 * Owns: encodeXtext / decodeXtext / isXtext. xtext is printable US-ASCII (33..126) except '+' and
 * '=', with any other octet written as "+" followed by two upper-case hex digits. Decoded values are
 * octets; they are returned as UTF-8 strings (invalid UTF-8 is rejected).
 */

const HEX = '0123456789ABCDEF';

/**
 * Encodes a string (as its UTF-8 octets) to xtext (RFC 3461 4).
 * @param value any string; every octet outside 33..126, and '+' and '=', becomes "+HH".
 * @returns the xtext form (ASCII only).
 */
export function encodeXtext(value: string): string {
  let out = '';
  for (const b of Buffer.from(value, 'utf8')) {
    if (b >= 33 && b <= 126 && b !== 0x2b && b !== 0x3d) out += String.fromCharCode(b);
    else out += '+' + HEX[b >> 4] + HEX[b & 15];
  }
  return out;
}

/**
 * Decodes xtext (RFC 3461 4). Strict: a '+' must be followed by two upper-case hex digits, and only
 * characters 33..126 except '=' may appear.
 * @returns the decoded string, or undefined when `text` is not valid xtext or does not decode to UTF-8.
 */
export function decodeXtext(text: string): string | undefined {
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x2b) {
      const h = text.slice(i + 1, i + 3);
      if (!/^[0-9A-F]{2}$/.test(h)) return undefined;
      const b = parseInt(h, 16);
      if (b < 0x20 || b === 0x7f) return undefined; // RFC 3461 4: printable characters only
      bytes.push(b);
      i += 2;
    } else if (c >= 33 && c <= 126 && c !== 0x3d) {
      bytes.push(c);
    } else {
      return undefined;
    }
  }
  const buf = Buffer.from(bytes);
  const s = buf.toString('utf8');
  return Buffer.from(s, 'utf8').equals(buf) ? s : undefined;
}

/** True when `text` is valid xtext (RFC 3461 4). */
export function isXtext(text: string): boolean {
  return decodeXtext(text) !== undefined;
}

/** QCHAR of RFC 6533 3: printable US-ASCII except '+', '=' and '\'. */
const isQchar = (c: number): boolean => c >= 0x21 && c <= 0x7e && c !== 0x2b && c !== 0x3d && c !== 0x5c;

/**
 * Encodes an address as utf-8-addr-xtext (RFC 6533 3), the 7-bit form of a "utf-8" ORCPT: QCHARs
 * stay, every other character becomes "\x{HEX}" (its code point, upper-case hex, at least two
 * digits, no leading zeros beyond that). The result is also valid xtext (RFC 3461 4), so it is safe
 * to send whether or not the server offers SMTPUTF8.
 */
export function encodeUtf8AddrXtext(value: string): string {
  let out = '';
  for (const ch of value) {
    const cp = ch.codePointAt(0)!;
    out += isQchar(cp) ? ch : `\\x{${cp.toString(16).toUpperCase().padStart(2, '0')}}`;
  }
  return out;
}

/**
 * Decodes a "utf-8" ORCPT value (RFC 6533 3: utf-8-addr-xtext, utf-8-addr-unitext), after any
 * RFC 3461 xtext "+HH" escapes: "\x{HEX}" becomes its character.
 * @returns the address, or undefined when an escape is malformed (not 1-6 hex digits, a surrogate,
 *   above U+10FFFF, a control character) or a '\' stands alone.
 */
export function decodeUtf8AddrXtext(text: string): string | undefined {
  const plain = decodeXtext(text);
  if (plain === undefined) return undefined;
  let out = '';
  for (let i = 0; i < plain.length; i++) {
    if (plain[i] !== '\\') { out += plain[i]; continue; }
    const m = /^\\x\{([0-9A-Fa-f]{1,6})\}/.exec(plain.slice(i, i + 11));
    if (!m) return undefined;
    const cp = parseInt(m[1]!, 16);
    if (cp < 0x20 || cp === 0x7f || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return undefined;
    out += String.fromCodePoint(cp);
    i += m[0].length - 1;
  }
  return out;
}
