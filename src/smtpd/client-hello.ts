/**
 * The server name a TLS ClientHello asks for (RFC 8446 4.1.2 and 5.1 records, RFC 5246 7.4.1.2,
 * RFC 6066 3 server_name), read from the raw bytes before the handshake starts.
 *
 * Why: node switches the context of a server TLSSocket on SNI by copying one certificate into the
 * connection, so the other key types of the default context stay and win (an ECDSA default over a
 * named RSA certificate). Choosing the context before the TLSSocket exists avoids that, and lets
 * an RSA and an ECDSA certificate serve side by side under every name (tls-context.ts).
 *
 * Owns: parsing only. Anything that is not a well-formed ClientHello gives "no name" (the TLS
 * layer then refuses it as it would anyway); the handshake message may span records (at most
 * MAX_HELLO bytes are looked at).
 */

/** The peek: more bytes needed, or the result (servername absent: none asked for, or unreadable). */
export type ServerNamePeek = { readonly kind: 'more' } | { readonly kind: 'done'; readonly servername?: string };

/** Largest ClientHello looked at, bytes (post-quantum key shares make them 1-2 KiB; 16 KiB is far beyond). */
export const MAX_HELLO = 16 * 1024;

const none: ServerNamePeek = { kind: 'done' };

/**
 * Looks for the host_name of the server_name extension in the ClientHello at the start of `buf`.
 * @returns `more` while the ClientHello is incomplete (and under MAX_HELLO), else the name in
 *   lower case without a trailing dot, or none.
 */
export function peekServerName(buf: Buffer): ServerNamePeek {
  // reassemble the handshake message from consecutive handshake records (type 22)
  const parts: Buffer[] = [];
  let have = 0;
  let at = 0;
  let need = -1;
  while (need < 0 || have < need) {
    if (buf.length < at + 5) return buf.length >= MAX_HELLO ? none : { kind: 'more' };
    if (buf[at] !== 22 || buf[at + 1] !== 3) return none;
    const len = buf.readUInt16BE(at + 3);
    if (len === 0 || len > 16384 + 2048) return none;
    if (buf.length < at + 5 + len) return at + 5 + len > MAX_HELLO ? none : { kind: 'more' };
    parts.push(buf.subarray(at + 5, at + 5 + len));
    have += len;
    at += 5 + len;
    if (need < 0 && have >= 4) {
      const msg = Buffer.concat(parts);
      if (msg[0] !== 1) return none; // not a ClientHello
      need = 4 + msg.readUIntBE(1, 3);
      if (need > MAX_HELLO) return none;
    }
  }
  return { kind: 'done', ...nameIn(Buffer.concat(parts).subarray(4, need)) };
}

/** The server_name host_name in a ClientHello body, when present and well formed. */
function nameIn(b: Buffer): { servername?: string } {
  let i = 2 + 32; // legacy_version, random
  if (i + 1 > b.length) return {};
  i += 1 + b[i]!; // legacy_session_id
  if (i + 2 > b.length) return {};
  i += 2 + b.readUInt16BE(i); // cipher_suites
  if (i + 1 > b.length) return {};
  i += 1 + b[i]!; // legacy_compression_methods
  if (i + 2 > b.length) return {};
  const end = Math.min(b.length, i + 2 + b.readUInt16BE(i));
  i += 2;
  while (i + 4 <= end) {
    const type = b.readUInt16BE(i);
    const len = b.readUInt16BE(i + 2);
    const data = b.subarray(i + 4, i + 4 + len);
    i += 4 + len;
    if (type !== 0 || data.length !== len || len < 2) continue;
    let j = 2; // server_name_list length
    while (j + 3 <= data.length) {
      const nameType = data[j]!;
      const nlen = data.readUInt16BE(j + 1);
      const name = data.subarray(j + 3, j + 3 + nlen);
      j += 3 + nlen;
      if (nameType === 0 && name.length === nlen && nlen > 0 && /^[\x21-\x7e]+$/.test(name.toString('latin1'))) {
        return { servername: name.toString('latin1').toLowerCase().replace(/\.$/, '') };
      }
    }
    return {};
  }
  return {};
}
