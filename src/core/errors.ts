/**
 * The one error base class (DESIGN.md convention 3): a stable `code`, a `temporary` flag and the
 * SMTP reply it maps to. Unknown failures are temporary.
 */
import { R, type SmtpReply } from './reply.js';
import type { ErrorCode } from './error-codes.js';

export type { ErrorCode } from './error-codes.js';

/** Base class of every error Postline raises on purpose. */
export class PostlineError extends Error {
  /** Stable machine-readable code, e.g. 'ERR_STORE_FULL' (core/error-codes.ts). */
  readonly code: ErrorCode;
  /** True when retrying later may succeed (4xx), false for permanent failures (5xx). */
  readonly temporary: boolean;
  /** The reply a client is given when this error ends a command. */
  readonly reply: SmtpReply;
  /** A refusal by a policy check ("dmarc"): named in the message.rejected event and its metrics. */
  readonly check?: string;

  constructor(code: ErrorCode, message: string, opts: { temporary?: boolean; reply?: SmtpReply; cause?: unknown; check?: string } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'PostlineError';
    this.code = code;
    this.temporary = opts.temporary ?? true;
    this.reply = opts.reply ?? R.localError;
    if (opts.check !== undefined) this.check = opts.check;
  }
}

/** A command was given bad arguments (the CLI); permanent. */
export class UsageError extends PostlineError {
  constructor(message: string) {
    super('ERR_USAGE', message, { temporary: false });
    this.name = 'UsageError';
  }
}

/** A call made in the wrong state (started twice, used after close); a programming error. */
export class StateError extends PostlineError {
  constructor(message: string) {
    super('ERR_STATE', message, { temporary: false });
    this.name = 'StateError';
  }
}

/** A configuration file or value is invalid; `key` names the offending key path. */
export class ConfigError extends PostlineError {
  constructor(message: string, readonly key?: string) {
    super('ERR_CONFIG', message, { temporary: false });
    this.name = 'ConfigError';
  }
}

/** The queue store could not commit (disk full, I/O error). Maps to 452 4.3.1 / 451 4.3.0. */
export class StoreError extends PostlineError {
  constructor(message: string, opts: { full?: boolean; cause?: unknown } = {}) {
    super(opts.full ? 'ERR_STORE_FULL' : 'ERR_STORE', message, {
      temporary: true,
      reply: opts.full ? R.insufficientStorage : R.localError,
      cause: opts.cause,
    });
    this.name = 'StoreError';
  }
}

/** Maps any thrown value to a PostlineError; unknown failures become temporary local errors. */
export function toPostlineError(err: unknown): PostlineError {
  if (err instanceof PostlineError) return err;
  const e = err as NodeJS.ErrnoException | undefined;
  if (e && (e.code === 'ENOSPC' || e.code === 'EDQUOT')) return new StoreError(e.message, { full: true, cause: e });
  return new PostlineError('ERR_INTERNAL', e?.message ?? String(err), { temporary: true, cause: err });
}

/**
 * A command other than `serve` found no data where the configuration points (no `queue.db`, or no
 * data directory at all). Commands that only read or change existing state never create one, so a
 * wrong working directory or a missing `--config` cannot make a second, empty queue.
 * A ConfigError: the CLI exits with its configuration error code (2).
 */
export class NoDataDirError extends ConfigError {
  constructor(message: string, readonly dataDir: string) {
    super(message, 'dataDir');
    this.name = 'NoDataDirError';
  }
}
