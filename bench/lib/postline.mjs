// Postline under test: one mx listener on a loopback port without TLS, relayhost = its smtp-sink,
// default durability (body fsynced and row committed before 250), logging at warn.
import { spawn } from 'node:child_process';
import { mkdirSync, openSync, closeSync, writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BenchSmtpClient } from './smtp-client.mjs';

export class PostlineServer {
  constructor({ root, dir, port, sinkPort, messageSizeLimit, nodeArgs = [] }) {
    this.name = 'postline';
    this.root = root; // project folder (bin/postline.js, dist/)
    this.dir = dir;
    this.port = port;
    this.sinkPort = sinkPort;
    this.messageSizeLimit = messageSizeLimit;
    this.nodeArgs = nodeArgs;
    this.configFile = join(dir, 'postline.yaml');
    this.logFile = join(dir, 'postline.log');
    this.proc = null;
    this.rootPid = null;
    this.exited = false;
  }

  yaml() {
    // Limits that would stop the load itself are raised (connections from one IP for the idle
    // test, messages per session for long smtp-source -d sessions, size for the 100 MB message);
    // Postfix has no such per-session or per-IP caps for clients in mynetworks by default.
    return `# Postline bench (generated)
hostname: postline-bench.test
dataDir: ${join(this.dir, 'var')}
listeners:
  - { name: mx, address: 127.0.0.1, port: ${this.port}, role: mx, tls: none }
relay:
  trustedNetworks: ["127.0.0.0/8"]
delivery:
  relayhost: { host: 127.0.0.1, port: ${this.sinkPort}, tls: none }
limits:
  minFreeBytes: 0
  maxMessageSize: ${this.messageSizeLimit}
  maxMessagesPerSession: 1000000
  maxConnections: 20000
  maxConnectionsPerIp: 20000
log:
  level: warn
  format: json
`;
  }

  get command() {
    return ['node', ...this.nodeArgs, join(this.root, 'bin', 'postline.js'), 'serve', '--config', this.configFile].join(' ');
  }

  async start() {
    mkdirSync(this.dir, { recursive: true });
    writeFileSync(this.configFile, this.yaml());
    const out = openSync(this.logFile, 'a');
    this.proc = spawn(process.execPath, [...this.nodeArgs, join(this.root, 'bin', 'postline.js'), 'serve', '--config', this.configFile],
      { stdio: ['ignore', out, out], cwd: this.dir });
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

  logTail() {
    try { return readFileSync(this.logFile, 'utf8').split('\n').slice(-6).join('\n'); } catch { return '(no log)'; }
  }

  describe() { return { config: this.yaml(), start: this.command }; }

  async stop() {
    if (!this.proc || this.exited) return;
    this.proc.kill('SIGTERM');
    await new Promise((r) => { const t = setTimeout(r, 15000); this.proc.once('exit', () => { clearTimeout(t); r(); }); });
    if (!this.exited) { this.proc.kill('SIGKILL'); await new Promise((r) => setTimeout(r, 200)); }
  }

  stopSync() {
    if (this.proc && !this.exited) { try { this.proc.kill('SIGKILL'); } catch { /* gone */ } }
  }
}
