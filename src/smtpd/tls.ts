/**
 * TLS material for the SMTP listeners (RFC 3207, RFC 8314).
 *
 * Owns: reading the configured certificate and key, or creating once a self-signed pair for
 * config.hostname in `${dataDir}/tls/` (key mode 0600) and reusing it on later starts.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { PostlineConfig } from '../config/schema.js';
import { ConfigError } from '../core/errors.js';

/** PEM strings usable as tls.SecureContextOptions. */
export interface TlsMaterial {
  readonly cert: string;
  readonly key: string;
}

/** Days the generated self-signed certificate is valid. */
const SELF_SIGNED_DAYS = 3650;

/**
 * Generates a self-signed certificate with the `selfsigned` package. Its API is asynchronous, so it
 * runs in a short child process to keep `loadOrCreateTls` synchronous (used at boot and on SIGHUP).
 */
function generateSelfSigned(hostname: string): TlsMaterial {
  const modulePath = createRequire(import.meta.url).resolve('selfsigned');
  const script = `
    const [mod, host, days] = process.argv.slice(1);
    const notAfterDate = new Date(Date.now() + Number(days) * 86400000);
    require(mod).generate([{ name: 'commonName', value: host }], {
      keySize: 2048, algorithm: 'sha256', notAfterDate,
      extensions: [{ name: 'basicConstraints', cA: false },
        { name: 'subjectAltName', altNames: [{ type: 2, value: host }] }],
    }).then((p) => process.stdout.write(JSON.stringify({ cert: p.cert, key: p.private })),
      (e) => { console.error(e); process.exit(1); });`;
  const out = execFileSync(process.execPath, ['-e', script, modulePath, hostname, String(SELF_SIGNED_DAYS)], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  const pems = JSON.parse(out) as TlsMaterial;
  return { cert: pems.cert, key: pems.key };
}

function writePrivate(path: string, text: string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, text, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}

/**
 * Loads the TLS certificate and key.
 * - config.tls.cert and config.tls.key set: reads both PEM files.
 * - neither set: reuses `${dataDir}/tls/cert.pem` and `key.pem`, creating a self-signed pair for
 *   config.hostname there first (mode 0600) when they do not exist yet.
 * @returns PEM strings {cert, key}.
 * @throws ConfigError when only one of cert/key is set or a file cannot be read.
 */
export function loadOrCreateTls(config: PostlineConfig, logger: Logger): TlsMaterial {
  const { cert, key } = config.tls;
  if (cert || key) {
    if (!cert || !key) throw new ConfigError('tls.cert and tls.key must be given together', cert ? 'tls.key' : 'tls.cert');
    try {
      return { cert: readFileSync(cert, 'utf8'), key: readFileSync(key, 'utf8') };
    } catch (err) {
      throw new ConfigError(`cannot read TLS files: ${(err as Error).message}`, 'tls');
    }
  }
  const dir = join(config.dataDir, 'tls');
  const certPath = join(dir, 'cert.pem');
  const keyPath = join(dir, 'key.pem');
  if (existsSync(certPath) && existsSync(keyPath)) {
    return { cert: readFileSync(certPath, 'utf8'), key: readFileSync(keyPath, 'utf8') };
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const made = generateSelfSigned(config.hostname);
  writePrivate(keyPath, made.key);
  writePrivate(certPath, made.cert);
  logger.warn({ hostname: config.hostname, cert: certPath }, 'created a self-signed TLS certificate');
  return made;
}
