/**
 * A bounded in-memory cache of small message bodies just committed, so the first delivery attempt
 * (which follows the commit within milliseconds) streams the body from memory instead of reading
 * it back from the database.
 *
 * Owns: memory only; it is never the source of truth. Bounded by total bytes; the oldest entries
 * are dropped first. The store deletes an entry when the message is removed or quarantined.
 */
export class BodyCache {
  private readonly entries = new Map<string, { parts: readonly Buffer[]; bytes: number }>();
  private bytes = 0;

  /** @param maxBytes total body bytes kept (0 disables the cache). */
  constructor(private readonly maxBytes: number) {}

  /**
   * Keeps the message of `id` as given out by openBody: `parts` in order (the prepended header
   * fields, then the body). Ignored when larger than the whole cache.
   */
  set(id: string, parts: readonly Buffer[]): void {
    const bytes = parts.reduce((n, b) => n + b.length, 0);
    if (bytes > this.maxBytes) return;
    this.delete(id);
    this.entries.set(id, { parts, bytes });
    this.bytes += bytes;
    for (const [old, e] of this.entries) {
      if (this.bytes <= this.maxBytes) break;
      this.entries.delete(old);
      this.bytes -= e.bytes;
    }
  }

  /** The cached parts of `id` (prepended fields, body), or undefined. */
  get(id: string): readonly Buffer[] | undefined {
    return this.entries.get(id)?.parts;
  }

  delete(id: string): void {
    const e = this.entries.get(id);
    if (!e) return;
    this.entries.delete(id);
    this.bytes -= e.bytes;
  }

  /** Total bytes held. */
  size(): number {
    return this.bytes;
  }
}
