/**
 * `postline sendmail` with the programs that call it, through the real `postline serve` process:
 * a cron-style pipe (Debian cron's arguments), PHP's mail() (php-cli with sendmail_path), s-nail
 * (its `mta` setting pointing at a wrapper script), an SMTP client on -bs (swaks --pipe), and
 * `mailq` / `newaliases` called through symlinks. Every message is checked where it arrives: a
 * loopback SMTP receiver behind Postline's normal delivery (envelope sender, recipients, Bcc:
 * gone, CRLF line endings, From/Date/Message-ID present).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { PostlineProcess, POSTLINE_BIN, runCli } from '../helpers/postline-process.js';
import { waitFor } from '../helpers/net.js';
import { startSmtpPeer, type PeerMessage, type SmtpPeer } from '../helpers/smtp-peer.js';

const has = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const PHP = has('php');
const SNAIL = has('s-nail');
const SWAKS = has('swaks');

let peer: SmtpPeer;
let pl: PostlineProcess;
let tools: string;
let env: Record<string, string>;

before(async () => {
  peer = await startSmtpPeer({});
  pl = new PostlineProcess({
    config: {
      delivery: { routes: [{ domain: 'example.test', host: '127.0.0.1', port: peer.port, tls: 'none' }], retry: { initialMs: 60_000, maxMs: 60_000, jitter: 0 }, scanIntervalMs: 100 },
      sendmail: { origin: 'example.test', scanIntervalMs: 200 },
    },
  });
  await pl.start();
  await waitFor('the submit socket', () => existsSync(join(pl.dir, 'var', 'submit.sock')), 20_000);
  tools = mkdtempSync(join(tmpdir(), 'postline-sendmail-tools-'));
  // The wrapper the README shows, and the symlinks by name.
  writeFileSync(join(tools, 'sendmail-wrapper'), `#!/bin/sh\nexec "${process.execPath}" "${POSTLINE_BIN}" sendmail "$@"\n`);
  chmodSync(join(tools, 'sendmail-wrapper'), 0o755);
  for (const name of ['sendmail', 'mailq', 'newaliases']) symlinkSync(POSTLINE_BIN, join(tools, name));
  env = { POSTLINE_CONFIG: pl.configFile, PATH: `${dirname(process.execPath)}:${process.env.PATH ?? '/usr/bin:/bin'}` };
});

after(async () => {
  await pl?.cleanup();
  await peer?.close();
  if (tools) rmSync(tools, { recursive: true, force: true });
});

/** The message whose Subject is `subject`, once it arrived. */
function arrived(subject: string): Promise<PeerMessage> {
  return waitFor(`a message with Subject: ${subject}`, () => peer.messages().find((m) => m.data.toString('latin1').includes(`\r\nSubject: ${subject}\r\n`) || m.data.toString('latin1').startsWith(`Subject: ${subject}\r\n`)), 20_000);
}

/** Common checks: CRLF only, the fields cleanup or the command adds, no Bcc. */
function checkShape(m: PeerMessage): string {
  const text = m.data.toString('latin1');
  assert.doesNotMatch(text, /[^\r]\n/, 'every line ends in CRLF');
  assert.doesNotMatch(text, /\r(?!\n)/, 'no bare CR');
  const head = text.slice(0, text.indexOf('\r\n\r\n') + 2);
  assert.match(head, /^Received: by mx\.postline\.test \(Postline, from user \S+\)/);
  assert.match(head, /\r\nDate: /);
  assert.match(head, /\r\nMessage-ID: <[^>]+>\r\n/i);
  assert.match(head, /\r\nFrom: /);
  assert.doesNotMatch(head, /\r\nBcc:/i);
  return text;
}

/** Runs a program with stdin, bounded to 60 s. */
function run(cmd: string, args: string[], input: string, extraEnv: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...env, ...extraEnv }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const t = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`${cmd} took more than 60 s`)); }, 60_000);
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.on('exit', (code) => { clearTimeout(t); resolve({ code: code ?? -1, stdout, stderr }); });
    child.stdin.end(input);
  });
}

test('a cron-style pipe: -FCronDaemon -i -B8BITMIME -oem user', async () => {
  const r = await runCli(['sendmail', '-FCronDaemon', '-i', '-B8BITMIME', '-oem', 'user'], 'Subject: cron job\n\nline one\n.\nline three\n', env);
  assert.equal(r.code, 0, r.stderr);
  const m = await arrived('cron job');
  assert.match(m.mailFrom, /^\S+@example\.test$/); // the running user at sendmail.origin
  assert.deepEqual(m.rcpts, ['user@example.test']);
  const text = checkShape(m);
  assert.match(text, new RegExp(`\\r\\nFrom: CronDaemon <${m.mailFrom.replace(/[.+]/g, '\\$&')}>\\r\\n`));
  assert.match(text, /\r\n\r\nline one\r\n\.\r\nline three\r\n$/); // -i: the "." line is content
});

