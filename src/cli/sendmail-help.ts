/**
 * The --help text of `postline sendmail` (also `mailq --help`, `newaliases --help`): options,
 * where the configuration comes from, the wrapper and symlink set-up, and the exit codes.
 */
import { EXIT_TABLE } from './sysexits.js';

/** The help text, ending with a newline. */
export function sendmailHelp(): string {
  const codes = EXIT_TABLE.map(([code, name, when]) => `  ${String(code).padStart(2)}  ${name.padEnd(14)} ${when}`).join('\n');
  return `Usage: postline sendmail [options] [--] [recipient ...]
       mailq          (postline sendmail -bp)
       newaliases     (postline sendmail -bi)

A sendmail-compatible command: reads a message on standard input and queues it in the running
Postline through dataDir/submit.sock, or, when no server answers, in dataDir/maildrop/ (picked up
when the server runs). Line endings become CRLF; a missing From: is added (-F, else $NAME, and the
sender); the server adds Date: and Message-ID: when missing. Bcc: and Resent-Bcc: are removed.

Options:
  -t            recipients from To:, Cc:, Bcc: (from Resent-To/Cc/Bcc when any of those is present);
                recipients given as arguments are ADDED to them (as Postfix does; Sendmail 8
                would drop them instead)
  -i, -oi       a line with only "." is content (without it, such a line ends the input)
  -f ADDR       envelope sender (also -r ADDR; "" or "<>": the null sender). Default USER@origin
  -F NAME       full name for the From: field added when the message has none
  -B TYPE       body type: 7BIT or 8BITMIME (default 8BITMIME: content is not inspected)
  -N DSN        delivery notices for every recipient: never, or a list of success,failure,delay
  -R RET        failure notices return "full" message or "hdrs" only
  -V ENVID      envelope ID for delivery notices (RFC 3461)
  -C FILE       configuration file (or a directory holding postline.yaml)
  -v            say on standard error where the message went
  -bm           read a message and queue it (the default)
  -bs           SMTP on standard input and output (no TLS, no AUTH; every recipient accepted)
  -bp           list the queue (mailq); needs the control socket: root or the server's user
  -bi, -I       newaliases: aliases are local.aliases in the configuration (checked as it
                loads); a running server is sent SIGHUP to take them over (root or its user)
  -q            try all deferred mail now; -qR DOMAIN that domain's, -qI ID one message;
                -qINTERVAL (e.g. -q30m) is ignored: Postline retries by itself
  --            end of options
  Ignored as Postfix ignores them: -A x, -G, -U, -c, -m, -n, -x, -e x, -h N, -L x, -O x=y,
  -X x, -p x, -o x (-oem, -odb, -om, -o7, -o8, -oA...), -bh, -bH.
  Not done: -bd, -bl (run \`postline serve\`), -bv, -qS.

Configuration: -C FILE, else $POSTLINE_CONFIG, else /etc/postline/postline.yaml when it exists,
else the embedded defaults (dataDir ./var of the working directory: give cron and PHP a
configuration file with an absolute dataDir). PHP: sendmail_path = "postline sendmail -t -i" in
php.ini (or /usr/sbin/sendmail -t -i with the wrapper below). Cron and PHP keep little of the
environment: /etc/postline/postline.yaml is found without any.

As /usr/sbin/sendmail: a symlink to the postline program (\`ln -s "$(command -v postline)"
/usr/sbin/sendmail\`; likewise /usr/bin/mailq and /usr/bin/newaliases: the name called decides),
or a two-line shell wrapper: #!/bin/sh / exec postline sendmail "$@" (mailq: ... sendmail -bp "$@").
npm installs no program named sendmail, so another MTA's is never shadowed.

Exit codes (sysexits.h):
${codes}
`;
}
