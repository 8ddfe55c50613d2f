/**
 * The command line of `postline sendmail` (and of `mailq` / `newaliases` through a symlink or a
 * wrapper), parsed as sendmail's getopt does: single-letter options, a value attached ("-fuser")
 * or in the next argument ("-f user"), options end at the first other argument or at "--".
 * Options of sendmail that Postline has no use for are accepted and ignored (listed in `ignored`,
 * shown with -v), as Postfix's sendmail does. Owns only parsing and the checks of option values.
 */
import type { BodyType, DsnNotify, DsnRet } from '../core/envelope.js';
import { EX, SendmailExit } from './sysexits.js';

/** What the command was asked to do. */
export type SendmailMode = 'deliver' | 'smtp' | 'list' | 'flush' | 'aliases' | 'help' | 'nothing';

export interface SendmailArgs {
  readonly mode: SendmailMode;
  /** -t: recipients from To/Cc/Bcc (Resent-* when present), added to the argument recipients. */
  readonly extract: boolean;
  /** -i / -oi: a line with a single "." is content, not the end of input. */
  readonly ignoreDots: boolean;
  /** -f / -r: the envelope sender as given ('' or '<>' for the null sender). */
  readonly from?: string;
  /** -F: the full name for an added From: field. */
  readonly fullName?: string;
  readonly verbose: boolean;
  /** -B 7BIT | 8BITMIME. */
  readonly bodyType?: BodyType;
  /** -N: NOTIFY for every recipient (RFC 3461 4.1). */
  readonly notify?: readonly DsnNotify[];
  /** -R full | hdrs (RFC 3461 4.3). */
  readonly ret?: DsnRet;
  /** -V: ENVID (RFC 3461 4.4). */
  readonly envid?: string;
  /** -C: configuration file (or a directory holding postline.yaml). */
  readonly configFile?: string;
  /** -qI ID / -qR DOMAIN for mode flush. */
  readonly flushId?: string;
  readonly flushDomain?: string;
  /** Recipient arguments (each may be a comma-separated address list). */
  readonly recipients: readonly string[];
  /** Options accepted and ignored, as given. */
  readonly ignored: readonly string[];
}

/** Options that take a value. */
const WITH_VALUE = new Set(['A', 'B', 'C', 'F', 'L', 'N', 'O', 'R', 'V', 'X', 'b', 'e', 'f', 'h', 'o', 'p', 'r']);
/** Flags without a value that change nothing here. */
const IGNORED_FLAGS = new Set(['G', 'U', 'c', 'm', 'n', 'x']);

const usage = (text: string): SendmailExit => new SendmailExit(EX.USAGE, text);

/** -N value: "never", or a comma list of success, failure, delay. @throws SendmailExit (EX_USAGE). */
function parseNotifyOption(v: string): DsnNotify[] {
  const items = v.split(',').map((s) => s.trim().toUpperCase()).filter(Boolean);
  if (items.length === 1 && items[0] === 'NEVER') return ['NEVER'];
  const out: DsnNotify[] = [];
  for (const it of items) {
    if ((it !== 'SUCCESS' && it !== 'FAILURE' && it !== 'DELAY') || out.includes(it)) throw usage(`-N ${v}: expected "never" or a comma list of success, failure, delay`);
    out.push(it);
  }
  if (!out.length) throw usage('-N needs a value');
  return out;
}

/**
 * Parses the arguments after the command name.
 * @param invokedAs the name the program was called by: mailq is -bp, newaliases is -bi.
 * @throws SendmailExit with EX_USAGE for an unknown option, a missing or bad value, a mode Postline does not do.
 */
