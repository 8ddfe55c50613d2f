/**
 * A fault-injection layer behind the QueueStore interface, for the fault suite (test/torture/) on
 * machines where it cannot mount a small filesystem of its own.
 *
 * Switched on only by the environment variable POSTLINE_FAULT_DISK=<path of a control file>.
 * The file's content (read at most every 100 ms) says how the disk behaves:
 *   - "ok" or absent: the wrapped store as is;
 *   - "low": freeBytes() reports 0 bytes free (below any reserve: 452 4.3.1 at MAIL);
 *   - "full": freeBytes() reports 0 and every new body write or commit fails with ENOSPC
 *     (StoreError full), as a truly full disk does; reads, outcome writes and removals still work.
 * Without the variable `withFaults` returns the store unchanged (no cost).
 */
import { readFileSync } from 'node:fs';
import { StoreError } from '../core/errors.js';
import type { EventRecord } from '../events/record.js';
import type { SuppressionStore } from '../suppression/types.js';
import type { BodyWriter, NewMessage, QueuedMessage, QueueStore } from './types.js';

type DiskState = 'ok' | 'low' | 'full';

/** Wraps `store` when POSTLINE_FAULT_DISK is set in `env`; otherwise returns it unchanged. */
export function withFaults(store: QueueStore, env: NodeJS.ProcessEnv = process.env): QueueStore {
  const file = env.POSTLINE_FAULT_DISK;
  return file ? new FaultyStore(store, file) : store;
}

const enospc = (what: string): StoreError =>
  new StoreError(`${what}: disk full (injected)`, { full: true, cause: Object.assign(new Error('ENOSPC: no space left on device (injected)'), { code: 'ENOSPC' }) });

class FaultyStore implements QueueStore {
  private cache = { at: 0, state: 'ok' as DiskState };
  constructor(private readonly inner: QueueStore, private readonly file: string) {}

  private state(): DiskState {
    const now = Date.now();
    if (now - this.cache.at > 100) {
      let s: DiskState = 'ok';
      try {
        const t = readFileSync(this.file, 'utf8').trim();
        if (t === 'low' || t === 'full') s = t;
      } catch { /* absent: ok */ }
      this.cache = { at: now, state: s };
    }
    return this.cache.state;
  }

  open(): Promise<void> { return this.inner.open(); }
  close(): Promise<void> { return this.inner.close(); }
  async createBody(id: string): Promise<BodyWriter> {
    if (this.state() === 'full') throw enospc(`cannot create body ${id}`);
    return this.inner.createBody(id);
  }
  async commit(msg: NewMessage, body: BodyWriter, events?: readonly EventRecord[]): Promise<QueuedMessage> {
    if (this.state() === 'full') {
      await body.abort();
      throw enospc(`cannot commit ${msg.id}`);
    }
    return this.inner.commit(msg, body, events);
  }
  openBody(id: string) { return this.inner.openBody(id); }
  get(id: string) { return this.inner.get(id); }
  loadAll() { return this.inner.loadAll(); }
  list() { return this.inner.list(); }
  dueBatch(...a: Parameters<QueueStore['dueBatch']>) { return this.inner.dueBatch(...a); }
  flushMatching(...a: Parameters<QueueStore['flushMatching']>) { return this.inner.flushMatching(...a); }
  countMessages() { return this.inner.countMessages(); }
  async vacuum(): Promise<{ before: number; after: number }> {
    if (!this.inner.vacuum) throw new StoreError('this store cannot be vacuumed');
    return this.inner.vacuum();
  }
  listPage(...a: Parameters<QueueStore['listPage']>) { return this.inner.listPage(...a); }
  countByState() { return this.inner.countByState(); }
  record(...a: Parameters<QueueStore['record']>) { return this.inner.record(...a); }
  setNextAttempt(...a: Parameters<QueueStore['setNextAttempt']>) { return this.inner.setNextAttempt(...a); }
  setHold(...a: Parameters<QueueStore['setHold']>) { return this.inner.setHold(...a); }
  remove(...a: Parameters<QueueStore['remove']>) { return this.inner.remove(...a); }
  quarantine(...a: Parameters<QueueStore['quarantine']>) { return this.inner.quarantine(...a); }
  appendEvents(...a: Parameters<QueueStore['appendEvents']>) { return this.inner.appendEvents(...a); }
  readEvents(...a: Parameters<QueueStore['readEvents']>) { return this.inner.readEvents(...a); }
  lastEventId() { return this.inner.lastEventId(); }
  pruneEvents(...a: Parameters<QueueStore['pruneEvents']>) { return this.inner.pruneEvents(...a); }
  setEventListener(...a: Parameters<QueueStore['setEventListener']>) { this.inner.setEventListener(...a); }
  async freeBytes(): Promise<number> {
    return this.state() === 'ok' ? this.inner.freeBytes() : 0;
  }
  suppressionStore(): SuppressionStore {
    if (!this.inner.suppressionStore) throw new StoreError('this store keeps no suppression list');
    return this.inner.suppressionStore();
  }
}
