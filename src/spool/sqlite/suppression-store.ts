/**
 * SqliteSuppressionStore: the embedded SuppressionStore (src/suppression/types.ts) in queue.db
 * (migration 11), beside the queue it shares a writer with.
 *
 * Writes go through the queue store's writer thread as one `suppress` operation each
 * (suppression-sql.ts): the rows, their events (recipient.suppressed / suppression.removed) and a
 * reader's cursor in ONE savepoint of the next group commit. Reads run on the queue store's read
 * connection on the main thread (WAL: each commit is visible once its promise resolved).
 *
 * The check on the RCPT and API paths: nothing at all while the list is empty (one flag); else an
 * in-memory Bloom filter of every key (suppression/key-filter.ts, 10 bits a key, built in chunks
 * at the first check and again when the list outgrew it) answers "not on the list" for the four
 * keys asked (the address and its '*@domain', in the sender's scope and in '*'); only a "maybe"
 * reads: one statement probing the four primary keys, behind a small cache of recent answers that
 * every write empties. The process that holds the queue store is the only writer (the CLI goes
 * through the control socket while the server runs), so filter and cache never miss a change.
 */
import type Database from 'better-sqlite3';
import { StoreError } from '../../core/errors.js';
import type { EventRecord } from '../../events/record.js';
import { domainOfKey, wildcardOf } from '../../suppression/address.js';
import { removedEvent, suppressedEvent } from '../../suppression/events.js';
import { KeyFilter } from '../../suppression/key-filter.js';
import type {
  Suppression, SuppressionPage, SuppressionQuery, SuppressionReason, SuppressionStore, SuppressionWrite, SuppressionWriteResult,
} from '../../suppression/types.js';
import { numbered } from './listing.js';
import { listSuppressionRows, prepareSuppressionReadStatements, type SuppressionItem, type SuppressionReadStatements, type SuppressionRow } from './suppression-sql.js';
import type { WriteOutcome } from './writer-client.js';
import type { WriteOp } from './writer-protocol.js';

/** Answers the check cache keeps (oldest forgotten first). */
const CACHE_ENTRIES = 4096;
/** Keys a new filter is sized for at least, and rows read per step while building one. */
const FILTER_MIN_KEYS = 65_536;
const FILTER_CHUNK = 2000;
/** The filter's hash state of the scope '*'. */
const ALL_PREFIX = KeyFilter.prefix('*');

/** An entry from its row. */
export function toSuppression(r: SuppressionRow): Suppression {
  return {
    scope: r.scope, address: r.address, reason: r.reason as SuppressionReason, source: r.source,
    ...(r.description !== null ? { description: r.description } : {}),
    createdAt: r.created_at,
    ...(r.expires_at !== null ? { expiresAt: r.expires_at } : {}),
  };
}

function toRow(e: Suppression): SuppressionRow {
  return {
    scope: e.scope, address: e.address, domain: domainOfKey(e.address), reason: e.reason, source: e.source,
    description: e.description ?? null, created_at: e.createdAt, expires_at: e.expiresAt ?? null,
  };
}

/** The opaque cursor of a listing: the last item's key. */
function encodeCursor(e: Suppression): string {
  return Buffer.from(JSON.stringify([e.address, e.scope])).toString('base64url');
}

function decodeCursor(c: string): { address: string; scope: string } | undefined {
  try {
    const v = JSON.parse(Buffer.from(c, 'base64url').toString('utf8')) as unknown;
    if (Array.isArray(v) && v.length === 2 && typeof v[0] === 'string' && typeof v[1] === 'string') return { address: v[0], scope: v[1] };
  } catch { /* not ours */ }
  return undefined;
}

/** What the queue store lends: its read connection and its writer (with event publishing). */
export interface SuppressionStoreBackend {
  readonly db: Database.Database;
  /** Runs one writer operation with its events (same savepoint), as SqliteQueueStore's own writes. */
  write(op: WriteOp, events: readonly EventRecord[]): Promise<WriteOutcome>;
}

