/**
 * A bounded in-memory cache of small message bodies just committed, so the first delivery attempt
 * (which follows the commit within milliseconds) streams the body from memory instead of reading
 * it back from the database.
 *
 * Owns: memory only; it is never the source of truth. Bounded by total bytes; the oldest entries
 * are dropped first. The store deletes an entry when the message is removed or quarantined.
 */
export class BodyCache {
  private readonly entries = new Map<string, Buffer>();
  private bytes = 0;

  /** @param maxBytes total body bytes kept (0 disables the cache). */
  constructor(private readonly maxBytes: number) {}

  /** Keeps `body` for `id` (ignored when larger than the whole cache). */
  set(id: string, body: Buffer): void {
    if (body.length > this.maxBytes) return;
    this.delete(id);
    this.entries.set(id, body);
    this.bytes += body.length;
    for (const [old, b] of this.entries) {
      if (this.bytes <= this.maxBytes) break;
      this.entries.delete(old);
      this.bytes -= b.length;
    }
  }

  /** The cached body of `id`, or undefined. */
  get(id: string): Buffer | undefined {
    return this.entries.get(id);
  }

  delete(id: string): void {
    const b = this.entries.get(id);
    if (!b) return;
    this.entries.delete(id);
    this.bytes -= b.length;
  }

  /** Total bytes held. */
  size(): number {
    return this.bytes;
  }
}