export function parseSendmailArgs(argv: readonly string[], invokedAs: 'sendmail' | 'mailq' | 'newaliases' = 'sendmail'): SendmailArgs {
  let mode: SendmailMode = invokedAs === 'mailq' ? 'list' : invokedAs === 'newaliases' ? 'aliases' : 'deliver';
  let extract = false;
  let ignoreDots = false;
  let verbose = false;
  const o: { -readonly [K in keyof SendmailArgs]?: SendmailArgs[K] } = {};
  const ignored: string[] = [];
  let i = 0;
  for (; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') { i++; break; }
    if (arg === '--help') { mode = 'help'; continue; }
    if (!arg.startsWith('-') || arg === '-') break;
    if (arg.startsWith('--')) throw usage(`unknown option ${arg}`);
    // A cluster of flags ("-ti"), ending at the first option that takes a value.
    for (let j = 1; j < arg.length; j++) {
      const letter = arg[j]!;
      if (letter === 'q') {
        const rest = arg.slice(j + 1);
        if (mode !== 'list' && mode !== 'aliases') mode = 'flush';
        if (rest.startsWith('I')) o.flushId = rest.slice(1) || argv[++i];
        else if (rest.startsWith('R')) o.flushDomain = rest.slice(1) || argv[++i];
        else if (rest.startsWith('S')) throw usage('-qS is not supported: use -qR DOMAIN or -q');
        else if (rest) { ignored.push(`-q${rest}`); if (mode === 'flush') mode = 'nothing'; } // -q30m: the queue run interval (Postline retries by itself)
        if ((rest.startsWith('I') && !o.flushId) || (rest.startsWith('R') && !o.flushDomain)) throw usage(`-q${rest[0]} needs a value`);
        break;
      }
      if (!WITH_VALUE.has(letter)) {
        if (letter === 't') extract = true;
        else if (letter === 'i') ignoreDots = true;
        else if (letter === 'v') verbose = true;
        else if (letter === 'I') mode = 'aliases';
        else if (IGNORED_FLAGS.has(letter)) ignored.push(`-${letter}`);
        else throw usage(`unknown option -${letter}`);
        continue;
      }
      let value = arg.slice(j + 1);
      if (value === '') {
        if (i + 1 >= argv.length) throw usage(`option -${letter} needs a value`);
        value = argv[++i]!;
      }
      mode = applyValue(letter, value, mode, o, ignored, () => { ignoreDots = true; });
      break;
    }
  }
  const recipients = argv.slice(i);
  return { mode, extract, ignoreDots, verbose, recipients, ignored, ...o };
}

/** Applies one option with its value. @returns the (maybe changed) mode. */
function applyValue(
  letter: string, value: string, mode: SendmailMode,
  o: { -readonly [K in keyof SendmailArgs]?: SendmailArgs[K] }, ignored: string[], setIgnoreDots: () => void,
): SendmailMode {
  switch (letter) {
    case 'f': case 'r': o.from = value; return mode;
    case 'F': o.fullName = value; return mode;
    case 'C': o.configFile = value; return mode;
    case 'B': {
      const b = value.toUpperCase();
      if (b !== '7BIT' && b !== '8BITMIME') throw usage(`-B ${value}: expected 7BIT or 8BITMIME`);
      o.bodyType = b;
      return mode;
    }
    case 'N': o.notify = parseNotifyOption(value); return mode;
    case 'R': {
      const r = value.toUpperCase();
      if (r !== 'FULL' && r !== 'HDRS') throw usage(`-R ${value}: expected full or hdrs`);
      o.ret = r;
      return mode;
    }
    case 'V':
      if (!/^[\x21-\x7e]{1,100}$/.test(value)) throw usage('-V: the envelope ID must be 1-100 printable ASCII characters');
      o.envid = value;
      return mode;
    case 'o':
      // -oi as -i; -oA (alias file), -oe*, -om, -o7, -o8, -od*, anything else: ignored, as Postfix does.
      if (value === 'i') setIgnoreDots();
      else ignored.push(`-o${value}`);
      return mode;
    case 'b': return modeOf(value, mode, ignored);
    default:
      ignored.push(`-${letter} ${value}`); // -A -L -O -X -e -h -p
      return mode;
  }
}

/** -bX: the mode. @throws SendmailExit (EX_USAGE) for modes Postline does not do. */
function modeOf(value: string, mode: SendmailMode, ignored: string[]): SendmailMode {
  switch (value) {
    case 'm': return 'deliver';
    case 's': return 'smtp';
    case 'p': return 'list';
    case 'i': return 'aliases';
    case 'h': case 'H': ignored.push(`-b${value}`); return mode === 'deliver' ? 'nothing' : mode; // no host status database
    case 'd': case 'l': throw usage(`-b${value} (daemon mode) is not done by this command: run \`postline serve\``);
    case 'v': throw usage('-bv (address verification) is not supported');
    default: throw usage(`unknown mode -b${value}`);
  }
}