export class SqliteSuppressionStore implements SuppressionStore {
  private readonly stmts: SuppressionReadStatements;
  /** False while the table is empty: the check then costs one test. */
  private nonEmpty: boolean;
  /** Recent check answers by "scope NUL address" (null: not suppressed); emptied by every write. */
  private readonly answers = new Map<string, Suppression | null>();
  /** The Bloom filter of every key, once built; the one being built (both get each add). */
  private filter: KeyFilter | undefined;
  private building: KeyFilter | undefined;
  /** Entries removed since the filter was built (their bits stay set). */
  private removedSinceBuild = 0;

  constructor(private readonly backend: SuppressionStoreBackend) {
    this.stmts = prepareSuppressionReadStatements(backend.db);
    this.nonEmpty = this.stmts.any.get() !== undefined;
  }

  /** Bytes and keys of the in-memory filter (undefined before the first check built it). */
  filterStats(): { bytes: number; keys: number; capacity: number } | undefined {
    const f = this.filter;
    return f ? { bytes: f.bytes, keys: f.size, capacity: f.capacity } : undefined;
  }

  check(senderScope: string | undefined, address: string, now: number): Suppression | undefined {
    if (!this.nonEmpty) return undefined;
    const scope = senderScope ?? '*';
    const d = wildcardOf(address);
    const f = this.filter;
    if (f) {
      const own = scope === '*' ? ALL_PREFIX : KeyFilter.prefix(scope);
      if (!f.mightHaveAfter(ALL_PREFIX, address) && !f.mightHaveAfter(ALL_PREFIX, d) && (scope === '*' || (!f.mightHaveAfter(own, address) && !f.mightHaveAfter(own, d)))) return undefined;
    } else if (!this.building) {
      this.rebuild();
    }
    const key = `${scope}\0${address}`;
    const hit = this.answers.get(key);
    if (hit === null) return undefined;
    if (hit !== undefined && (hit.expiresAt === undefined || hit.expiresAt > now)) return hit;
    this.open();
    const row = scope === '*' ? this.stmts.checkAll.get({ a: address, d, now }) : this.stmts.check.get({ s: scope, a: address, d, now });
    const found = row ? toSuppression(row) : null;
    if (this.answers.size >= CACHE_ENTRIES) this.answers.delete(this.answers.keys().next().value!);
    this.answers.set(key, found);
    return found ?? undefined;
  }

  /**
   * Builds a new filter from the table, sized for twice its rows, FILTER_CHUNK rows per macrotask
   * (keyset paging: no statement stays open between steps), so a large list never holds the event
   * loop; until it is done the old filter (or none: every check reads) answers. Never throws.
   */
  private rebuild(): void {
    if (this.building) return;
    let rows: number;
    try {
      rows = this.stmts.count.get()?.n ?? 0;
    } catch {
      return;
    }
    const nf = (this.building = new KeyFilter(Math.max(FILTER_MIN_KEYS, 2 * rows)));
    const removedBefore = this.removedSinceBuild;
    let after: { scope: string; address: string } | undefined;
    const step = (): void => {
      if (this.building !== nf) return;
      try {
        const page = after ? this.stmts.keysAfter.all(after.scope, after.address, FILTER_CHUNK) : this.stmts.keysFirst.all(FILTER_CHUNK);
        for (const r of page) nf.add(`${r.scope}\0${r.address}`);
        if (page.length === FILTER_CHUNK) {
          after = page[page.length - 1]!;
          setImmediate(step);
          return;
        }
        this.filter = nf;
        this.removedSinceBuild -= removedBefore;
      } catch { /* the store closed: no filter, every check reads */ }
      this.building = undefined;
    };
    setImmediate(step); // never on the caller's path (the first check)
  }

  /** Keeps the filters up to date after a write. */
  private noteChanges(added: readonly Suppression[], removed: number): void {
    for (const e of added) {
      const k = `${e.scope}\0${e.address}`;
      this.filter?.add(k);
      this.building?.add(k);
    }
    this.removedSinceBuild += removed;
    const f = this.filter;
    if (f && (f.size > f.capacity || this.removedSinceBuild > f.capacity / 2)) this.rebuild();
  }

