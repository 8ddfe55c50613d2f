/**
 * Signed per-recipient return paths (variable envelope return path): the reverse-path of mail we
 * send becomes `PREFIX-QUEUEID-IDX-MAC@bounces.domain`, so an asynchronous bounce or an
 * auto-reply sent to it names the queue entry and recipient it is about, and a forged one (a MAC
 * that does not match) is ignored. RFC 5321 4.5.5 (bounces go to the reverse-path); RFC 3464.
 *
 * The local part is lower case letters, digits and "-" only (a dot-atom, safe through MTAs that
 * fold case), at most 64 octets (RFC 5321 4.5.3.1.1). The MAC is the first 10 bytes of
 * HMAC-SHA256(key, "rp1|QUEUEID|IDX") in lower-case base-32.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { splitAddress } from '../core/envelope.js';
import type { MessageOrigin } from '../core/session.js';

const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz'; // Crockford base-32, lower case

function base32(bytes: Buffer): string {
  let out = '';
  let acc = 0;
  let bits = 0;
  for (const b of bytes) {
    acc = (acc << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += ALPHABET[(acc >>> (bits - 5)) & 31];
      bits -= 5;
    }
    acc &= (1 << bits) - 1;
  }
  if (bits > 0) out += ALPHABET[(acc << (5 - bits)) & 31];
  return out;
}

/** What a return path names: the queue entry and the recipient's index in it. */
export interface ReturnPathTarget {
  readonly queueId: string;
  readonly idx: number;
}

/** Makes and reads the signed return paths of one bounce domain. */
export class ReturnPaths {
  private readonly domain: string;
  private readonly prefix: string;

  /**
   * @param o.domain the bounce domain ("bounces.example.test"), whose mail the feedback consumer reads
   * @param o.key the HMAC key (at least 16 bytes)
   * @param o.prefix the local part's first word ("b")
   */
  constructor(private readonly o: { readonly domain: string; readonly key: Buffer; readonly prefix?: string }) {
    this.domain = o.domain.toLowerCase().replace(/\.$/, '');
    this.prefix = (o.prefix ?? 'b').toLowerCase();
  }

  private mac(queueId: string, idx: number): string {
    return base32(createHmac('sha256', this.o.key).update(`rp1|${queueId.toUpperCase()}|${idx}`).digest().subarray(0, 10));
  }

  /** The return path for recipient `idx` of message `queueId` ("b-01jd3k7q2mx4t9r1zb-0-<mac>@bounces.example.test"). */
  encode(queueId: string, idx: number): string {
    return `${this.prefix}-${queueId.toLowerCase()}-${idx.toString(36)}-${this.mac(queueId, idx)}@${this.domain}`;
  }

  /** True when `address` is at the bounce domain (whatever its local part). */
  isOurs(address: string): boolean {
    return splitAddress(address).domain.toLowerCase().replace(/\.$/, '') === this.domain;
  }

  /**
   * The queue entry and recipient a return path names, or undefined when `address` is not one of
   * ours or its MAC does not match (a forged or mangled address). Case-insensitive.
   */
  decode(address: string): ReturnPathTarget | undefined {
    if (!this.isOurs(address)) return undefined;
    const local = splitAddress(address).local.toLowerCase();
    const m = /^([a-z0-9]+)-([0-9a-z]{18})-([0-9a-z]{1,4})-([0-9a-z]{16})$/.exec(local);
    if (!m || m[1] !== this.prefix) return undefined;
    const queueId = m[2]!.toUpperCase();
    const idx = parseInt(m[3]!, 36);
    const want = Buffer.from(this.mac(queueId, idx));
    const got = Buffer.from(m[4]!);
    return want.length === got.length && timingSafeEqual(want, got) ? { queueId, idx } : undefined;
  }
}

/**
 * True for mail we send for our own users, which gets signed return paths: the HTTP API, the
 * sendmail command, authenticated SMTP, and SMTP from a trusted network (`trusted`). Not for
 * generated DSNs (null reverse-path) nor for mail relayed or received from outside.
 */
export function isOwnMail(origin: MessageOrigin | undefined, trusted: (clientAddress: string) => boolean): boolean {
  if (!origin) return false;
  const kind = origin.kind as string;
  if (kind === 'api' || kind === 'local') return true;
  if (kind !== 'smtp') return false;
  return origin.authUser !== undefined || (origin.clientAddress !== undefined && trusted(origin.clientAddress));
}
