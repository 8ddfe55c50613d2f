/**
 * DKIM keys: loading the configured private keys, the DNS record that publishes a key, and
 * reading a published record back (RFC 6376 3.6.1 key record tags, 3.6.2.2 TXT strings joined;
 * RFC 8463 3 / 4: Ed25519 keys published as the raw 32-byte public key).
 *
 * Owns: key files (PEM, PKCS#8) under the configuration's paths and `dataDir/dkim/` (keygen).
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { domainToASCII } from 'node:url';
import { PostlineError } from '../core/errors.js';

export type DkimAlgorithm = 'rsa-sha256' | 'ed25519-sha256';

/** One configured key (the `dkim.keys` entries). */
export interface DkimKeyConfig {
  readonly domain: string;
  readonly selector: string;
  readonly algorithm: DkimAlgorithm;
  /** Path of the PEM private key file. */
  readonly privateKey: string;
}

/** A loaded signing key. */
export interface DkimKey {
  /** The signing domain (d=), A-labels, lower case, no final dot. */
  readonly domain: string;
  readonly selector: string;
  readonly algorithm: DkimAlgorithm;
  readonly key: KeyObject;
  /** The p= value this key's DNS record must carry. */
  readonly publicValue: string;
}

/** A key file or key entry that cannot be used; names the file and why. */
export class DkimKeyError extends PostlineError {
  constructor(message: string) {
    super('ERR_DKIM_KEY', message, { temporary: false });
    this.name = 'DkimKeyError';
  }
}

const SELECTOR = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
/** DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410 4); the 32 key bytes follow. */
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/** A domain in the form keys are matched by: A-labels, lower case, no final dot. @throws DkimKeyError. */
export function normalizeDomain(domain: string): string {
  const d = domainToASCII(domain.trim().replace(/\.$/, '')).toLowerCase();
  if (!d || !d.includes('.') && d !== 'localhost' || d.length > 253) throw new DkimKeyError(`bad DKIM domain ${JSON.stringify(domain)}`);
  return d;
}

/** @throws DkimKeyError when `s` is not a DNS selector (RFC 6376 3.1: sub-domain labels). */
export function checkSelector(s: string): string {
  if (!SELECTOR.test(s) || s.length > 63 * 4) throw new DkimKeyError(`bad DKIM selector ${JSON.stringify(s)}`);
  return s.toLowerCase();
}

/** The p= value for a public key: base64 SubjectPublicKeyInfo (RSA) or the raw 32 bytes (Ed25519, RFC 8463 4). */
export function publicValueOf(key: KeyObject, algorithm: DkimAlgorithm): string {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  const der = pub.export({ type: 'spki', format: 'der' });
  if (algorithm === 'ed25519-sha256') return der.subarray(ED25519_SPKI_PREFIX.length).toString('base64');
  return der.toString('base64');
}

/** Checks that a private key fits its algorithm. @throws DkimKeyError. */
function checkKey(key: KeyObject, algorithm: DkimAlgorithm, where: string): void {
  const t = key.asymmetricKeyType;
  if (algorithm === 'rsa-sha256') {
    if (t !== 'rsa') throw new DkimKeyError(`${where}: an rsa-sha256 key must be RSA, this one is ${t}`);
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    // RFC 8301 3.2: verifiers must not accept RSA keys under 1024 bits.
    if (bits < 1024) throw new DkimKeyError(`${where}: RSA key of ${bits} bits; at least 1024 (2048 recommended)`);
  } else if (t !== 'ed25519') {
    throw new DkimKeyError(`${where}: an ed25519-sha256 key must be Ed25519, this one is ${t}`);
  }
}

/**
 * Loads the configured keys (reads each file once).
 * @throws DkimKeyError naming the file: unreadable, not a PEM private key, wrong type, too short.
 */
