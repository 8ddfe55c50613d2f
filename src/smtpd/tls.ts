/**
 * TLS material for the SMTP listeners (RFC 3207, RFC 8314).
 *
 * Owns: reading the configured certificate and key, or creating once a self-signed pair in
 * `${dataDir}/tls/` (key mode 0600) and reusing it on later starts. The self-signed certificate
 * names every name a local client may use, so that a client given it as its CA verifies it with
 * no other override (RFC 6125 6.4: DNS names as dNSName, addresses as iPAddress SANs): the
 * hostname, `localhost`, 127.0.0.1, ::1 and each listener's own address (a wildcard listener
 * address names no one). A certificate in `${dataDir}/tls/` that Postline made and that lacks one
 * of these names (made by an older version, or before the hostname or a listener changed) is made
 * again. Any other certificate there (CA-signed, or self-signed by its owner) is never replaced; a
 * damaged pair, or a cert.pem or key.pem alone, is moved aside and a new pair made. Whatever is
 * moved aside is kept as `*.old` (or `*.old-<ms>` when that exists). A configured `tls.cert` is
 * never touched.
 */
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { isIP } from 'node:net';
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
/** The organizationName of the certificates Postline makes: how it knows them again. */
const SELF_SIGNED_ORG = 'Postline self-signed';

/** The names a self-signed certificate must carry: DNS names and IP addresses. */
export interface CertificateNames {
  readonly dns: readonly string[];
  readonly ips: readonly string[];
}

/** True for an unspecified (wildcard) address: 0.0.0.0, ::, ::0, 0:0:0:0:0:0:0:0. */
function isWildcard(ip: string): boolean {
  return isIP(ip) === 4 ? ip === '0.0.0.0' : /^[0:]+$/.test(ip);
}

/**
 * The names of the self-signed certificate for a configuration: DNS hostname (when it is a name)
 * and localhost; IPs 127.0.0.1, ::1 and every listener address that is not a wildcard (a listener
 * address that is a name goes to the DNS names). Lower-cased, without duplicates, in that order.
 */
export function selfSignedNames(config: Pick<PostlineConfig, 'hostname' | 'listeners'>): CertificateNames {
  const dns = new Set<string>();
  const ips = new Set<string>();
  const add = (name: string): void => {
    const n = name.trim().replace(/^\[|\]$/g, '').toLowerCase();
    if (!n) return;
    if (isIP(n)) {
      if (!isWildcard(n)) ips.add(n);
    } else {
      dns.add(n.replace(/\.$/, ''));
    }
  };
  add(config.hostname);
  add('localhost');
  add('127.0.0.1');
  add('::1');
  for (const l of config.listeners) add(l.address);
  return { dns: [...dns], ips: [...ips] };
}

/**
 * Generates a self-signed certificate with the `selfsigned` package. Its API is asynchronous, so it
 * runs in a short child process to keep `loadOrCreateTls` synchronous (used at boot and on SIGHUP).
 * The common name is the first DNS name (the hostname); every name is a subjectAltName.
 */
