/**
 * `postline dkim keygen|check`: DKIM keys (src/dkim/keys.ts).
 *
 * keygen DOMAIN SELECTOR writes a new private key to dataDir/dkim/DOMAIN/SELECTOR.pem (mode 0600,
 * never over an existing file unless --force) and prints the DNS TXT record to publish (RFC 6376
 * 3.6.2.1: name SELECTOR._domainkey.DOMAIN; RSA values split into 255-byte strings, RFC 1035
 * 3.3.14) and the `dkim.keys` entry for the configuration. check DOMAIN looks the records up with
 * the configured resolver (delivery.dns) and says whether each matches our key: exit 0 when all
 * do, 1 otherwise.
 */
import { UsageError } from '../core/errors.js';
import type { Command } from 'commander';
import { createPrivateKey } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PostlineConfig } from '../config/schema.js';
import { PostlineError } from '../core/errors.js';
import { createResolver } from '../dns/resolver.js';
import { DnsError, type Resolver } from '../dns/types.js';
import {
  checkSelector, generateKey, loadKeys, normalizeDomain, quotedTxt, recordMismatch, recordName, recordValue,
  type DkimAlgorithm, type DkimKey,
} from '../dkim/keys.js';

/** Where keygen puts a key: dataDir/dkim/DOMAIN/SELECTOR.pem. */
export function keyPath(dataDir: string, domain: string, selector: string): string {
  return join(dataDir, 'dkim', domain, `${selector}.pem`);
}

function cliError(message: string): PostlineError {
  return new PostlineError('ERR_CLI', message, { temporary: false });
}

/** The keys `check` compares: the configured ones of DOMAIN, else the files keygen wrote for it. */
function keysToCheck(cfg: PostlineConfig, domain: string, selector: string | undefined): DkimKey[] {
  const configured = cfg.dkim.keys.filter((k) => normalizeDomain(k.domain) === domain && (!selector || k.selector.toLowerCase() === selector));
  if (configured.length) return loadKeys(configured);
  const dir = join(cfg.dataDir, 'dkim', domain);
  const files = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.pem')) : [];
  return loadKeys(files.filter((f) => !selector || f.slice(0, -4).toLowerCase() === selector).map((f) => {
    const key = createPrivateKey(readFileSync(join(dir, f), 'utf8'));
    const algorithm: DkimAlgorithm = key.asymmetricKeyType === 'ed25519' ? 'ed25519-sha256' : 'rsa-sha256';
    return { domain, selector: f.slice(0, -4), algorithm, privateKey: join(dir, f) };
  }));
}

/**
 * Checks each key's published record. @returns one line per key and whether all matched.
 * DNS trouble counts as not matching (the line says which).
 */
export async function checkKeys(keys: readonly DkimKey[], resolver: Resolver): Promise<{ lines: string[]; ok: boolean }> {
  const lines: string[] = [];
  let ok = keys.length > 0;
  for (const k of keys) {
    const name = recordName(k.selector, k.domain);
    let why: string | undefined;
    try {
      if (!resolver.resolveTxt) throw new UsageError('the resolver cannot look up TXT records');
      why = recordMismatch(await resolver.resolveTxt(name), k);
    } catch (err) {
      why = err instanceof DnsError && err.kind !== 'temporary' ? 'no TXT record published' : `lookup failed: ${(err as Error).message}`;
    }
    if (why) ok = false;
    lines.push(`${name} (${k.algorithm}): ${why ? `MISMATCH: ${why}` : 'ok, the published key is ours'}`);
  }
  return { lines, ok };
}

/** Adds `postline dkim ...` to `program`. */
export function registerDkimCommands(program: Command, loadConfig: (file?: string) => PostlineConfig): void {
  const cmd = program.command('dkim').description('DKIM signing keys: make one, check its DNS record');

  cmd
    .command('keygen <domain> <selector>')
    .description('write a new key into dataDir/dkim/ and print the DNS TXT record to publish')
    .option('-a, --algorithm <alg>', 'rsa or ed25519', 'rsa')
    .option('-b, --bits <n>', 'RSA key size, 1024..4096', '2048')
    .option('-f, --force', 'replace an existing key file')
    .option('-c, --config <file>', 'configuration file')
    .action((domainArg: string, selectorArg: string, opts: { algorithm: string; bits: string; force?: boolean; config?: string }) => {
      const cfg = loadConfig(opts.config);
      const domain = normalizeDomain(domainArg);
      const selector = checkSelector(selectorArg);
      const alg = opts.algorithm.toLowerCase();
      if (alg !== 'rsa' && alg !== 'ed25519') throw cliError(`--algorithm must be rsa or ed25519, not ${JSON.stringify(opts.algorithm)}`);
      const algorithm: DkimAlgorithm = alg === 'rsa' ? 'rsa-sha256' : 'ed25519-sha256';
      const bits = Number(opts.bits);
      if (!Number.isInteger(bits) || bits < 1024 || bits > 4096) throw cliError(`--bits must be an integer 1024..4096, not ${JSON.stringify(opts.bits)}`);
      const path = keyPath(cfg.dataDir, domain, selector);
      if (existsSync(path) && !opts.force) throw cliError(`${path} exists; use --force to replace it (the old key's DNS record then no longer matches)`);
      const { pem, key } = generateKey(algorithm, bits);
      mkdirSync(join(cfg.dataDir, 'dkim', domain), { recursive: true, mode: 0o700 });
      writeFileSync(path, pem, { mode: 0o600, flag: opts.force ? 'w' : 'wx' });
      const name = recordName(selector, domain);
      const value = recordValue(key, algorithm);
      console.log(`wrote ${path} (${algorithm}${algorithm === 'rsa-sha256' ? `, ${bits} bits` : ''}, mode 0600)`);
      console.log('publish this DNS TXT record:');
      console.log(`name:  ${name}`);
      console.log(`value: ${value}`);
      console.log(`zone:  ${name}. IN TXT ( ${quotedTxt(value)} )`);
      console.log('add to the configuration (dkim.keys):');
      console.log(`  - { domain: ${domain}, selector: ${selector}, algorithm: ${algorithm}, privateKey: ${JSON.stringify(path)} }`);
    });

  cmd
    .command('check <domain>')
    .description('look up the published key records and say whether they match our keys (exit 0 / 1)')
    .option('-s, --selector <selector>', 'only this selector')
    .option('-c, --config <file>', 'configuration file')
    .action(async (domainArg: string, opts: { selector?: string; config?: string }) => {
      const cfg = loadConfig(opts.config);
      const domain = normalizeDomain(domainArg);
      const selector = opts.selector ? checkSelector(opts.selector) : undefined;
      const keys = keysToCheck(cfg, domain, selector);
      if (!keys.length) throw cliError(`no DKIM key for ${domain}${selector ? ` with selector ${selector}` : ''} in the configuration or in ${join(cfg.dataDir, 'dkim', domain)}`);
      const { lines, ok } = await checkKeys(keys, createResolver(cfg.delivery.dns));
      for (const l of lines) console.log(l);
      process.exitCode = ok ? 0 : 1;
    });
}
