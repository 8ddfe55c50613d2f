/**
 * Persisted destination states (traffic shaping, shaping.ts): suspensions (by the operator with
 * `postline queue suspend`, or by a reply that matched a throttle pattern) and throttles, so they
 * survive a restart. The SQLite store is the table `destination_states` in queue.db (migration 10)
 * on a side connection (spool/sqlite/side-db.ts) with synchronous=FULL (an operator's suspension
 * must stick), so `postline queue suspend` works with the server stopped too; the scheduler loads
 * the table at start. A memory store serves tests.
 */
import type Database from 'better-sqlite3';
import { openSideDatabase } from '../spool/sqlite/side-db.js';

/** One stored state. Times are ms since epoch. */
export interface DestinationStateRecord {
  /** The destination name (config/delivery-shaping.ts destinationText: a next-hop key for reply states). */
  readonly destination: string;
  readonly kind: 'suspend' | 'throttle';
  /** operator: `queue suspend`; reply: a remote reply matched delivery.throttlePatterns. */
  readonly source: 'operator' | 'reply';
  /** When it ends by itself; absent: until `queue resume`. */
  readonly until?: number;
  readonly reason: string;
  /** throttle: the share of the limits kept (the pattern's factor to the power of the matches). */
  readonly factor?: number;
  readonly since: number;
}

/** Storage of destination states. Methods may throw the backend's error (e.g. SqliteError). */
export interface DestinationStateStore {
  list(): Promise<DestinationStateRecord[]>;
  /** Inserts or replaces the state of (destination, kind). */
  put(r: DestinationStateRecord): Promise<void>;
  /** Forgets (destination, kind); both kinds when `kind` is absent. @returns rows removed. */
  remove(destination: string, kind?: DestinationStateRecord['kind']): Promise<number>;
  close(): Promise<void>;
}

/** In memory (tests, a scheduler without a data directory). */
export class MemoryDestinationStateStore implements DestinationStateStore {
  private readonly rows = new Map<string, DestinationStateRecord>();
  async list(): Promise<DestinationStateRecord[]> { return [...this.rows.values()].map((r) => ({ ...r })); }
  async put(r: DestinationStateRecord): Promise<void> { this.rows.set(`${r.kind} ${r.destination}`, { ...r }); }
  async remove(destination: string, kind?: DestinationStateRecord['kind']): Promise<number> {
    let n = 0;
    for (const k of kind ? [kind] : (['suspend', 'throttle'] as const)) if (this.rows.delete(`${k} ${destination}`)) n++;
    return n;
  }
  async close(): Promise<void> { /* nothing to close */ }
}

interface Row {
  destination: string;
  kind: string;
  source: string;
  until: number | null;
  reason: string;
  factor: number | null;
  since: number;
}

const fromRow = (r: Row): DestinationStateRecord => ({
  destination: r.destination,
  kind: r.kind === 'throttle' ? 'throttle' : 'suspend',
  source: r.source === 'reply' ? 'reply' : 'operator',
  ...(r.until !== null ? { until: r.until } : {}),
  reason: r.reason,
  ...(r.factor !== null ? { factor: r.factor } : {}),
  since: r.since,
});

/** Longest reason kept, characters. */
const MAX_REASON = 500;

/** DestinationStateStore in queue.db (table destination_states) on its own connection. */
export class SqliteDestinationStateStore implements DestinationStateStore {
  private readonly stmts;

  /** @param db a side connection brought to schema 10 or later; closed by close() when `ownsDb`. */
  constructor(private readonly db: Database.Database, private readonly ownsDb = true) {
    this.stmts = {
      list: db.prepare<[], Row>('SELECT * FROM destination_states ORDER BY destination, kind'),
      put: db.prepare(`INSERT INTO destination_states (destination, kind, source, until, reason, factor, since)
        VALUES (@destination, @kind, @source, @until, @reason, @factor, @since)
        ON CONFLICT (destination, kind) DO UPDATE SET source = excluded.source, until = excluded.until,
          reason = excluded.reason, factor = excluded.factor, since = excluded.since`),
      removeOne: db.prepare<[string, string]>('DELETE FROM destination_states WHERE destination = ? AND kind = ?'),
      removeAll: db.prepare<[string]>('DELETE FROM destination_states WHERE destination = ?'),
    };
  }

  /**
   * Opens the store on `dataDir/queue.db`. @param create false: fail with NoDataDirError when there is
   * no queue.db (the CLI never makes a queue). @throws NoDataDirError, SqliteError.
   */
  static open(dataDir: string, create = true): SqliteDestinationStateStore {
    const db = openSideDatabase(dataDir, { create });
    db.pragma('synchronous = FULL');
    return new SqliteDestinationStateStore(db);
  }

  async list(): Promise<DestinationStateRecord[]> {
    return this.stmts.list.all().map(fromRow);
  }

  async put(r: DestinationStateRecord): Promise<void> {
    this.stmts.put.run({
      destination: r.destination, kind: r.kind, source: r.source, until: r.until ?? null,
      reason: r.reason.replace(/[\r\n]+/g, ' ').slice(0, MAX_REASON), factor: r.factor ?? null, since: r.since,
    });
  }

  async remove(destination: string, kind?: DestinationStateRecord['kind']): Promise<number> {
    return (kind ? this.stmts.removeOne.run(destination, kind) : this.stmts.removeAll.run(destination)).changes;
  }

  async close(): Promise<void> {
    if (this.ownsDb && this.db.open) this.db.close();
  }
}
