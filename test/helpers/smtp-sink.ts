/**
 * Postfix's smtp-sink as a real receiving server on loopback: every transaction is dumped to one file
 * in a temp directory. `messages()` parses the dumps: the envelope (X-Mail-Args / X-Rcpt-Args) and the
 * message as received (smtp-sink writes lines ending in LF; its own header block is removed).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:net';
import { freePort, waitFor } from './net.js';

export interface SunkMessage {
  readonly file: string;
  readonly mailArgs: string;
  readonly rcptArgs: string[];
  /** The message as received, LF line endings (smtp-sink's dump format). */
  readonly data: Buffer;
}

export const SMTP_SINK = ['/usr/sbin/smtp-sink', '/usr/bin/smtp-sink'].find((p) => existsSync(p));

export class SmtpSink {
  readonly dir: string;
  private child?: ChildProcess;
  port = 0;

  constructor(private readonly extraArgs: string[] = []) {
    this.dir = mkdtempSync(join(tmpdir(), 'postline-sink-'));
  }

  /** Starts smtp-sink on 127.0.0.1 (a free port, or `port`). Resolves when it accepts connections. */
  async start(port?: number): Promise<this> {
    if (!SMTP_SINK) throw new Error('smtp-sink not found: install postfix (see .ci/run)');
    this.port = port ?? (await freePort());
    this.child = spawn(SMTP_SINK, ['-u', 'root', '-R', this.dir, '-d', 'msg.', ...this.extraArgs, `127.0.0.1:${this.port}`, '256'], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.child.stderr?.resume();
    await waitFor('smtp-sink to listen', () => new Promise<boolean>((resolve) => {
      const s = connect(this.port, '127.0.0.1');
      s.once('connect', () => { s.destroy(); resolve(true); });
      s.once('error', () => resolve(false));
    }), 10_000);
    return this;
  }

  /** Stops the process (the dump files stay until `cleanup`). */
  async stop(): Promise<void> {
    const c = this.child;
    this.child = undefined;
    // A process that already ended by a signal has exitCode null but will never emit 'exit' again.
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, 5000); // bounded: never hang a test file on a lost 'exit'
      c.once('exit', () => { clearTimeout(t); resolve(); });
      c.kill('SIGKILL');
    });
  }

  /** Stops and removes the dump directory. */
  async cleanup(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Complete dumps so far (a file is complete when its last line is the empty line smtp-sink appends). */
  messages(): SunkMessage[] {
    const out: SunkMessage[] = [];
    for (const name of readdirSync(this.dir).sort()) {
      const file = join(this.dir, name);
      if (!statSync(file).isFile()) continue;
      const raw = readFileSync(file);
      const parsed = parseDump(raw);
      if (parsed) out.push({ file, ...parsed });
    }
    return out;
  }
}

/** Splits a dump into smtp-sink's own header block and the message. Returns undefined for a partial dump. */
export function parseDump(raw: Buffer): Omit<SunkMessage, 'file'> | undefined {
  if (raw.length < 2 || raw[raw.length - 1] !== 0x0a || raw[raw.length - 2] !== 0x0a) return undefined;
  let mailArgs = '';
  const rcptArgs: string[] = [];
  let pos = 0;
  let sawReceived = false;
  while (pos < raw.length) {
    const nl = raw.indexOf(0x0a, pos);
    if (nl < 0) return undefined;
    const line = raw.subarray(pos, nl).toString('latin1');
    if (sawReceived && !/^[ \t]/.test(line)) break;
    if (line.startsWith('X-Mail-Args: ')) mailArgs = line.slice(13);
    else if (line.startsWith('X-Rcpt-Args: ')) rcptArgs.push(line.slice(13));
    else if (line.startsWith('Received: ')) sawReceived = true;
    pos = nl + 1;
  }
  // The message follows; smtp-sink appends one empty line.
  return { mailArgs, rcptArgs, data: raw.subarray(pos, raw.length - 1) };
}
