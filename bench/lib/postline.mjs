// Postline under test, at its defaults as a user runs it: log level info, default limits, default
// TLS (the mx listener offers STARTTLS with its self-signed pair; smtp-source never uses it) and
// default durability. Only what the bench needs is set, and deviations() lists each with its
// reason so the report prints them.
import { spawn, execFileSync } from 'node:child_process';
import { mkdirSync, openSync, closeSync, writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { BenchSmtpClient } from './smtp-client.mjs';

/** Limits the load itself would hit. `grid` applies to every run, `memtests` only to the memory tests. */
const LIMIT_OVERRIDES = {
  grid: [
    // none: limits.maxMessagesPerSession no longer applies to trusted clients (issue 15 item 11)
  ],
  memtests: [
    { key: 'limits.maxConnectionsPerIp', value: 20000, default: 100, reason: 'idle-connections memory test only: 10,000 connections from 127.0.0.x' },
    { key: 'limits.maxConnections', value: 20000, default: 2000, reason: 'idle-connections memory test only' },
    { key: 'limits.maxMessageSize', value: 200 * 1024 * 1024, default: 50 * 1024 * 1024, reason: '100 MB message memory test only (Postfix gets the same message_size_limit there)' },
  ],
};

export class PostlineServer {
  /**
   * @param {{ root: string, dir: string, port: number, sinkPort: number, httpPort: number, env?: object, nodeArgs?: string[],
   *   routes?: { domain: string, host: string, port: number, tls?: string }[],
   *   delivery?: { key: string, value: number|string|boolean, default: string, reason: string }[] }} o
   *   port: the SMTP (mx) listener; httpPort: the HTTP API (on by default in Postline, so it gets a free port too).
   *   routes: delivery.routes entries (tried before the relay host); delivery: more delivery.* keys
   *   (key without the "delivery." prefix), each listed in deviations() with its reason.
   */
  constructor({ root, dir, port, sinkPort, httpPort, env = {}, nodeArgs = [], routes = [], delivery = [] }) {
    this.name = 'postline';
    this.root = root; // project folder (bin/postline.js, dist/)
    this.dir = dir;
    this.port = port;
    this.sinkPort = sinkPort;
    this.httpPort = httpPort;
    /** Webhook endpoints in the generated config (the webhooks section only): [{ name, url, secret, batch? }]. */
    this.webhooks = [];
    this.env = env;
    this.nodeArgs = nodeArgs;
    this.routes = routes;
    this.deliveryExtra = delivery;
    this.variant = 'grid';
    this.configFile = join(dir, 'postline.yaml');
    this.logFile = join(dir, 'postline.log');
    this.dataDir = join(dir, 'var');
    this.proc = null;
    this.rootPid = null;
    this.exited = false;
  }

  /** The overrides in force: 'grid' (every run) or 'memtests' (grid + memory-test limits). */
  overrides(variant = this.variant) {
    return variant === 'memtests' ? [...LIMIT_OVERRIDES.grid, ...LIMIT_OVERRIDES.memtests] : LIMIT_OVERRIDES.grid;
  }

  /** Every setting that differs from a bare `postline serve` with this config file, and why. */
  deviations() {
    return [
      { key: 'listeners', value: `one mx listener on 127.0.0.1:${this.port} (tls default: starttls)`, default: 'mx :2525, submission :5870, smtps :4650', reason: 'a free loopback port for the load; the submission listeners are not exercised' },
      { key: 'delivery.relayhost', value: `127.0.0.1:${this.sinkPort} (tls default: opportunistic; smtp-sink offers no STARTTLS)`, default: 'none (MX lookup)', reason: 'everything goes to this server\'s own smtp-sink' },
      { key: 'http', value: `{ address: 127.0.0.1, port: ${this.httpPort} }`, default: '{ address: 127.0.0.1, port: 8025 }', reason: 'the API is on by default; a free loopback port so a busy 8025 cannot stop the bench (the api section drives it)' },
      { key: 'dataDir', value: this.dataDir, default: './var', reason: 'a fresh queue in the bench temp dir' },
      { key: 'hostname', value: 'postline-bench.test', default: 'the OS hostname', reason: 'a stable name in Received headers (no effect on speed)' },
      ...(this.routes.length ? [{ key: 'delivery.routes', value: `${this.routes.length} routes (${this.routes[0].domain} -> ${this.routes[0].host}:${this.routes[0].port}${this.routes.length > 1 ? ', ...' : ''}; tls ${this.routes[0].tls ?? 'opportunistic'})`, default: '[]', reason: 'one next hop per destination domain, each its own smtp-sink' }] : []),
      ...this.deliveryExtra.map((o) => ({ key: `delivery.${o.key}`, value: o.value, default: o.default, reason: o.reason })),
      ...LIMIT_OVERRIDES.grid.map((o) => ({ key: o.key, value: o.value, default: o.default, reason: o.reason })),
      ...(this.env.LD_PRELOAD ? [{ key: 'environment', value: 'LD_PRELOAD=slowsync.so (+ SLOWSYNC_*)', default: 'none', reason: 'counts fsync-family calls (normal profile: count only, no delay) and slows them in the slow-disk profiles; the same shim is loaded into Postfix' }] : []),
    ];
  }

  yaml() {
    const lines = this.overrides().map((o) => `  ${o.key.split('.')[1]}: ${o.value}`);
    const limits = lines.length ? `limits:\n${lines.join('\n')}\n` : ''; // an empty section would be null
    const hooks = this.webhooks.length
      ? `webhooks:\n${this.webhooks.map((w) => `  - { name: ${w.name}, url: '${w.url}', secret: '${w.secret}', allowPrivate: true${w.batch ? `, batch: ${w.batch}` : ''} }`).join('\n')}\n`
      : '';
    return `# Postline bench (generated): defaults except what the bench needs (see the report's deviations)
hostname: postline-bench.test
dataDir: ${this.dataDir}
listeners:
  - { name: mx, address: 127.0.0.1, port: ${this.port}, role: mx }
http: { address: 127.0.0.1, port: ${this.httpPort} }
delivery:
  relayhost: { host: 127.0.0.1, port: ${this.sinkPort} }
${this.deliveryYaml()}${limits}${hooks}`;
  }

  /** The routes and extra delivery keys, as lines of the delivery section ('' when none). */
  deliveryYaml() {
    const extra = this.deliveryExtra.map((o) => `  ${o.key}: ${JSON.stringify(o.value)}\n`).join('');
    const routes = this.routes.length
      ? `  routes:\n${this.routes.map((r) => `    - { domain: '${r.domain}', host: '${r.host}', port: ${r.port}${r.tls ? `, tls: ${r.tls}` : ''} }`).join('\n')}\n`
      : '';
    return extra + routes;
  }

  /**
   * One metric of GET /metrics on the HTTP API (Prometheus text): the sum of its samples over all
   * label sets, or null when absent.
   * @param {string} name e.g. 'postline_outbound_connections_opened_total'
   * @throws Error when the API does not answer 200 within 10 s
   */
  async metric(name) {
    const res = await fetch(`http://127.0.0.1:${this.httpPort}/metrics`, { signal: AbortSignal.timeout(10000) });
    if (res.status !== 200) throw new Error(`GET /metrics -> ${res.status}`);
    let sum = null;
    for (const line of (await res.text()).split('\n')) {
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
      if (m && m[1] === name) sum = (sum ?? 0) + Number(m[3]);
    }
    return sum;
  }

  get command() {
    return ['node', ...this.nodeArgs, join(this.root, 'bin', 'postline.js'), 'serve', '--config', this.configFile].join(' ');
  }

  get queueDb() { return join(this.dataDir, 'queue.db'); }

  /** Messages in the queue now: a read-only SQLite connection of the bench's own (WAL readers do not block the writer). */
  queueDepth() {
    try {
      if (!this.reader) {
        const Database = createRequire(join(this.root, 'package.json'))('better-sqlite3');
        this.reader = new Database(this.queueDb, { readonly: true, fileMustExist: true });
        this.countStmt = this.reader.prepare('SELECT count(*) AS n FROM messages');
      }
      return this.countStmt.get().n;
    } catch {
      return null;
    }
  }

  /** The newest event id in the durable event log (0 when none; null when unreadable), on the same read-only connection. */
  lastEventId() {
    try {
      if (this.queueDepth() === null) return null; // opens the reader
      this.eventStmt ??= this.reader.prepare('SELECT MAX(id) AS id FROM events');
      return this.eventStmt.get().id ?? 0;
    } catch {
      return null;
    }
  }

  /** Runs `node bin/postline.js ARGS --config <this config>` to completion; returns its stdout (throws with stderr on failure). */
  cli(args, timeoutMs = 60000) {
    return execFileSync(process.execPath, [join(this.root, 'bin', 'postline.js'), ...args, '--config', this.configFile],
      { cwd: this.dir, encoding: 'utf8', timeout: timeoutMs, stdio: ['ignore', 'pipe', 'pipe'] });
  }

  /** `postline webhooks status --json`, parsed. */
  webhookStatus() { return JSON.parse(this.cli(['webhooks', 'status', '--json'])); }

  #closeReader() { try { this.reader?.close(); } catch { /* ignore */ } this.reader = null; this.eventStmt = null; }

  async start() {
    mkdirSync(this.dir, { recursive: true });
    writeFileSync(this.configFile, this.yaml());
    const out = openSync(this.logFile, 'a');
    this.proc = spawn(process.execPath, [...this.nodeArgs, join(this.root, 'bin', 'postline.js'), 'serve', '--config', this.configFile],
      { stdio: ['ignore', out, out], cwd: this.dir, env: { ...process.env, ...this.env } });
    closeSync(out);
    this.rootPid = this.proc.pid;
    this.exited = false;
    const proc = this.proc;
    proc.on('exit', () => { if (this.proc === proc) this.exited = true; });
    const deadline = Date.now() + 30000;
    for (;;) {
      if (this.exited) throw new Error(`postline exited during start: ${this.logTail()}`);
      try {
        const c = await BenchSmtpClient.connect({ port: this.port, timeoutMs: 2000 });
        await c.quit();
        return;
      } catch (e) {
        if (Date.now() > deadline) throw new Error(`postline did not answer on ${this.port}: ${e.message}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  /** Restarts with another set of overrides ('grid' or 'memtests'). */
  async restart(variant = this.variant) {
    await this.stop();
    this.variant = variant;
    await this.start();
  }

  logTail() {
    try { return readFileSync(this.logFile, 'utf8').split('\n').slice(-6).join('\n'); } catch { return '(no log)'; }
  }

  describe() { return { config: this.yaml(), start: this.command, deviations: this.deviations(), memtestOverrides: LIMIT_OVERRIDES.memtests }; }

  async stop() {
    this.#closeReader();
    if (!this.proc || this.exited) return;
    this.proc.kill('SIGTERM');
    await new Promise((r) => { const t = setTimeout(r, 15000); this.proc.once('exit', () => { clearTimeout(t); r(); }); });
    if (!this.exited) { this.proc.kill('SIGKILL'); await new Promise((r) => setTimeout(r, 200)); }
  }

  stopSync() {
    if (this.proc && !this.exited) { try { this.proc.kill('SIGKILL'); } catch { /* gone */ } }
  }
}