export function loadKeys(entries: readonly DkimKeyConfig[], resolvePath: (p: string) => string = (p) => p): DkimKey[] {
  return entries.map((e) => {
    const path = resolvePath(e.privateKey);
    let pem: string;
    try {
      pem = readFileSync(path, 'utf8');
    } catch (err) {
      throw new DkimKeyError(`DKIM key ${path} for ${e.selector}._domainkey.${e.domain}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
    let key: KeyObject;
    try {
      key = createPrivateKey(pem);
    } catch (err) {
      throw new DkimKeyError(`DKIM key ${path}: not a PEM private key (${(err as Error).message})`);
    }
    checkKey(key, e.algorithm, `DKIM key ${path}`);
    return {
      domain: normalizeDomain(e.domain), selector: checkSelector(e.selector), algorithm: e.algorithm, key,
      publicValue: publicValueOf(key, e.algorithm),
    };
  });
}

/**
 * A new key pair. @param bits RSA modulus length (2048 by default; 1024..4096).
 * @returns the private key as PKCS#8 PEM and its KeyObject.
 */
export function generateKey(algorithm: DkimAlgorithm, bits = 2048): { pem: string; key: KeyObject } {
  const pair = algorithm === 'rsa-sha256'
    ? generateKeyPairSync('rsa', { modulusLength: bits })
    : generateKeyPairSync('ed25519');
  const pem = pair.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  return { pem, key: pair.privateKey };
}

/** The DNS name of a key record: SELECTOR._domainkey.DOMAIN (RFC 6376 3.6.2.1). */
export function recordName(selector: string, domain: string): string {
  return `${selector}._domainkey.${domain}`;
}

/** The TXT record value publishing a key (RFC 6376 3.6.1): "v=DKIM1; k=rsa|ed25519; p=...". */
export function recordValue(key: KeyObject, algorithm: DkimAlgorithm): string {
  return `v=DKIM1; k=${algorithm === 'rsa-sha256' ? 'rsa' : 'ed25519'}; p=${publicValueOf(key, algorithm)}`;
}

/** Splits a TXT value into character-strings of at most 255 bytes (RFC 1035 3.3.14; ASCII values). */
export function splitTxt(value: string, max = 255): string[] {
  const out: string[] = [];
  for (let i = 0; i < value.length; i += max) out.push(value.slice(i, i + max));
  return out.length ? out : [''];
}

/** A zone file line's data part: each string quoted ("..." "..."). */
export function quotedTxt(value: string): string {
  return splitTxt(value).map((s) => `"${s.replace(/["\\]/g, (c) => `\\${c}`)}"`).join(' ');
}

/** Tags of a DKIM key record (RFC 6376 3.6.1, 3.2 tag-list: names case-sensitive, values trimmed). */
export function parseKeyRecord(value: string): Map<string, string> {
  const tags = new Map<string, string>();
  for (const part of value.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    const name = part.slice(0, eq).replace(/\s+/g, '');
    if (name && !tags.has(name)) tags.set(name, part.slice(eq + 1).replace(/\s+/g, ''));
  }
  return tags;
}

/**
 * Compares a published record with our key. @param txt the TXT records found at the key's name,
 * each as its character-strings. @returns undefined when one matches, else the reason.
 */
export function recordMismatch(txt: readonly (readonly string[])[], key: Pick<DkimKey, 'algorithm' | 'publicValue'>): string | undefined {
  if (!txt.length) return 'no TXT record';
  const reasons: string[] = [];
  for (const strings of txt) {
    const tags = parseKeyRecord(strings.join(''));
    const v = tags.get('v');
    if (v !== undefined && v !== 'DKIM1') { reasons.push(`v=${v} is not DKIM1`); continue; }
    const k = tags.get('k') ?? 'rsa';
    const want = key.algorithm === 'rsa-sha256' ? 'rsa' : 'ed25519';
    if (k !== want) { reasons.push(`k=${k}, our key is ${want}`); continue; }
    const p = tags.get('p');
    if (p === undefined) { reasons.push('no p= tag'); continue; }
    if (p === '') { reasons.push('p= is empty (key revoked)'); continue; }
    if (p !== key.publicValue) { reasons.push('p= is a different public key'); continue; }
    return undefined;
  }
  return reasons.join('; ');
}
