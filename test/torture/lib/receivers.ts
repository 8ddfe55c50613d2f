/**
 * The receivers most fault scenarios share: a sink for normal mail (sink.test), a sink that refuses
 * every RCPT with 5xx (bounce.test) and the senders' home sink where DSNs arrive (origin.test).
 */
import { SmtpSink } from '../../helpers/smtp-sink.js';

export interface Receivers {
  readonly sink: SmtpSink;
  readonly hard: SmtpSink;
  readonly home: SmtpSink;
  /** delivery.routes entries for sink.test, bounce.test and origin.test. */
  readonly routes: Array<{ domain: string; host: string; port: number; tls: 'none' }>;
  cleanup(): Promise<void>;
}

/** Starts the three smtp-sinks on free loopback ports. */
export async function startReceivers(): Promise<Receivers> {
  const sink = await new SmtpSink().start();
  const hard = await new SmtpSink(['-f', 'RCPT']).start();
  const home = await new SmtpSink().start();
  const route = (domain: string, s: SmtpSink) => ({ domain, host: '127.0.0.1', port: s.port, tls: 'none' as const });
  return {
    sink, hard, home,
    routes: [route('sink.test', sink), route('bounce.test', hard), route('origin.test', home)],
    cleanup: async () => { await Promise.all([sink.cleanup(), hard.cleanup(), home.cleanup()]); },
  };
}
