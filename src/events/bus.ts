/**
 * The event bus: synchronous fan-out of typed events to subscribers. A subscriber that throws is
 * logged and kept; it never breaks the emitter (the queue change already happened).
 */
import type { PostlineEvent } from './types.js';

export type EventListener = (e: PostlineEvent) => void;

export class EventBus {
  private readonly listeners = new Set<EventListener>();
  private onListenerError: (err: unknown) => void = () => {};

  /** Subscribes; returns the unsubscribe function. */
  subscribe(fn: EventListener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Sets where errors thrown by listeners are reported. */
  setErrorHandler(fn: (err: unknown) => void): void {
    this.onListenerError = fn;
  }

  /** Delivers `e` to every subscriber, in subscription order. Never throws. */
  emit(e: PostlineEvent): void {
    for (const fn of this.listeners) {
      try {
        fn(e);
      } catch (err) {
        try { this.onListenerError(err); } catch { /* ignore */ }
      }
    }
  }
}
