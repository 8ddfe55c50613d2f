/**
 * Publishing committed events to the store's listener only once a WAL fsync covers them (the
 * durable watermark, writer-client.ts): no reader hears of an event a power loss could still take
 * back. Events of one commit are handed over together, in id order.
 */
import type { Logger } from '../../core/log.js';
import type { StoredEvent } from '../../events/record.js';

export class EventPublisher {
  /** Committed events not yet covered by a WAL fsync, oldest first. */
  private unpublished: StoredEvent[][] = [];
  listener: ((events: readonly StoredEvent[]) => void) | undefined;

  constructor(private readonly logger: Logger) {}

  /** Keeps the events of one commit (non-empty, numbered) until they are durable. */
  committed(events: StoredEvent[]): void {
    this.unpublished.push(events);
  }

  /**
   * Hands the listener every kept commit whose events are all up to `durableId`, in id order, one
   * call per commit. Later ones wait for the next fsync (a full commit or the writer's idle flush,
   * about 0.5 s). Listener errors are logged.
   */
  publishUpTo(durableId: number): void {
    let n = 0;
    while (n < this.unpublished.length) {
      const list = this.unpublished[n]!;
      if (list[list.length - 1]!.id > durableId) break;
      n++;
    }
    if (n === 0) return;
    const ready = this.unpublished.splice(0, n);
    if (this.unpublished.length === 0) this.unpublished = [];
    if (!this.listener) return;
    for (const list of ready.sort((a, b) => a[0]!.id - b[0]!.id)) {
      try {
        this.listener(list);
      } catch (err) {
        this.logger.error({ err }, 'event listener failed');
      }
    }
  }
}
