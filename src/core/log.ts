/**
 * Logging (pino): one JSON line per event, or a human-readable form on a terminal.
 * Every line about a message carries `queueId`.
 */
import { pino, type Logger } from 'pino';

export type { Logger };

export interface LogOptions {
  readonly level: string;
  readonly format: 'json' | 'pretty' | 'auto';
}

/** Creates the process logger. `pretty` (or `auto` on a TTY) uses pino-pretty in-process. */
export function createLogger(opts: LogOptions, destination: NodeJS.WritableStream = process.stdout): Logger {
  const pretty = opts.format === 'pretty' || (opts.format === 'auto' && (destination as { isTTY?: boolean }).isTTY === true);
  if (pretty) {
    return pino(
      { level: opts.level, base: undefined },
      pino.transport({ target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:standard', ignore: 'pid,hostname', singleLine: true } }),
    );
  }
  return pino({ level: opts.level, base: undefined, timestamp: pino.stdTimeFunctions.isoTime }, destination as never);
}

/** A logger that writes nothing (tests). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
