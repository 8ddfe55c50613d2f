/**
 * Our own copy of mailauth (4.13, the line that runs on Node 20) with relaxed header
 * canonicalization done as RFC 6376 3.4.2 says.
 *
 * The quirk: mailauth canonicalizes a header field (DKIM-Signature h= fields, ARC-Message-Signature,
 * ARC-Seal; tools.js formatRelaxedLine) on a latin1 string with JavaScript's `\s`, which also
 * matches U+00A0, U+000B and U+000C. So the byte 0xA0 (NBSP in latin1, and the second byte of many
 * UTF-8 characters: "à" is C3 A0, "Р" is D0 A0) is turned into a space or trimmed, and a correct
 * signature over such a header field fails. RFC 6376 3.4.2 (and RFC 8617 for ARC) collapse and trim
 * WSP only: SP and HTAB. Its header parser likewise takes a line starting with such a byte for a
 * folded continuation (RFC 5322 2.2.3 folds at WSP only).
 *
 * mailauth's modules take these helpers from tools.js once, when they are loaded (destructuring),
 * so they cannot be replaced afterwards. We load a private copy instead: mailauth's entries are
 * dropped from require.cache, tools.js is loaded fresh and given RFC-conforming `formatRelaxedLine`
 * and `parseHeaders`, then the rest of mailauth is loaded on top of it. A copy someone else loaded
 * before keeps working as it was; later `require('mailauth')` calls get this copy. `selfCheck()`
 * tells whether the fix took (a later mailauth may be laid out differently).
 *
 * The same seam keeps parsed public keys: mailauth's getPublicKey builds a KeyObject from the key
 * record for every signature of every message (a fifth of the verification's CPU in a profile);
 * ours asks the same resolver, then reuses the result for the same record text (bounded).
 */
import { createRequire } from 'node:module';
import { dirname, join, sep } from 'node:path';

const require = createRequire(import.meta.url);

/** A header field as mailauth's parser gives it. */
export interface ParsedField {
  readonly key: string | null;
  readonly casedKey?: string;
  readonly line: Buffer;
}

/** mailauth's header section: the fields in order and the bytes. */
export interface ParsedHeaders {
  readonly parsed: ParsedField[];
  readonly original: Buffer;
}

/** The parts of mailauth this module hands out (untyped JavaScript underneath). */
export interface Mailauth {
  readonly spf: (opts: Record<string, unknown>) => Promise<any>;
  readonly dmarc: (opts: Record<string, unknown>) => Promise<any>;
  readonly arc: (data: unknown, opts: Record<string, unknown>) => Promise<any>;
  readonly createSeal: (input: false, data: Record<string, unknown>) => Promise<{ headers: (string | undefined)[] }>;
  /** The streaming DKIM verifier (lib/dkim/dkim-verifier.js). */
  readonly DkimVerifier: new (opts: Record<string, unknown>) => DkimVerifierLike;
  readonly parseHeaders: (b: Buffer) => ParsedHeaders;
}

/**
 * mailauth's DkimVerifier driven hook by hook: `messageHeaders` and `nextChunk` do all their work
 * before they return (no await inside; test/unit/auth checks it), `finalChunk` looks up the keys.
 */
export interface DkimVerifierLike {
  messageHeaders(h: ParsedHeaders): Promise<void>;
  nextChunk(chunk: Buffer): Promise<void>;
  finalChunk(): Promise<void>;
  readonly results: any[];
  readonly headerFrom: string[];
  readonly arc: any;
  readonly headers: ParsedHeaders | false;
  /** After messageHeaders: every DKIM-Signature (type DKIM) and the newest ARC set's AMS / AS, parsed; `skip` when unusable. */
  readonly signatureHeaders?: readonly { type?: string; skip?: boolean; signingDomain?: string; selector?: string; algorithm?: string }[];
}

/** RFC 6376 3.4.2 "relaxed" for one header field: name lower case, unfolded, WSP runs as one SP, no WSP around the colon or at the end. */
export function relaxedHeaderLine(line: Buffer | string | undefined, suffix?: string): Buffer {
  const s = (typeof line === 'string' ? line : (line ?? Buffer.alloc(0)).toString('latin1'))
    .replace(/\r?\n/g, '')
    .replace(/^([^:]*):[ \t]*/, (_m, k: string) => k.toLowerCase().replace(/^[ \t]+|[ \t]+$/g, '') + ':')
    .replace(/[ \t]+/g, ' ')
    .replace(/^[ \t]+|[ \t]+$/g, '');
  return Buffer.from(s + (suffix ?? ''), 'latin1');
}

