/**
 * The TLS policy of a listener (RFC 8314 4.1 for submission, RFC 7525 / RFC 9325 recommendations):
 * the protocol versions, cipher suites and key-exchange groups its TLS contexts are built with.
 *
 * Owns: the defaults per role and the translation of `listeners[].tlsPolicy` into node:tls
 * createSecureContext options. Defaults:
 * - submission (587, 465): TLS 1.2 and 1.3; for TLS 1.2 only ECDHE key exchange with AEAD suites
 *   (AES-GCM, ChaCha20-Poly1305): no static-RSA key exchange, no CBC, no SHA-1 MACs. Clients are
 *   our own users with current software.
 * - mx (25): TLS 1.2 and 1.3 with Node's default list (which still has CBC and static-RSA suites),
 *   because on port 25 any encryption is better than the plaintext a failed handshake falls back
 *   to. TLS 1.0/1.1 needs `minVersion: TLSv1` and ":@SECLEVEL=0" at the end of `ciphers`
 *   (OpenSSL 3 refuses those versions at its default security level 1).
 * Both: groups X25519, P-256, P-384; the server's suite order wins.
 */
import { DEFAULT_CIPHERS, type SecureContextOptions, type SecureVersion } from 'node:tls';
import type { ListenerConfig } from '../config/schema.js';

/** The TLS 1.3 suites (all AEAD) offered unless `tlsPolicy.ciphersuites` says otherwise. */
export const DEFAULT_TLS13_SUITES = 'TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256';

/** TLS 1.2 suites of the submission default: ECDHE (forward secret) with AEAD only. */
export const SUBMISSION_CIPHERS = [
  'ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384', 'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305', 'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

/** Key-exchange groups of both defaults. */
export const DEFAULT_ECDH_CURVE = 'X25519:P-256:P-384';

/** The effective policy of a listener: its tlsPolicy over the role's default. */
export interface EffectiveTlsPolicy {
  readonly minVersion: SecureVersion;
  /** OpenSSL cipher list for TLS 1.2 and older (TLS_ names, if any, are moved to ciphersuites). */
  readonly ciphers: string;
  /** TLS 1.3 suites. */
  readonly ciphersuites: string;
  readonly ecdhCurve: string;
}

/** The listener's TLS policy with the role's defaults filled in. */
export function effectiveTlsPolicy(listener: Pick<ListenerConfig, 'role' | 'tlsPolicy'>): EffectiveTlsPolicy {
  const p = listener.tlsPolicy ?? {};
  const base = listener.role === 'submission' ? SUBMISSION_CIPHERS : DEFAULT_CIPHERS;
  const parts = (p.ciphers ?? base).split(':').filter(Boolean);
  const legacy = parts.filter((c) => !c.startsWith('TLS_')).join(':');
  const inList = parts.filter((c) => c.startsWith('TLS_')).join(':');
  return {
    minVersion: p.minVersion ?? 'TLSv1.2',
    ciphers: legacy,
    ciphersuites: p.ciphersuites ?? (inList || DEFAULT_TLS13_SUITES),
    ecdhCurve: p.ecdhCurve ?? DEFAULT_ECDH_CURVE,
  };
}

/**
 * node:tls options for the listener's contexts (merge with the certificate and key). Node takes the
 * TLS 1.3 suites inside `ciphers` (names starting with TLS_); a list without them would turn TLS
 * 1.3 off, so they are always put in front.
 */
export function tlsPolicyOptions(listener: Pick<ListenerConfig, 'role' | 'tlsPolicy'>): SecureContextOptions {
  const p = effectiveTlsPolicy(listener);
  return {
    minVersion: p.minVersion,
    ciphers: [p.ciphersuites, p.ciphers].filter(Boolean).join(':'),
    ecdhCurve: p.ecdhCurve,
    honorCipherOrder: true,
  };
}
