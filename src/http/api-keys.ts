/**
 * API keys of the HTTP API: the `ApiKeyStore` interface (one conformance suite in
 * test/conformance/api-key-store.ts for every backend), the key format and its hashing.
 *
 * A key is `pl_<prefix>_<secret>`: `prefix` is 10 base32 characters, public (shown by `apikey
 * list`, used to find the row), `secret` 32 random bytes in base64url. Only the SHA-256 of the whole
 * key is stored; verification compares hashes in constant time. A fast hash suffices for 256-bit
 * random secrets (no password to stretch), and costs microseconds per request where scrypt would
 * stall the server.
 */
import * as cryptoModule from 'node:crypto';
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { PostlineError } from '../core/errors.js';

/** What a key may do: send mail, read messages/events/queue, act on the queue (admin implies read). */
export type ApiScope = 'send' | 'read' | 'admin';
export const API_SCOPES = ['send', 'read', 'admin'] as const satisfies readonly ApiScope[];

/** A key as stored (never its secret). */
export interface ApiKeyRecord {
  /** Unique among keys (1..64 of [A-Za-z0-9._-]). */
  readonly name: string;
  /** The public part of the key (`pl_<prefix>_...`). */
  readonly prefix: string;
  readonly scopes: readonly ApiScope[];
  /** Sender domains the key may use (lower case); absent: any. */
  readonly domains?: readonly string[];
  /** Messages (queue entries) per minute; absent: no limit. */
  readonly ratePerMinute?: number;
  /** ms since epoch. */
  readonly createdAt: number;
  /** ms since epoch; a revoked key never verifies again. */
  readonly revokedAt?: number;
}

/** What `create` needs. */
export interface ApiKeySpec {
  readonly name: string;
  readonly scopes: readonly ApiScope[];
  readonly domains?: readonly string[];
  readonly ratePerMinute?: number;
}

/**
 * Where API keys live. Every method may be called from another process while a server runs (the CLI);
 * a revoked key must stop verifying at once for every reader.
 */
export interface ApiKeyStore {
  /**
   * Makes a new key. A revoked key of the same name is replaced.
   * @returns the key (shown once, never stored) and its record.
   * @throws ApiKeyError ERR_API_KEY_EXISTS when an active key has this name; ERR_API_KEY_SPEC for a bad spec.
   */
  create(spec: ApiKeySpec, nowMs?: number): Promise<{ key: string; record: ApiKeyRecord }>;
  /** Every key, revoked ones included, by name. */
  list(): Promise<ApiKeyRecord[]>;
  /** Revokes the active key `name`. @returns false when there is none. */
  revoke(name: string, nowMs?: number): Promise<boolean>;
  /** The record of an active key, or undefined for a malformed, unknown or revoked one. Never throws for any input string. */
  verify(key: string): Promise<ApiKeyRecord | undefined>;
  /** Releases the backend (connections). */
  close(): Promise<void>;
}

/** A bad key spec or a name already taken. */
export class ApiKeyError extends PostlineError {
  constructor(code: 'ERR_API_KEY_EXISTS' | 'ERR_API_KEY_SPEC', message: string) {
    super(code, message, { temporary: false });
    this.name = 'ApiKeyError';
  }
}

const B32 = 'abcdefghijklmnopqrstuvwxyz234567';
const KEY_RE = /^pl_([a-z2-7]{10})_([A-Za-z0-9_-]{43})$/;
const NAME_RE = /^[A-Za-z0-9._-]{1,64}$/;
const DOMAIN_RE = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

/** A new random key: `{ key, prefix, hash }` (hash: SHA-256 of the whole key, 32 bytes). */
export function generateApiKey(): { key: string; prefix: string; hash: Buffer } {
  const p = randomBytes(10);
  let prefix = '';
  for (const b of p) prefix += B32[b & 31];
  const key = `pl_${prefix}_${randomBytes(32).toString('base64url')}`;
  return { key, prefix, hash: hashApiKey(key) };
}

/** node:crypto's one-shot hash (Node 20.12 and later), else undefined. */
const oneShot = (cryptoModule as { hash?: (alg: string, data: string, enc: 'buffer') => Buffer }).hash;

/** The SHA-256 of a key (32 bytes). */
export function hashApiKey(key: string): Buffer {
  return oneShot ? oneShot('sha256', key, 'buffer') : createHash('sha256').update(key, 'utf8').digest();
}

/** The public prefix of a well-formed key, or undefined. */
export function apiKeyPrefix(key: string): string | undefined {
  return KEY_RE.exec(key)?.[1];
}

/** True when `key` hashes to `hash` (constant time in the hash). */
export function apiKeyMatches(key: string, hash: Buffer): boolean {
  const h = hashApiKey(key);
  return h.length === hash.length && timingSafeEqual(h, hash);
}

/**
 * Checks and normalizes a spec: name syntax, at least one known scope (deduplicated, in API_SCOPES
 * order), domains lower case without duplicates, rate a positive integer.
 * @throws ApiKeyError ERR_API_KEY_SPEC naming the bad part.
 */
export function normalizeApiKeySpec(spec: ApiKeySpec): ApiKeySpec {
  if (!NAME_RE.test(spec.name)) throw new ApiKeyError('ERR_API_KEY_SPEC', `bad key name "${spec.name}": 1 to 64 of A-Z a-z 0-9 . _ -`);
  const bad = spec.scopes.filter((s) => !(API_SCOPES as readonly string[]).includes(s));
  if (bad.length) throw new ApiKeyError('ERR_API_KEY_SPEC', `unknown scope ${bad.join(', ')} (known: ${API_SCOPES.join(', ')})`);
  const scopes = API_SCOPES.filter((s) => spec.scopes.includes(s));
  if (!scopes.length) throw new ApiKeyError('ERR_API_KEY_SPEC', `a key needs at least one scope (${API_SCOPES.join(', ')})`);
  let domains: string[] | undefined;
  if (spec.domains && spec.domains.length) {
    domains = [...new Set(spec.domains.map((d) => d.trim().toLowerCase().replace(/\.$/, '')))];
    const badDomain = domains.find((d) => !DOMAIN_RE.test(d));
    if (badDomain !== undefined) throw new ApiKeyError('ERR_API_KEY_SPEC', `bad sender domain "${badDomain}"`);
  }
  const rate = spec.ratePerMinute;
  if (rate !== undefined && (!Number.isInteger(rate) || rate < 1 || rate > 1_000_000)) {
    throw new ApiKeyError('ERR_API_KEY_SPEC', `bad rate ${rate}: messages per minute, 1 to 1000000`);
  }
  return { name: spec.name, scopes, ...(domains ? { domains } : {}), ...(rate !== undefined ? { ratePerMinute: rate } : {}) };
}

/** True when the key has `scope` (admin implies read). */
export function hasScope(rec: Pick<ApiKeyRecord, 'scopes'>, scope: ApiScope): boolean {
  return rec.scopes.includes(scope) || (scope === 'read' && rec.scopes.includes('admin'));
}

/** True when the key may send with this envelope sender (its domain is in `domains`, or no limit). */
export function senderAllowed(rec: Pick<ApiKeyRecord, 'domains'>, mailFrom: string): boolean {
  if (!rec.domains) return true;
  const at = mailFrom.lastIndexOf('@');
  if (at < 0) return false;
  const domain = mailFrom.slice(at + 1).toLowerCase().replace(/\.$/, '');
  return rec.domains.includes(domain);
}
