/**
 * Metric families counted in plain maps and fixed-bucket histograms, rendered by a prom-client
 * Registry at scrape time. They exist for the event bus's hot path: a prom-client
 * `counter.inc(labels)` hashes its label object on every call (about 200 ns); these cost a map
 * lookup or two and allocate nothing once a label value has been seen.
 *
 * prom-client's Registry renders any registered object with `name`, `help`, `type` and an async
 * `get()` returning `{ name, help, type, values: [{ labels, value, metricName? }], aggregator }`.
 */
import type { Metric, Registry } from 'prom-client';
import { newHistogram, observe, type FixedHistogram } from '../core/fixed-histogram.js';

/** One sample as the Registry renders it. */
interface Row {
  readonly labels: Readonly<Record<string, string | number>>;
  readonly value: number;
  readonly metricName?: string;
}

/** Registers a metric whose samples are produced by `rows()` at each scrape. */
function register(registry: Registry, name: string, help: string, type: 'counter' | 'histogram', rows: () => Row[]): void {
  const get = async (): Promise<unknown> => ({ name, help, type, values: rows(), aggregator: 'sum' });
  registry.registerMetric({ name, help, type, aggregator: 'sum', get, reset: () => {} } as unknown as Metric);
}

/**
 * The samples of one histogram series: cumulative `_bucket` rows with `le`, then `_sum` and
 * `_count`, each with `labels`.
 */
export function histogramRows(name: string, h: FixedHistogram, labels: Readonly<Record<string, string>> = {}): Row[] {
  const rows: Row[] = [];
  let acc = 0;
  for (let i = 0; i < h.bounds.length; i++) {
    acc += h.counts[i] ?? 0;
    rows.push({ labels: { ...labels, le: h.bounds[i]! }, value: acc, metricName: `${name}_bucket` });
  }
  acc += h.counts[h.bounds.length] ?? 0;
  rows.push({ labels: { ...labels, le: '+Inf' }, value: acc, metricName: `${name}_bucket` });
  rows.push({ labels, value: h.sum, metricName: `${name}_sum` });
  rows.push({ labels, value: h.count, metricName: `${name}_count` });
  return rows;
}

/** A counter with one or two labels. Callers pass bounded label values (labels.ts). */
export class CounterFamily {
  private readonly counts = new Map<string, Map<string, number>>();

  /** @param labelNames one or two label names. */
  constructor(registry: Registry, name: string, help: string, private readonly labelNames: readonly [string] | readonly [string, string]) {
    register(registry, name, help, 'counter', () => this.rows());
  }

  /** Makes the series (a) or (a, b) exist at 0 (so a rate over it is defined before its first count). */
  zero(a: string, b = ''): void {
    let inner = this.counts.get(a);
    if (inner === undefined) {
      inner = new Map();
      this.counts.set(a, inner);
    }
    if (!inner.has(b)) inner.set(b, 0);
  }

  /** Adds 1 to the series (a) or (a, b). */
  inc(a: string, b = ''): void {
    let inner = this.counts.get(a);
    if (inner === undefined) {
      inner = new Map();
      this.counts.set(a, inner);
    }
    inner.set(b, (inner.get(b) ?? 0) + 1);
  }

  private rows(): Row[] {
    const [n1, n2] = this.labelNames;
    const rows: Row[] = [];
    for (const [a, inner] of this.counts) {
      for (const [b, value] of inner) rows.push({ labels: n2 === undefined ? { [n1]: a } : { [n1]: a, [n2]: b }, value });
    }
    return rows;
  }
}

/** A histogram with fixed buckets and none or one label. */
export class HistogramFamily {
  private readonly series = new Map<string, FixedHistogram>();

  /** @param bounds bucket upper bounds, ascending; @param labelName absent: one series, rendered from the start. */
  constructor(registry: Registry, private readonly name: string, help: string, private readonly bounds: readonly number[], private readonly labelName?: string) {
    if (labelName === undefined) this.series.set('', newHistogram(bounds));
    register(registry, name, help, 'histogram', () => this.rows());
  }

  /** Observes `v` in the series `label` ('' without a label). */
  observe(label: string, v: number): void {
    let h = this.series.get(label);
    if (h === undefined) {
      h = newHistogram(this.bounds);
      this.series.set(label, h);
    }
    observe(h, v);
  }

  private rows(): Row[] {
    const rows: Row[] = [];
    const ln = this.labelName;
    for (const [label, h] of this.series) rows.push(...histogramRows(this.name, h, ln === undefined ? {} : { [ln]: label }));
    return rows;
  }
}

/** A histogram kept elsewhere (the writer thread's FixedHistogram), read at each scrape. */
export function registerFixedHistogram(registry: Registry, name: string, help: string, read: () => FixedHistogram | undefined): void {
  register(registry, name, help, 'histogram', () => {
    const h = read();
    return h ? histogramRows(name, h) : [];
  });
}