test('-t: To, Cc and Bcc recipients, Bcc removed, argument recipients added; -f sets the envelope sender', async () => {
  const input = 'To: Alice <alice@example.test>\nCc: carol@example.test\nBcc: hidden@example.test\nSubject: extract\n\nhello\n';
  const r = await runCli(['sendmail', '-t', '-i', '-f', 'bounces@example.test', 'extra@example.test'], input, env);
  assert.equal(r.code, 0, r.stderr);
  const m = await arrived('extract');
  assert.equal(m.mailFrom, 'bounces@example.test');
  assert.deepEqual([...m.rcpts].sort(), ['alice@example.test', 'carol@example.test', 'extra@example.test', 'hidden@example.test']);
  const text = checkShape(m);
  assert.doesNotMatch(text, /hidden@example\.test/);
  assert.match(text, /\r\nFrom: bounces@example\.test\r\n/);
});

test('without -i a "." line ends the message (traditional sendmail input)', async () => {
  const r = await runCli(['sendmail', 'dot@example.test'], 'Subject: dot end\n\nkept\n.\nnot sent\n', env);
  assert.equal(r.code, 0, r.stderr);
  const text = checkShape(await arrived('dot end'));
  assert.match(text, /\r\n\r\nkept\r\n$/);
});

test("PHP's mail() with sendmail_path = postline sendmail -t -i", { skip: PHP ? false : 'php is not installed (apt-get install php-cli; .ci/run installs it)' }, async () => {
  const script = `$ok = mail("php-to@example.test", "php subject", "first line\\nsecond line\\n", "From: Web App <app@example.test>\\r\\nCc: php-cc@example.test\\r\\nBcc: php-bcc@example.test"); exit($ok ? 0 : 3);`;
  const r = await run('php', ['-n', '-d', `sendmail_path=${join(tools, 'sendmail-wrapper')} -t -i`, '-r', script], '');
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const m = await arrived('php subject');
  assert.deepEqual([...m.rcpts].sort(), ['php-bcc@example.test', 'php-cc@example.test', 'php-to@example.test']);
  const text = checkShape(m);
  assert.match(text, /\r\nTo: php-to@example\.test\r\n/);
  assert.match(text, /\r\nFrom: Web App <app@example\.test>\r\n/);
  assert.match(text, /\r\n\r\nfirst line\r\nsecond line\r\n(\r\n)?$/); // PHP's LF body made CRLF (PHP adds a last newline)
});

test('s-nail with its mta setting pointing at the wrapper', { skip: SNAIL ? false : 's-nail is not installed (apt-get install s-nail; .ci/run installs it)' }, async () => {
  const home = mkdtempSync(join(tmpdir(), 'postline-snail-'));
  try {
    const r = await run('s-nail', ['-:/', '-Snosave', '-Sexpandaddr', '-Sttycharset=utf-8', '-Ssendcharsets=utf-8', `-Smta=${join(tools, 'sendmail-wrapper')}`, '-r', 'snail@example.test', '-s', 'snail subject', '-c', 'snail-cc@example.test', 'snail-to@example.test'], 'body from s-nail\nwith two lines\n', { HOME: home, MAILRC: '/dev/null' });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const m = await arrived('snail subject');
    assert.equal(m.mailFrom, 'snail@example.test');
    assert.deepEqual([...m.rcpts].sort(), ['snail-cc@example.test', 'snail-to@example.test']);
    const text = checkShape(m);
    assert.match(text, /\r\nFrom: snail@example\.test\r\n/);
    assert.match(text, /body from s-nail\r\nwith two lines\r\n/);
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});

test('-bs: an SMTP session on stdin/stdout (swaks --pipe), and a symlink named sendmail', { skip: SWAKS ? false : 'swaks is not installed' }, async () => {
  const r = await run('swaks', ['--pipe', `${join(tools, 'sendmail')} -bs`, '--from', 'smtp-user@example.test', '--to', 'bs-to@example.test,bs-two@example.test', '--header', 'Subject: bs session', '--body', 'over -bs'], '');
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /<-\s+250 2\.0\.0 OK queued as \S+/);
  const m = await arrived('bs session');
  assert.equal(m.mailFrom, 'smtp-user@example.test');
  assert.deepEqual([...m.rcpts].sort(), ['bs-to@example.test', 'bs-two@example.test']);
  checkShape(m);
});

test('mailq and newaliases by their names; -q flushes; --help lists the exit codes', async () => {
  const q = await run(join(tools, 'mailq'), [], '');
  assert.equal(q.code, 0, q.stderr);
  assert.match(q.stdout, /Mail queue is empty|-Queue ID-/);
  const n = await run(join(tools, 'newaliases'), [], '');
  assert.equal(n.code, 0, n.stderr);
  assert.match(n.stderr, /0 aliases in local\.aliases, configuration valid; the server \(pid \d+\) was told to reload/);
  await waitFor('the server reloaded', () => pl.output.includes('configuration reloaded'), 10_000);
  const f = await runCli(['sendmail', '-q', '-v'], '', env);
  assert.equal(f.code, 0, f.stderr);
  assert.match(f.stderr, /flushed \d+ message/);
  const h = await runCli(['sendmail', '--help'], '', env);
  assert.equal(h.code, 0);
  for (const code of ['64', '65', '67', '70', '71', '75', '77']) assert.match(h.stdout, new RegExp(`\\n +${code}  EX_`));
  assert.match(h.stdout, /recipients given as arguments are ADDED/);
});
