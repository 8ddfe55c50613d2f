/**
 * Counting what reached the receivers (Postfix smtp-sink dumps) against what the load generator
 * got 250 for, and the figures of a scenario.
 */
import type { SmtpSink } from '../../helpers/smtp-sink.js';
import type { Figures } from './profile.js';

/** Copies delivered per message number, found by a recipient pattern with one numeric group. */
export function countByNumber(sinks: readonly SmtpSink[], pattern: RegExp): Map<number, number> {
  const out = new Map<number, number>();
  for (const sink of sinks) {
    for (const m of sink.messages()) {
      for (const r of m.rcptArgs) {
        const hit = pattern.exec(r);
        if (hit) out.set(Number(hit[1]), (out.get(Number(hit[1])) ?? 0) + 1);
      }
    }
  }
  return out;
}

/** Answered messages missing from `delivered` (normal ones) or without a DSN (bounce ones). */
export function missing(answered: Iterable<number>, delivered: Map<number, number>, dsns: Map<number, number>, isBounce: (n: number) => boolean): number[] {
  const out: number[] = [];
  for (const n of answered) {
    if (isBounce(n) ? !dsns.has(n) : !delivered.has(n)) out.push(n);
  }
  return out.sort((a, b) => a - b);
}

/** The standard figures for a set of answered messages. */
export function figures(answered: ReadonlySet<number>, delivered: Map<number, number>, dsns: Map<number, number>, isBounce: (n: number) => boolean): Figures {
  let dup = 0;
  let got = 0;
  let bounced = 0;
  for (const n of answered) {
    const copies = isBounce(n) ? dsns.get(n) ?? 0 : delivered.get(n) ?? 0;
    if (copies > 0) { isBounce(n) ? bounced++ : got++; }
    dup += Math.max(0, copies - 1);
  }
  return { answered: answered.size, delivered: got, duplicated: dup, lost: missing(answered, delivered, dsns, isBounce).length, bounced };
}
