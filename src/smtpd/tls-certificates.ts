/**
 * The certificates the SMTP listeners serve (RFC 3207, RFC 8314; SNI: RFC 6066 3).
 *
 * Owns: reading `tls.certificates` (several pairs chosen by server name, RSA and ECDSA side by
 * side), or falling back to the one pair of tls.ts (`tls.cert`/`tls.key`, or the self-signed pair
 * in dataDir/tls/). Read at start and again on SIGHUP (main.ts); every pair is checked when it is
 * read, so a bad file fails the start or the reload, never a handshake.
 */
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import type { PostlineConfig } from '../config/schema.js';
import { ConfigError } from '../core/errors.js';
import { loadOrCreateTls, unusable, type TlsMaterial } from './tls.js';

/** One certificate chain and its key (PEM), for a server name or (absent) for every name. */
export interface CertificateEntry extends TlsMaterial {
  /** "mx.example.com" or "*.example.com", lower case, no trailing dot; absent: the single configured or self-signed pair. */
  readonly servername?: string;
}

/** Every certificate, in configuration order: the first entry's name (and its siblings of that name) is the default. */
export interface ServerCertificates {
  readonly entries: readonly CertificateEntry[];
}

/** Lower case without a trailing dot: the form server names are compared in. */
export function normalizeServername(name: string): string {
  return name.trim().toLowerCase().replace(/\.$/, '');
}

/**
 * Loads the listeners' certificates: every `tls.certificates` entry (files read now), else the one
 * pair from loadOrCreateTls.
 * @throws ConfigError naming `tls.certificates.N` when a file cannot be read or a pair cannot serve
 *   TLS (damaged, or a key of another certificate); loadOrCreateTls's errors otherwise.
 */
export function loadServerCertificates(config: PostlineConfig, logger: Logger): ServerCertificates {
  const list = config.tls.certificates;
  if (!list?.length) return { entries: [loadOrCreateTls(config, logger)] };
  const entries = list.map((c, i): CertificateEntry => {
    let m: TlsMaterial;
    try {
      m = { cert: readFileSync(c.cert, 'utf8'), key: readFileSync(c.key, 'utf8') };
    } catch (err) {
      throw new ConfigError(`tls.certificates.${i}: cannot read: ${(err as Error).message}`, `tls.certificates.${i}`);
    }
    const why = unusable(m);
    if (why) throw new ConfigError(`tls.certificates.${i}: cert and key cannot be used: ${why}`, `tls.certificates.${i}`);
    return { ...m, servername: normalizeServername(c.servername) };
  });
  return { entries };
}

/** The default pair (the first entry): what the HTTP API serves when it shares the listeners' material. */
export function defaultMaterial(c: ServerCertificates): TlsMaterial {
  const first = c.entries[0]!;
  return { cert: first.cert, key: first.key };
}
