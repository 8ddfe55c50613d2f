/**
 * A Bloom filter of suppression list keys ("scope NUL address"): the in-memory index that answers
 * the common case of the RCPT check, "not on the list", without a database read. It never says no
 * for a key that was added (no false negatives); it may say "maybe" for one that was not (about
 * 1 % at its capacity, with 10 bits and 7 probes per key), and then the store reads. Keys are
 * never taken out (a removed entry leaves its bits: a "maybe" the read answers), so the store
 * builds a new filter when adds or removals have gone well past what it was sized for.
 *
 * Hashing: 32-bit FNV-1a over the UTF-16 code units, and a second hash from it (murmur3's
 * finaliser), combined by double hashing (Kirsch and Mitzenmacher, "Less hashing, same
 * performance", 2006).
 */

/** Bits per key, and probes per key (k = bits * ln 2 ~ 7). */
const BITS_PER_KEY = 10;
const PROBES = 7;

/** 32-bit FNV-1a of a string's UTF-16 code units, continued from state `h` (the offset basis: from the start). */
function fnv1a(s: string, h = 0x811c9dc5): number {
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** murmur3's 32-bit finaliser: a second, independent-enough hash of the first. */
function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export class KeyFilter {
  private readonly bits: Uint32Array;
  private readonly m: number;
  /** Keys added. */
  size = 0;

  /** @param capacity keys it is sized for (the false-positive rate grows past it) */
  constructor(readonly capacity: number) {
    this.m = Math.max(1024, Math.ceil(Math.max(1, capacity) * BITS_PER_KEY / 32) * 32);
    this.bits = new Uint32Array(this.m / 32);
  }

  /** Bytes the filter holds. */
  get bytes(): number {
    return this.bits.byteLength;
  }

  /** The hash state after `scope` and NUL, for mightHaveAfter (a check asks four keys of two scopes). */
  static prefix(scope: string): number {
    return fnv1a('\0', fnv1a(scope)) >>> 0;
  }

  add(key: string): void {
    const h1 = fnv1a(key);
    const h2 = fmix(h1) | 1;
    for (let i = 0; i < PROBES; i++) {
      const b = ((h1 + Math.imul(i, h2)) >>> 0) % this.m;
      this.bits[b >>> 5]! |= 1 << (b & 31);
    }
    this.size++;
  }

  /** False: `key` was never added. True: it may have been. */
  mightHave(key: string): boolean {
    return this.probe(fnv1a(key));
  }

  /** mightHave(scope + NUL + rest) with `prefix` = KeyFilter.prefix(scope), without building the key. */
  mightHaveAfter(prefix: number, rest: string): boolean {
    return this.probe(fnv1a(rest, prefix));
  }

  private probe(h1: number): boolean {
    const h2 = fmix(h1) | 1;
    for (let i = 0; i < PROBES; i++) {
      const b = ((h1 + Math.imul(i, h2)) >>> 0) % this.m;
      if ((this.bits[b >>> 5]! & (1 << (b & 31))) === 0) return false;
    }
    return true;
  }
}