/** Splits a header section into fields the way mailauth's parser does, folding only at SP / HTAB lines. */
export function parseHeaderSection(buf: Buffer): ParsedHeaders {
  const rows = buf.toString('latin1').replace(/[\r\n]+$/, '').split(/\r?\n/);
  const joined: string[] = [];
  for (const row of rows) {
    if (joined.length && /^[ \t]/.test(row)) joined[joined.length - 1] += '\r\n' + row;
    else joined.push(row);
  }
  const parsed = joined.map((row): ParsedField => {
    const m = /^[^:]+/.exec(row);
    const casedKey = m ? m[0].replace(/^[ \t]+|[ \t]+$/g, '') : undefined;
    return { key: casedKey !== undefined ? casedKey.toLowerCase() : null, ...(casedKey !== undefined ? { casedKey } : {}), line: Buffer.from(row, 'latin1') };
  });
  return { parsed, original: buf };
}

let loaded: Mailauth | undefined;

/** Parsed key records kept at most (a few hundred bytes and a KeyObject each). */
const KEY_CACHE_ENTRIES = 2000;

type GetPublicKey = (type: string, name: string, minBitLength: number | undefined, resolver: (n: string, t: string) => Promise<unknown>) => Promise<unknown>;

/**
 * Wraps mailauth's getPublicKey: the TXT lookup still goes through the given resolver each time
 * (so DNS changes and errors are seen as before), the parsing only when the record text is new.
 */
function cachedKeys(original: GetPublicKey): GetPublicKey {
  const cache = new Map<string, unknown>();
  return async (type, name, minBitLength, resolver) => {
    if (typeof resolver !== 'function') return original(type, name, minBitLength, resolver);
    const list = await resolver(name, 'TXT');
    const k = `${type}\0${minBitLength ?? ''}\0${JSON.stringify(list)}`;
    const hit = cache.get(k);
    if (hit) return hit;
    const res = await original(type, name, minBitLength, async () => list);
    cache.set(k, res);
    if (cache.size > KEY_CACHE_ENTRIES) cache.delete(cache.keys().next().value as string);
    return res;
  };
}

/** The patched copy of mailauth, loaded on first use. @throws when mailauth is not installed. */
export function mailauth(): Mailauth {
  if (loaded) return loaded;
  const lib = join(dirname(require.resolve('mailauth/package.json')), 'lib');
  for (const k of Object.keys(require.cache)) if (k.startsWith(lib + sep)) delete require.cache[k];
  const tools = require(join(lib, 'tools.js')) as Record<string, unknown>;
  tools.formatRelaxedLine = relaxedHeaderLine;
  tools.parseHeaders = parseHeaderSection;
  tools.getPublicKey = cachedKeys(tools.getPublicKey as GetPublicKey);
  const api = require(join(lib, 'mailauth.js')) as Record<string, any>;
  const { DkimVerifier } = require(join(lib, 'dkim', 'dkim-verifier.js')) as { DkimVerifier: Mailauth['DkimVerifier'] };
  loaded = { spf: api.spf, dmarc: api.dmarc, arc: api.arc, createSeal: api.createSeal, DkimVerifier, parseHeaders: parseHeaderSection };
  return loaded;
}

/**
 * True when the loaded copy canonicalizes a field holding 0xA0 as RFC 6376 says (mailauth's DKIM
 * header canonicalization is the one that signs and verifies). Never throws.
 */
export function selfCheck(): boolean {
  try {
    mailauth();
    const lib = join(dirname(require.resolve('mailauth/package.json')), 'lib');
    const { generateCanonicalizedHeader } = require(join(lib, 'dkim', 'header', 'index.js')) as { generateCanonicalizedHeader: (...a: unknown[]) => { canonicalizedHeader: Buffer } };
    const line = Buffer.from('Subject: caf\xe9\xa0 \xa0', 'latin1');
    const { canonicalizedHeader } = generateCanonicalizedHeader('DKIM', { keys: 'Subject', headers: [{ key: 'subject', line }] }, {
      signatureHeaderLine: 'DKIM-Signature: v=1; a=rsa-sha256; d=x.test; s=s; h=subject; bh=x; b=',
      canonicalization: 'relaxed/relaxed',
    });
    return canonicalizedHeader.toString('latin1').startsWith('subject:caf\xe9\xa0 \xa0\r\n');
  } catch {
    return false;
  }
}
