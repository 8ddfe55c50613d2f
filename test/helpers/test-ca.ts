/**
 * Test helper: a certificate authority made in the test (selfsigned, EC P-256) and server
 * certificates it signs, for outbound TLS verification on loopback. `file` writes the CA
 * certificate to a PEM file (for `caFile` settings). Owns nothing outside tests.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generate } from 'selfsigned';

export interface KeyPair { readonly key: string; readonly cert: string }

export interface TestCa extends KeyPair {
  /** The CA certificate as a PEM file in a temp directory. */
  readonly file: string;
  /**
   * A server certificate for `names` (DNS names; entries that look like IPv4 addresses become IP
   * SANs), signed by this CA. `expired`: valid only in the past.
   */
  issue(names: readonly string[], opts?: { expired?: boolean }): Promise<KeyPair>;
  /** Removes the temp directory. */
  cleanup(): void;
}

/** Makes a new CA named `cn`. */
export async function makeTestCa(cn = 'Postline Test CA'): Promise<TestCa> {
  const ca = await generate([{ name: 'commonName', value: cn }], {
    keyType: 'ec', algorithm: 'sha256',
    extensions: [{ name: 'basicConstraints', cA: true, critical: true }, { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true }],
  });
  const dir = mkdtempSync(join(tmpdir(), 'postline-ca-'));
  const file = join(dir, 'ca.pem');
  writeFileSync(file, ca.cert);
  return {
    key: ca.private, cert: ca.cert, file,
    async issue(names, opts = {}) {
      const dates = opts.expired ? { notBeforeDate: new Date(Date.now() - 3 * 86400_000), notAfterDate: new Date(Date.now() - 86400_000) } : {};
      const leaf = await generate([{ name: 'commonName', value: names[0] ?? 'localhost' }], {
        keyType: 'ec', algorithm: 'sha256', ca: { key: ca.private, cert: ca.cert }, ...dates,
        extensions: [
          { name: 'basicConstraints', cA: false },
          { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
          { name: 'extKeyUsage', serverAuth: true },
          { name: 'subjectAltName', altNames: names.map((n) => (/^\d+\.\d+\.\d+\.\d+$/.test(n) ? { type: 7 as const, ip: n } : { type: 2 as const, value: n })) },
        ],
      });
      return { key: leaf.private, cert: leaf.cert };
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
