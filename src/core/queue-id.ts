/**
 * Queue IDs: short, unique, time-ordered names for queued messages (like Postfix's long queue IDs).
 * Shape: 10 chars of base-32 milliseconds since epoch followed by 8 random base-32 chars, e.g. "01JD3K7Q2MX4T9R1ZB".
 */
import { randomBytes } from 'node:crypto';

const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ'; // Crockford base-32, no I L O U

/** Returns a new queue ID (18 chars, [0-9A-Z]); sorts by creation time to the millisecond. */
export function newQueueId(nowMs: number = Date.now()): string {
  let t = Math.floor(nowMs);
  let time = '';
  for (let i = 0; i < 10; i++) {
    time = ALPHABET[t % 32] + time;
    t = Math.floor(t / 32);
  }
  const rnd = randomBytes(8);
  let tail = '';
  for (const b of rnd) tail += ALPHABET[b % 32];
  return time + tail;
}

/** True when `s` has the shape of a queue ID (used to validate CLI input and file names). */
export function isQueueId(s: string): boolean {
  return /^[0-9A-Z]{18}$/.test(s);
}