  async get(scope: string, address: string): Promise<Suppression | undefined> {
    this.open();
    const r = this.stmts.get.get(scope, address);
    return r ? toSuppression(r) : undefined;
  }

  async list(q: SuppressionQuery): Promise<SuppressionPage> {
    this.open();
    const limit = Math.min(1000, Math.max(1, Math.floor(q.limit)));
    const after = q.after !== undefined ? decodeCursor(q.after) : undefined;
    const rows = listSuppressionRows(this.backend.db, {
      ...(q.scope !== undefined ? { scope: q.scope } : {}),
      ...(q.reason !== undefined ? { reason: q.reason } : {}),
      ...(q.addressPrefix !== undefined ? { addressPrefix: q.addressPrefix } : {}),
      ...(q.domain !== undefined ? { domain: q.domain } : {}),
      ...(after ? { after } : {}),
      expired: q.expired === true, now: q.now ?? Date.now(), limit,
    });
    const items = rows.map(toSuppression);
    return items.length === limit ? { items, next: encodeCursor(items[items.length - 1]!) } : { items };
  }

  /**
   * One `suppress` write (see SuppressionWrite). Removes are matched against the committed row
   * first (its fields go into the suppression.removed event); the writer removes it only if it is
   * still there with an allowed reason. @throws StoreError when the commit fails (then nothing changed).
   */
  async write(w: SuppressionWrite): Promise<SuppressionWriteResult> {
    this.open();
    const items: SuppressionItem[] = [];
    const events: EventRecord[] = [];
    const entries: { kind: 'add' | 'remove'; entry: Suppression }[] = [];
    for (const a of w.add ?? []) {
      items.push({ kind: 'add', row: toRow(a.entry), mode: a.mode });
      events.push(suppressedEvent(a.entry, w.at, a.context));
      entries.push({ kind: 'add', entry: a.entry });
    }
    for (const r of w.remove ?? []) {
      const row = this.stmts.get.get(r.scope, r.address);
      if (!row) continue;
      const entry = toSuppression(row);
      if (r.onlyReasons && !r.onlyReasons.includes(entry.reason)) continue;
      items.push({ kind: 'remove', scope: r.scope, address: r.address, reasons: r.onlyReasons ? JSON.stringify(r.onlyReasons) : null });
      events.push(removedEvent(entry, w.at, r.source, r.context));
      entries.push({ kind: 'remove', entry });
    }
    const soft = (w.softBounces ?? []).map((c) => ({ scope: c.scope, address: c.address, count: Math.max(0, Math.floor(c.count)), at: w.at }));
    if (items.length === 0 && soft.length === 0 && !w.cursor) return { added: [], removed: [], events: [] };
    const res = await this.backend.write({
      kind: 'suppress', items, now: w.at, softBounces: soft,
      cursor: w.cursor ? { name: w.cursor.name, id: Math.floor(w.cursor.id), at: w.at } : null,
      durable: w.durable === true,
    }, events);
    this.answers.clear();
    const kept = res.kept ?? [];
    const added = kept.filter((k) => entries[k]!.kind === 'add').map((k) => entries[k]!.entry);
    const removed = kept.filter((k) => entries[k]!.kind === 'remove').map((k) => entries[k]!.entry);
    if (added.length) this.nonEmpty = true;
    else if (removed.length) this.nonEmpty = this.stmts.any.get() !== undefined;
    this.noteChanges(added, removed.length);
    const stored = res.firstEventId !== undefined ? numbered(kept.map((k) => events[k]!), res.firstEventId) : [];
    return { added, removed, events: stored };
  }

  async softBounces(scope: string, address: string): Promise<number> {
    this.open();
    return this.stmts.softBounces.get(scope, address)?.count ?? 0;
  }

  async cursor(name: string): Promise<number> {
    this.open();
    return this.stmts.cursor.get(name)?.cursor ?? 0;
  }

  /** @throws StoreError when the queue store was closed. */
  private open(): void {
    if (!this.backend.db.open) throw new StoreError('queue store is not open');
  }
}
