/**
 * Configuration loader: YAML file -> environment overrides -> zod validation -> resolved paths.
 * A bad file stops the start with a ConfigError naming the key and what is wrong.
 */
import { accessSync, constants, readFileSync } from 'node:fs';
import { resolve, dirname } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { configSchema, type PostlineConfig } from './schema.js';
import { resolveDeliveryCaFiles } from './delivery-tls.js';
import { ConfigError } from '../core/errors.js';
import { checkUrlStatic } from '../webhooks/ssrf.js';
import { tlsPolicyOptions } from '../smtpd/tls-policy.js';
import { createSecureContext } from 'node:tls';

/** Environment variables that override main keys (applied on top of the file). */
export const ENV_OVERRIDES: Readonly<Record<string, string>> = {
  POSTLINE_HOSTNAME: 'hostname',
  POSTLINE_DATA_DIR: 'dataDir',
  POSTLINE_LOG_LEVEL: 'log.level',
  POSTLINE_LOG_FORMAT: 'log.format',
  POSTLINE_RELAYHOST: 'delivery.relayhost (host:port)',
  POSTLINE_MX_PORT: 'delivery.mxPort',
  POSTLINE_DNS_SERVERS: 'delivery.dns.servers (comma-separated host:port)',
  POSTLINE_LOCAL_DOMAINS: 'relay.localDomains (comma-separated)',
};

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function setPath(root: Obj, path: string[], value: unknown): void {
  let o = root;
  for (const k of path.slice(0, -1)) {
    if (!isObj(o[k])) o[k] = {};
    o = o[k] as Obj;
  }
  o[path[path.length - 1]] = value;
}

function applyEnv(raw: Obj, env: NodeJS.ProcessEnv): void {
  if (env.POSTLINE_HOSTNAME) raw.hostname = env.POSTLINE_HOSTNAME;
  if (env.POSTLINE_DATA_DIR) raw.dataDir = env.POSTLINE_DATA_DIR;
  if (env.POSTLINE_LOG_LEVEL) setPath(raw, ['log', 'level'], env.POSTLINE_LOG_LEVEL);
  if (env.POSTLINE_LOG_FORMAT) setPath(raw, ['log', 'format'], env.POSTLINE_LOG_FORMAT);
  if (env.POSTLINE_MX_PORT) setPath(raw, ['delivery', 'mxPort'], Number(env.POSTLINE_MX_PORT));
  if (env.POSTLINE_DNS_SERVERS) setPath(raw, ['delivery', 'dns', 'servers'], env.POSTLINE_DNS_SERVERS.split(',').map((s) => s.trim()).filter(Boolean));
  if (env.POSTLINE_LOCAL_DOMAINS) setPath(raw, ['relay', 'localDomains'], env.POSTLINE_LOCAL_DOMAINS.split(',').map((s) => s.trim()).filter(Boolean));
  if (env.POSTLINE_RELAYHOST) {
    const m = /^\[?([^\]]+?)\]?(?::(\d+))?$/.exec(env.POSTLINE_RELAYHOST.trim());
    if (!m) throw new ConfigError(`POSTLINE_RELAYHOST: expected host or host:port, got "${env.POSTLINE_RELAYHOST}"`, 'delivery.relayhost');
    const prev = isObj((raw.delivery as Obj | undefined)?.relayhost) ? ((raw.delivery as Obj).relayhost as Obj) : {};
    setPath(raw, ['delivery', 'relayhost'], { ...prev, host: m[1], port: m[2] ? Number(m[2]) : (prev.port ?? 25) });
  }
}

/**
 * Validates a raw config object (already parsed from YAML) and returns the full config with
 * defaults. `baseDir` resolves relative paths (dataDir, tls files, dkim key files).
 * @throws ConfigError naming the first bad key ("listeners.0.port: expected number, received string").
 */
