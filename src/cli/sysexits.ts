/**
 * Exit codes of `postline sendmail` (and `mailq`, `newaliases`) from sysexits.h, the convention
 * programs that call sendmail read (PHP's mail() reports failure for any non-zero code; cron
 * mails the output). One code per failure condition; the table is printed by --help and the README.
 */
import { PostlineError } from '../core/errors.js';

export const EX = {
  OK: 0,
  USAGE: 64,
  DATAERR: 65,
  NOUSER: 67,
  UNAVAILABLE: 69,
  SOFTWARE: 70,
  OSERR: 71,
  CANTCREAT: 73,
  IOERR: 74,
  TEMPFAIL: 75,
  NOPERM: 77,
  CONFIG: 78,
} as const;

export type ExitCode = (typeof EX)[keyof typeof EX];

/** [code, sysexits.h name, when] for --help and the README. */
export const EXIT_TABLE: ReadonlyArray<readonly [ExitCode, string, string]> = [
  [EX.OK, 'EX_OK', 'queued: by the server (submit socket), or in the maildrop for the server to pick up'],
  [EX.USAGE, 'EX_USAGE', 'unknown option, missing or bad option value (-B, -N, -R, -V), no recipients without -t, unsupported mode (-bd, -bv)'],
  [EX.DATAERR, 'EX_DATAERR', 'message refused for its content: over limits.maxMessageSize, header section over 1 MiB, more than limits.maxRecipients recipients, too many Received fields (5.4.6), another 5.3/5.5/5.6 refusal'],
  [EX.NOUSER, 'EX_NOUSER', 'a sender or recipient address is malformed (-f, arguments, To/Cc/Bcc with -t) or refused (5.1.x), or -t found no recipients'],
  [EX.UNAVAILABLE, 'EX_UNAVAILABLE', 'sendmail.enabled is false, or the server refused the message permanently for another reason'],
  [EX.SOFTWARE, 'EX_SOFTWARE', 'internal error: an exception, or an answer from the server this command cannot read'],
  [EX.OSERR, 'EX_OSERR', 'a system call failed in a way not listed here (out of memory, file descriptors)'],
  [EX.CANTCREAT, 'EX_CANTCREAT', 'no server answers and dataDir/maildrop does not exist (run `postline serve` once; check dataDir)'],
  [EX.IOERR, 'EX_IOERR', 'reading standard input, or writing the maildrop file, failed'],
  [EX.TEMPFAIL, 'EX_TEMPFAIL', 'try again later: the server answered 4xx and the maildrop could not take the message either, the disk is full, or the control socket did not answer (-bp, -q)'],
  [EX.NOPERM, 'EX_NOPERM', 'permission denied: the submit socket and the maildrop (not in sendmail.group), the control socket (-bp, -q: root or the server\'s user), the server\'s process (newaliases), or a 5.7.x refusal'],
  [EX.CONFIG, 'EX_CONFIG', 'the configuration file (-C, POSTLINE_CONFIG or /etc/postline/postline.yaml) cannot be read or is invalid'],
];

/** A failure that ends the command with `exitCode` and prints `message` ("postline sendmail: ..."). */
export class SendmailExit extends PostlineError {
  /** The server's one-line reply, when the server refused ("552 5.3.4 ..."). */
  readonly serverReply?: string;

  constructor(readonly exitCode: ExitCode, message: string, opts: { cause?: unknown; serverReply?: string } = {}) {
    super('ERR_SENDMAIL', message, { temporary: exitCode === EX.TEMPFAIL, ...(opts.cause !== undefined ? { cause: opts.cause } : {}) });
    this.name = 'SendmailExit';
    if (opts.serverReply !== undefined) this.serverReply = opts.serverReply;
  }
}

/**
 * The exit code for a permanent refusal by the server (its one-line reply "5xx x.y.z text").
 * 5.1.x addresses: EX_NOUSER; 5.7.x: EX_NOPERM; 5.3.x, 5.4.6, 5.5.x, 5.6.x: EX_DATAERR; others EX_UNAVAILABLE.
 */
export function exitForRefusal(reply: string): ExitCode {
  const m = /^5\d\d (5)\.(\d{1,3})\.(\d{1,3})/.exec(reply);
  if (!m) return EX.UNAVAILABLE;
  const cls = m[2];
  if (cls === '1') return EX.NOUSER;
  if (cls === '7') return EX.NOPERM;
  if (cls === '3' || cls === '5' || cls === '6' || (cls === '4' && m[3] === '6')) return EX.DATAERR;
  return EX.UNAVAILABLE;
}

/** The exit code for a system error while writing the maildrop or talking to a socket. */
export function exitForErrno(err: unknown): ExitCode {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'EACCES' || code === 'EPERM') return EX.NOPERM;
  if (code === 'ENOSPC' || code === 'EDQUOT' || code === 'EAGAIN') return EX.TEMPFAIL;
  if (code === 'ENOENT' || code === 'ENOTDIR') return EX.CANTCREAT;
  if (code === 'EIO' || code === 'EROFS') return EX.IOERR;
  if (code === 'EMFILE' || code === 'ENFILE' || code === 'ENOMEM') return EX.OSERR;
  return EX.SOFTWARE;
}
