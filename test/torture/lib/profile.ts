/**
 * Fault test suite (test/torture/): the profile (short in `npm test`, long with `npm run torture`)
 * and the figures every scenario prints.
 *
 * POSTLINE_TORTURE=long selects the long profile; anything else is the short one, sized so the
 * whole suite stays under about three minutes and never depends on luck.
 */
export const PROFILE: 'short' | 'long' = process.env.POSTLINE_TORTURE === 'long' ? 'long' : 'short';
export const LONG = PROFILE === 'long';

/** What one scenario reports: counts of messages (not connections). */
export interface Figures {
  /** Messages the server answered 250 to. */
  answered: number;
  /** Answered messages found at a receiver at least once. */
  delivered: number;
  /** Extra copies at receivers (a message seen 3 times adds 2). */
  duplicated: number;
  /** Answered messages never delivered, nor bounced with a DSN: must be 0. */
  lost: number;
  /** Answered messages that bounced (their DSN reached the sender). */
  bounced: number;
  /** Anything else worth printing (kills, refusals, timings). */
  [extra: string]: number | string;
}

/** Prints one line of figures, easy to grep: `torture <scenario> [profile] answered=... lost=...`. */
export function report(scenario: string, f: Figures): void {
  const parts = Object.entries(f).map(([k, v]) => `${k}=${v}`);
  console.log(`torture ${scenario} [${PROFILE}] ${parts.join(' ')}`);
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Random integer in [lo, hi]. */
export const randInt = (lo: number, hi: number): number => lo + Math.floor(Math.random() * (hi - lo + 1));
