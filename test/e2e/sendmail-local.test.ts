/**
 * `postline sendmail` and the server's two doors for it, through the real processes: with the
 * server down the message goes to dataDir/maildrop/ and is delivered once the server starts; the
 * local user as each door records it (claimed over the socket, the file owner's uid from the
 * maildrop), run as another user (nobody) when the test runs as root; `sendmail.group` shutting
 * others out; and the exit codes (sysexits.h) of each failure.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { stringify } from 'yaml';
import { PostlineProcess, POSTLINE_BIN, runCli } from '../helpers/postline-process.js';
import { waitFor } from '../helpers/net.js';
import { startSmtpPeer, type SmtpPeer } from '../helpers/smtp-peer.js';

const ROOT = process.getuid?.() === 0;
const NOBODY = 65534;

let peer: SmtpPeer;
let pl: PostlineProcess;
let env: Record<string, string>;

before(async () => {
  peer = await startSmtpPeer({});
  pl = new PostlineProcess({
    config: {
      delivery: { routes: [{ domain: 'example.test', host: '127.0.0.1', port: peer.port, tls: 'none' }], retry: { initialMs: 60_000, maxMs: 60_000, jitter: 0 }, scanIntervalMs: 100 },
      sendmail: { origin: 'example.test', scanIntervalMs: 200 },
    },
  });
  await startPl();
  chmodSync(pl.dir, 0o755); // the configuration is read by other users' commands too
  env = { POSTLINE_CONFIG: pl.configFile };
});

after(async () => {
  await pl?.cleanup();
  await peer?.close();
});

/** Starts the server and waits for its submit socket (it opens after the listeners). */
async function startPl(): Promise<void> {
  await pl.start();
  await waitFor('the submit socket', () => existsSync(join(pl.dir, 'var', 'submit.sock')), 20_000);
}

/** `postline sendmail ARGS` as `uid` (root only), else as ourselves. */
function sendmailAs(uid: number | undefined, args: string[], input: string, extraEnv: Record<string, string> = env): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [POSTLINE_BIN, 'sendmail', ...args], {
      env: { ...process.env, ...extraEnv }, stdio: ['pipe', 'pipe', 'pipe'], cwd: tmpdir(), ...(uid !== undefined ? { uid, gid: uid } : {}),
    });
    let stdout = '';
    let stderr = '';
    const t = setTimeout(() => { child.kill('SIGKILL'); reject(new Error('sendmail took more than 60 s')); }, 60_000);
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.on('exit', (code) => { clearTimeout(t); resolve({ code: code ?? -1, stdout, stderr }); });
    child.stdin.end(input);
  });
}

/** The message.received events of local mail, newest last. */
async function localEvents(): Promise<Array<{ queueId: string; recipients: string[]; origin: Record<string, unknown> }>> {
  const r = await pl.cli(['events', '--json', '--type', 'message.received', '--since', '0', '--limit', '1000']);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l)).filter((e) => e.origin?.kind === 'local');
}

const originOf = async (rcpt: string): Promise<Record<string, unknown>> =>
  (await waitFor(`the event of ${rcpt}`, async () => (await localEvents()).find((e) => e.recipients.includes(rcpt)), 20_000)).origin;

test('server down: the command writes the maildrop (exit 0); the server picks it up at start and delivers', async () => {
  await pl.stop();
  const maildrop = join(pl.dir, 'var', 'maildrop');
  assert.equal(statSync(maildrop).mode & 0o7777, 0o1733);
  const r = await runCli(['sendmail', '-v', 'down@example.test'], 'Subject: while down\n\nwaits in the maildrop\n', env);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /written to the maildrop as m\.\S+ \(the server is not running\)/);
  const files = readdirSync(maildrop).filter((n) => n.startsWith('m.'));
  assert.equal(files.length, 1);
  assert.equal(statSync(join(maildrop, files[0]!)).mode & 0o777, 0o644);
  await startPl();
  await waitFor('the maildrop message delivered', () => peer.messages().find((m) => m.rcpts.includes('down@example.test')), 20_000);
  assert.deepEqual(readdirSync(maildrop), ['rejected']);
  const o = await originOf('down@example.test');
  assert.equal(o.localUserSource, 'uid');
  assert.equal(o.localUid, process.getuid!());
});