function generateSelfSigned(names: CertificateNames): TlsMaterial {
  const modulePath = createRequire(import.meta.url).resolve('selfsigned');
  const altNames = [...names.dns.map((value) => ({ type: 2, value })), ...names.ips.map((ip) => ({ type: 7, ip }))];
  const script = `
    const [mod, cn, alt, days, org] = process.argv.slice(1);
    const notAfterDate = new Date(Date.now() + Number(days) * 86400000);
    require(mod).generate([{ name: 'commonName', value: cn }, { name: 'organizationName', value: org }], {
      keySize: 2048, algorithm: 'sha256', notAfterDate,
      extensions: [{ name: 'basicConstraints', cA: false },
        { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
        { name: 'extKeyUsage', serverAuth: true },
        { name: 'subjectAltName', altNames: JSON.parse(alt) }],
    }).then((p) => process.stdout.write(JSON.stringify({ cert: p.cert, key: p.private })),
      (e) => { console.error(e); process.exit(1); });`;
  const out = execFileSync(process.execPath, ['-e', script, modulePath, names.dns[0] ?? 'localhost', JSON.stringify(altNames), String(SELF_SIGNED_DAYS), SELF_SIGNED_ORG], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  const pems = JSON.parse(out) as TlsMaterial;
  return { cert: pems.cert, key: pems.key };
}

/**
 * True when Postline made this certificate: self-signed (issued by itself, signed with its own key)
 * and either marked with SELF_SIGNED_ORG or shaped like the first versions' (subject CN only,
 * not a CA, the CN as its one SAN, valid SELF_SIGNED_DAYS). A self-signed certificate its owner
 * made with openssl does not match.
 */
function madeByPostline(cert: X509Certificate): boolean {
  // Not checkIssued(): OpenSSL's check wants keyCertSign in the issuer's key usage, which a server certificate lacks.
  if (cert.issuer !== cert.subject || !cert.verify(cert.publicKey)) return false;
  if (cert.subject.split('\n').includes(`O=${SELF_SIGNED_ORG}`)) return true;
  const cn = /^CN=([^\n]+)$/.exec(cert.subject)?.[1];
  const days = (Date.parse(cert.validTo) - Date.parse(cert.validFrom)) / 86_400_000;
  return cn !== undefined && !cert.ca && cert.subjectAltName === `DNS:${cn}` && Math.abs(days - SELF_SIGNED_DAYS) <= 1;
}

/**
 * The names of `names` a certificate Postline made does not cover, or undefined when Postline did
 * not make it (CA-signed, or self-signed by its owner): such a one is left alone. A PEM that
 * cannot be parsed counts as covering nothing.
 */
export function missingSelfSignedNames(certPem: string, names: CertificateNames): string[] | undefined {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch {
    return [...names.dns, ...names.ips];
  }
  if (!madeByPostline(cert)) return undefined;
  return [
    ...names.dns.filter((n) => cert.checkHost(n, { subject: 'never', wildcards: false }) === undefined),
    ...names.ips.filter((ip) => cert.checkIP(ip) === undefined),
  ];
}

/** Why `m` cannot serve TLS (unparseable PEM, a key that does not match the certificate), or undefined. */
export function unusable(m: TlsMaterial): string | undefined {
  try {
    createSecureContext({ cert: m.cert, key: m.key });
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

/** Moves `path` aside to `path.old` (or `path.old-<ms>` when that exists); returns the new name, or undefined when absent. */
function moveAside(path: string): string | undefined {
  if (!existsSync(path)) return undefined;
  const target = existsSync(`${path}.old`) ? `${path}.old-${Date.now()}` : `${path}.old`;
  renameSync(path, target);
  return target;
}

function writePrivate(path: string, text: string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, text, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}

/**
 * Loads the TLS certificate and key.
 * - config.tls.cert and config.tls.key set: reads both PEM files (never changed).
 * - neither set: reuses `${dataDir}/tls/cert.pem` and `key.pem`, creating a self-signed pair for
 *   selfSignedNames(config) there first (mode 0600) when they do not exist yet, or again when the
 *   existing one was made by Postline and lacks one of those names, or cannot be parsed (the old
 *   files kept as *.old). A certificate someone else made is used as it is.
 * @returns PEM strings {cert, key}.
 * A pair that cannot serve TLS (a damaged key, a key of another certificate) is refused at load
 * time, not at each STARTTLS: configured, or someone else's in dataDir/tls, it is a ConfigError;
 * Postline's own is moved aside and made again.
 * @throws ConfigError when only one of cert/key is set, a file cannot be read, or a pair that
 *         Postline did not make cannot be used.
 */
export function loadOrCreateTls(config: PostlineConfig, logger: Logger): TlsMaterial {
  const { cert, key } = config.tls;
  if (cert || key) {
    if (!cert || !key) throw new ConfigError('tls.cert and tls.key must be given together', cert ? 'tls.key' : 'tls.cert');
    try {
      const m = { cert: readFileSync(cert, 'utf8'), key: readFileSync(key, 'utf8') };
      const why = unusable(m);
      if (why) throw new ConfigError(`tls.cert and tls.key cannot be used: ${why}`, 'tls');
      return m;
    } catch (err) {
      if (err instanceof ConfigError) throw err;
      throw new ConfigError(`cannot read TLS files: ${(err as Error).message}`, 'tls');
    }
  }
  const dir = join(config.dataDir, 'tls');
  const certPath = join(dir, 'cert.pem');
  const keyPath = join(dir, 'key.pem');
  const names = selfSignedNames(config);
  if (existsSync(certPath) && existsSync(keyPath)) {
    const existing = { cert: readFileSync(certPath, 'utf8'), key: readFileSync(keyPath, 'utf8') };
    const missing = missingSelfSignedNames(existing.cert, names);
    const why = unusable(existing);
    if (why && missing === undefined) throw new ConfigError(`${certPath} and ${keyPath} cannot be used: ${why}`, 'tls');
    if (!why && !missing?.length) return existing;
    const old = moveAside(certPath);
    moveAside(keyPath);
    logger.warn({ cert: certPath, missing, old }, 'the self-signed TLS certificate lacks names clients use: making a new one (clients that trust the old one need the new file)');
  } else {
    const old = [moveAside(certPath), moveAside(keyPath)].filter(Boolean);
    if (old.length) logger.warn({ dir, old }, 'dataDir/tls holds a certificate or key without the other: moved aside, making a self-signed pair');
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const made = generateSelfSigned(names);
  writePrivate(keyPath, made.key);
  writePrivate(certPath, made.cert);
  logger.warn({ hostname: config.hostname, names: [...names.dns, ...names.ips], cert: certPath }, 'created a self-signed TLS certificate (clients may trust this file as their CA; see README "TLS certificate")');
  return made;
}
