/**
 * The operator's and the API's actions on the suppression list: list (paged, filtered), add (one
 * or many; an entry already there is replaced), remove, export. Input is normalised here
 * (address.ts) and refused with a SuppressionInputError naming the item and field; every change is
 * written durably with its event. The control socket (server running), the offline CLI (store
 * opened directly) and /api/v1/suppressions all use this one class.
 */
import type { Clock } from '../core/clock.js';
import { addressKey, domainKey, reasonOf, scopeKey, SuppressionInputError } from './address.js';
import type { Suppression, SuppressionPage, SuppressionReason, SuppressionStore } from './types.js';

/** One entry to add, as given (address and scope in any case, a reason name). */
export interface SuppressionInput {
  readonly address: string;
  /** A sending domain or '*' (default '*': every sender). */
  readonly scope?: string;
  /** Default 'manual'. */
  readonly reason?: string;
  readonly description?: string;
  /** ms since epoch; absent: until removed. */
  readonly expiresAt?: number;
}

/** A listing as given: filters in any case. */
export interface SuppressionListInput {
  readonly scope?: string;
  readonly reason?: string;
  /** Addresses starting with this (case-insensitive). */
  readonly address?: string;
  readonly domain?: string;
  readonly after?: string;
  /** 1..1000 (default 100). */
  readonly limit?: number;
  /** Include expired entries. */
  readonly expired?: boolean;
}

/** Who changes the list through the admin. */
export type AdminSource = 'operator' | 'api' | 'import';

/** Entries per write of a large add (one commit each). */
const WRITE_CHUNK = 1000;
/** Longest description kept, characters. */
const MAX_DESCRIPTION = 1000;

export class SuppressionAdmin {
  constructor(private readonly store: SuppressionStore, private readonly clock: Clock) {}

  /** A page of entries. @throws SuppressionInputError for a bad scope, reason or domain. */
  list(q: SuppressionListInput = {}): Promise<SuppressionPage> {
    const domain = q.domain !== undefined ? domainKey(q.domain.replace(/^\*?@/, '')) : undefined;
    if (domain === '') throw new SuppressionInputError(`not a domain name: ${JSON.stringify(q.domain!.slice(0, 100))}`, 'domain');
    return this.store.list({
      limit: q.limit ?? 100,
      ...(q.scope !== undefined ? { scope: scopeKey(q.scope) } : {}),
      ...(q.reason !== undefined ? { reason: reasonOf(q.reason) } : {}),
      ...(q.address !== undefined && q.address !== '' ? { addressPrefix: q.address.trim().toLowerCase() } : {}),
      ...(domain !== undefined ? { domain } : {}),
      ...(q.after !== undefined ? { after: q.after } : {}),
      ...(q.expired ? { expired: true } : {}),
      now: this.clock.now(),
    });
  }

  /**
   * Adds (or replaces) entries, in commits of 1000, each durable with its recipient.suppressed
   * events. @returns the entries as stored. @throws SuppressionInputError before any write; StoreError.
   */
  async add(inputs: readonly SuppressionInput[], source: AdminSource): Promise<Suppression[]> {
    const all = normalizeEntries(inputs, source, this.clock.now());
    const out: Suppression[] = [];
    for (let i = 0; i < all.length; i += WRITE_CHUNK) {
      const chunk = all.slice(i, i + WRITE_CHUNK);
      const r = await this.store.write({ at: this.clock.now(), durable: true, add: chunk.map((entry) => ({ entry, mode: 'replace' as const })) });
      out.push(...r.added);
    }
    return out;
  }

  /**
   * Removes one entry (any reason), durably with its suppression.removed event.
   * @returns it as it was, or undefined when there was none. @throws SuppressionInputError; StoreError.
   */
  async remove(address: string, scope: string | undefined, source: AdminSource): Promise<Suppression | undefined> {
    const key = addressKey(address);
    const r = await this.store.write({ at: this.clock.now(), durable: true, remove: [{ scope: scopeKey(scope), address: key, source }] });
    return r.removed[0];
  }

  /** Calls `fn` with every entry matching `q` (expired ones too unless filtered), a page of 1000 at a time, in address order. */
  async forEach(q: Omit<SuppressionListInput, 'after' | 'limit'>, fn: (items: readonly Suppression[]) => void | Promise<void>): Promise<number> {
    let after: string | undefined;
    let n = 0;
    for (;;) {
      const page = await this.list({ ...q, limit: 1000, ...(after !== undefined ? { after } : {}) });
      if (page.items.length) await fn(page.items);
      n += page.items.length;
      if (!page.next) return n;
      after = page.next;
    }
  }
}

/**
 * The entries from `inputs`, normalised (the last of duplicate keys wins), all checked before
 * anything is written. @throws SuppressionInputError naming the item ("item 3: ...", field "3.address").
 */
export function normalizeEntries(inputs: readonly SuppressionInput[], source: AdminSource, now: number): Suppression[] {
  const byKey = new Map<string, Suppression>();
  inputs.forEach((x, i) => {
    try {
      const e = entryOf(x, source, now);
      byKey.set(`${e.scope}\0${e.address}`, e);
    } catch (err) {
      if (err instanceof SuppressionInputError) throw new SuppressionInputError(`item ${i}: ${err.message}`, `${i}.${err.field}`);
      throw err;
    }
  });
  return [...byKey.values()];
}

/** One normalised entry. @throws SuppressionInputError naming the field. */
function entryOf(x: SuppressionInput, source: AdminSource, now: number): Suppression {
  if (typeof x !== 'object' || x === null || typeof x.address !== 'string') throw new SuppressionInputError('an entry needs an address', 'address');
  const reason: SuppressionReason = reasonOf(x.reason);
  const description = x.description?.replace(/[\x00-\x1f\x7f]+/g, ' ').trim().slice(0, MAX_DESCRIPTION);
  if (x.expiresAt !== undefined && (!Number.isSafeInteger(x.expiresAt) || x.expiresAt <= now)) {
    throw new SuppressionInputError('expiresAt must be a time in the future (ms since epoch)', 'expiresAt');
  }
  return {
    scope: scopeKey(x.scope), address: addressKey(x.address), reason, source,
    ...(description ? { description } : {}),
    createdAt: now,
    ...(x.expiresAt !== undefined ? { expiresAt: x.expiresAt } : {}),
  };
}