test('another user: claimed over the socket, the file owner from the maildrop; mailq is refused (EX_NOPERM)', { skip: ROOT ? false : 'needs root to run commands as nobody' }, async () => {
  const up = await sendmailAs(NOBODY, ['nobody-up@example.test'], 'Subject: as nobody\n\nhi\n');
  assert.equal(up.code, 0, up.stderr);
  assert.deepEqual(await originOf('nobody-up@example.test'), { kind: 'local', localUser: 'nobody', localUserSource: 'claimed' });
  const q = await sendmailAs(NOBODY, ['-bp'], '');
  assert.equal(q.code, 77, q.stderr);
  assert.match(q.stderr, /root and the server's user only/);
  const na = await sendmailAs(NOBODY, ['-bi'], '');
  assert.equal(na.code, 77, na.stderr);
  await pl.stop();
  const down = await sendmailAs(NOBODY, ['nobody-down@example.test'], 'Subject: as nobody, server down\n\nhi\n');
  assert.equal(down.code, 0, down.stderr);
  const file = readdirSync(join(pl.dir, 'var', 'maildrop')).find((n) => n.startsWith('m.'))!;
  assert.equal(statSync(join(pl.dir, 'var', 'maildrop', file)).uid, NOBODY);
  await startPl();
  const o = await originOf('nobody-down@example.test');
  assert.equal(o.localUid, NOBODY);
  assert.equal(o.localUserSource, 'uid');
  assert.equal(o.localUser, 'nobody');
  await waitFor('both delivered', () => ['nobody-up@example.test', 'nobody-down@example.test'].every((r) => peer.messages().some((m) => m.rcpts.includes(r))) || undefined, 20_000);
});

test('sendmail.group: the socket 0660 and the maildrop 1730 of that group; others get EX_NOPERM', { skip: ROOT ? false : 'needs root to run commands as nobody' }, async () => {
  await pl.stop();
  pl.configOverride = { sendmail: { origin: 'example.test', scanIntervalMs: 200, group: 0 } };
  await pl.writeConfig();
  try {
    await startPl();
    const sock = statSync(join(pl.dir, 'var', 'submit.sock'));
    assert.equal(sock.mode & 0o777, 0o660);
    assert.equal(statSync(join(pl.dir, 'var', 'maildrop')).mode & 0o7777, 0o1730);
    const r = await sendmailAs(NOBODY, ['shut-out@example.test'], 'Subject: x\n\nx\n');
    assert.equal(r.code, 77, r.stderr);
    const member = await runCli(['sendmail', 'member@example.test'], 'Subject: member\n\nx\n', env);
    assert.equal(member.code, 0, member.stderr);
  } finally {
    await pl.stop();
    pl.configOverride = {};
    await pl.writeConfig();
    await startPl();
  }
});

test('exit codes: one per failure, as --help lists them', async () => {
  const code = async (args: string[], input = 'Subject: x\n\nx\n', e: Record<string, string> = env): Promise<number> => (await runCli(['sendmail', ...args], input, e)).code;
  assert.equal(await code([]), 64, 'no recipients without -t');
  assert.equal(await code(['-k', 'a@example.test']), 64, 'unknown option');
  assert.equal(await code(['-B', 'BINARY', 'a@example.test']), 64);
  assert.equal(await code(['-bd']), 64);
  assert.equal(await code(['bad address@@example.test']), 67, 'malformed recipient');
  assert.equal(await code(['-f', 'not an address', 'a@example.test']), 67, 'malformed sender');
  assert.equal(await code(['-t'], 'Subject: nobody\n\nx\n'), 67, '-t without recipients');
  const dir = mkdtempSync(join(tmpdir(), 'postline-sendmail-codes-'));
  try {
    const write = (name: string, cfg: Record<string, unknown>): string => {
      const f = join(dir, name);
      writeFileSync(f, stringify({ hostname: 'mx.postline.test', dataDir: join(dir, 'var-' + name), ...cfg }));
      return f;
    };
    const small = write('small.yaml', { limits: { maxMessageSize: 1000, maxRecipients: 2 } });
    assert.equal(await code(['a@example.test'], 'Subject: big\n\n' + 'x'.repeat(2000) + '\n', { POSTLINE_CONFIG: small }), 65, 'over limits.maxMessageSize');
    assert.equal(await code(['a@example.test', 'b@example.test', 'c@example.test'], undefined, { POSTLINE_CONFIG: small }), 65, 'over limits.maxRecipients');
    assert.equal(await code(['a@example.test'], undefined, { POSTLINE_CONFIG: small }), 73, 'no server and no maildrop');
    assert.equal(await code(['a@example.test'], undefined, { POSTLINE_CONFIG: write('off.yaml', { sendmail: { enabled: false } }) }), 69, 'sendmail.enabled false');
    writeFileSync(join(dir, 'broken.yaml'), 'limits: { maxMessageSize: -1 }\n');
    assert.equal(await code(['a@example.test'], undefined, { POSTLINE_CONFIG: join(dir, 'broken.yaml') }), 78, 'invalid configuration');
    assert.equal(await code(['-C', join(dir, 'missing.yaml'), 'a@example.test']), 78, 'missing configuration file');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