export function validateConfig(raw: unknown, baseDir: string = process.cwd(), env: NodeJS.ProcessEnv = {}): PostlineConfig {
  const obj: Obj = raw === null || raw === undefined ? {} : isObj(raw) ? structuredClone(raw) : (() => {
    throw new ConfigError('the configuration must be a YAML mapping (key: value) at the top level');
  })();
  applyEnv(obj, env);
  const r = configSchema.safeParse(obj);
  if (!r.success) {
    const lines = r.error.issues.map((i) => {
      const key = i.path.length ? i.path.join('.') : '(top level)';
      const fromEnv = Object.entries(ENV_OVERRIDES).find(([name, k]) => env[name] !== undefined && key.startsWith(k.split(' ')[0]!));
      return `${key}: ${i.message}${fromEnv ? ` (set by the environment variable ${fromEnv[0]})` : ''}`;
    });
    const first = r.error.issues[0];
    throw new ConfigError(`invalid configuration:\n  ${lines.join('\n  ')}`, first?.path.join('.'));
  }
  const cfg = r.data;
  cfg.dataDir = resolve(baseDir, cfg.dataDir);
  if (cfg.tls.cert) cfg.tls.cert = resolve(baseDir, cfg.tls.cert);
  if (cfg.tls.key) cfg.tls.key = resolve(baseDir, cfg.tls.key);
  if (!!cfg.tls.cert !== !!cfg.tls.key) throw new ConfigError('tls: give both cert and key, or neither', cfg.tls.cert ? 'tls.key' : 'tls.cert');
  if (cfg.tls.certificates) {
    if (cfg.tls.cert) throw new ConfigError('tls: give either cert/key or certificates (whose first entry is the default), not both', 'tls.certificates');
    cfg.tls.certificates = cfg.tls.certificates.map((c) => ({ ...c, cert: resolve(baseDir, c.cert), key: resolve(baseDir, c.key) }));
  }
  cfg.dkim.keys = cfg.dkim.keys.map((k) => ({ ...k, privateKey: resolve(baseDir, k.privateKey) }));
  if (cfg.arc) cfg.arc = { ...cfg.arc, privateKey: resolve(baseDir, cfg.arc.privateKey) };
  if (cfg.http?.tls) {
    if (cfg.http.tls.cert) cfg.http.tls.cert = resolve(baseDir, cfg.http.tls.cert);
    if (cfg.http.tls.key) cfg.http.tls.key = resolve(baseDir, cfg.http.tls.key);
    if (!!cfg.http.tls.cert !== !!cfg.http.tls.key) throw new ConfigError('http.tls: give both cert and key, or neither (the listeners\' certificate)', cfg.http.tls.cert ? 'http.tls.key' : 'http.tls.cert');
  }
  const badCa = resolveDeliveryCaFiles(cfg.delivery, baseDir, resolve, readable);
  if (badCa) throw new ConfigError(`${badCa}: cannot read the CA file`, badCa);
  const hookNames = new Set<string>();
  cfg.webhooks.forEach((w, i) => {
    if (hookNames.has(w.name)) throw new ConfigError(`webhooks.${i}.name: duplicate webhook name "${w.name}"`, `webhooks.${i}.name`);
    hookNames.add(w.name);
    const why = checkUrlStatic(w.url, w.allowPrivate);
    if (why) throw new ConfigError(`webhooks.${i}.url: ${why}`, `webhooks.${i}.url`);
    if (w.retry.maxMs < w.retry.initialMs) throw new ConfigError(`webhooks.${i}.retry.maxMs: must be at least retry.initialMs`, `webhooks.${i}.retry.maxMs`);
  });
  cfg.local.routes.forEach((r, i) => {
    const why = r.transport === 'http' && r.target ? checkUrlStatic(r.target, cfg.local.http.allowPrivate) : undefined;
    if (why) throw new ConfigError(`local.routes.${i}.target: ${why.replace('set allowPrivate', 'set local.http.allowPrivate')}`, `local.routes.${i}.target`);
  });
  const names = new Set<string>();
  cfg.listeners.forEach((l, i) => {
    if (names.has(l.name)) throw new ConfigError(`listeners.${i}.name: duplicate listener name "${l.name}"`, `listeners.${i}.name`);
    names.add(l.name);
    if (l.tlsPolicy) {
      try {
        createSecureContext(tlsPolicyOptions(l));
      } catch (err) {
        throw new ConfigError(`listeners.${i}.tlsPolicy: ${(err as Error).message}`, `listeners.${i}.tlsPolicy`);
      }
    }
  });
  return cfg;
}

/**
 * Loads the configuration from `file`, else from the file named by POSTLINE_CONFIG. With neither,
 * the embedded defaults apply (plus environment overrides).
 * Relative paths in the file are relative to the file's folder; without a file, to the working directory.
 * @throws ConfigError when the file cannot be read, is not YAML, or fails validation.
 */
export function loadConfig(file?: string, env: NodeJS.ProcessEnv = process.env): PostlineConfig {
  file ||= env.POSTLINE_CONFIG || undefined;
  if (!file) return validateConfig({}, process.cwd(), env);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read configuration file ${file}: ${(err as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new ConfigError(`${file}: not valid YAML: ${(err as Error).message}`);
  }
  return validateConfig(raw, dirname(resolve(file)), env);
}

function readable(path: string): boolean {
  try {
    accessSync(path, constants.R_OK);
    return true;
  } catch {
    return false;
  }
}
