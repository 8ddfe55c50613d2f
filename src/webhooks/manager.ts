/**
 * The webhook manager: one independent dispatcher per configured endpoint (dispatcher.ts), started
 * after the queue store, woken when events are committed, reloaded on SIGHUP, stopped before the
 * store closes. Stored cursors are kept by endpoint name: a reload that changes an endpoint's URL
 * or settings restarts its dispatcher at the same cursor; removing an endpoint stops it and keeps
 * its row (adding it back resumes where it was).
 */
import { isDeepStrictEqual } from 'node:util';
import type { WebhookConfig } from '../config/schema.js';
import { WebhookDispatcher, type DispatcherDeps, type DispatcherStatus, type EventSource } from './dispatcher.js';

export type { EventSource } from './dispatcher.js';

/** An endpoint's status with its backlog. */
export interface WebhookEndpointStatus extends DispatcherStatus {
  /** lastEventId - cursor (events not yet acknowledged, of any type). */
  readonly backlog: number;
}

/** What reload() changed, by endpoint name. */
export interface WebhookReloadResult {
  readonly added: string[];
  readonly removed: string[];
  readonly changed: string[];
}

/** Runs the dispatchers of the configured endpoints. */
export class WebhookManager {
  private readonly dispatchers = new Map<string, WebhookDispatcher>();
  private stopped = false;

  /** `deps` are shared by every dispatcher (source, cursor store, logger, test hooks). */
  constructor(private readonly deps: DispatcherDeps) {}

  /** The event log the dispatchers read. */
  get source(): EventSource {
    return this.deps.source;
  }

  /** Starts a dispatcher per endpoint (returns at once; each loads its cursor on its own). */
  start(endpoints: readonly WebhookConfig[]): void {
    for (const e of endpoints) this.add(e);
    if (endpoints.length) this.deps.logger.info({ endpoints: endpoints.map((e) => e.name) }, 'webhooks started');
  }

  /** Events were committed: wake every idle dispatcher. Never throws; never waits. */
  wake(): void {
    for (const d of this.dispatchers.values()) d.wake();
  }

  /**
   * Takes over a new endpoint list (validated config): new names start, missing ones stop,
   * changed ones restart at their stored cursor. Resolves when the stopped ones have stopped.
   */
  async reload(endpoints: readonly WebhookConfig[]): Promise<WebhookReloadResult> {
    const res: WebhookReloadResult = { added: [], removed: [], changed: [] };
    if (this.stopped) return res;
    const want = new Map(endpoints.map((e) => [e.name, e]));
    const work: Promise<void>[] = [];
    for (const [name, d] of this.dispatchers) {
      const next = want.get(name);
      if (!next) {
        res.removed.push(name);
        this.dispatchers.delete(name);
        work.push(d.stop());
      } else if (!isDeepStrictEqual(next, d.endpoint)) {
        res.changed.push(name);
        this.dispatchers.delete(name);
        // Each endpoint restarts on its own: the new dispatcher starts once the old one wrote its cursor.
        work.push(d.stop().then(() => { if (!this.stopped) this.add(next); }));
      }
    }
    for (const [name, e] of want) {
      if (!this.dispatchers.has(name) && !res.changed.includes(name)) {
        res.added.push(name);
        this.add(e);
      }
    }
    await Promise.all(work);
    if (res.added.length || res.removed.length || res.changed.length) this.deps.logger.info(res, 'webhooks reloaded');
    return res;
  }

  /** Every running endpoint's in-memory status with its backlog (reads lastEventId once). */
  async status(): Promise<WebhookEndpointStatus[]> {
    const last = await this.deps.source.lastEventId().catch(() => undefined);
    return [...this.dispatchers.values()].map((d) => {
      const s = d.status();
      return { ...s, backlog: last === undefined ? 0 : Math.max(0, last - s.cursor) };
    });
  }

  /** Stops every dispatcher (in-flight requests aborted, cursors written). */
  async stop(): Promise<void> {
    this.stopped = true;
    const all = [...this.dispatchers.values()];
    this.dispatchers.clear();
    await Promise.all(all.map((d) => d.stop()));
  }

  private add(e: WebhookConfig): void {
    if (this.stopped || this.dispatchers.has(e.name)) return;
    const d = new WebhookDispatcher(e, this.deps);
    this.dispatchers.set(e.name, d);
    d.start();
  }
}
