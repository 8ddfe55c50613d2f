/**
 * A strict parser of the Prometheus text exposition format (version 0.0.4), for tests: every line
 * must be a sample, a `# HELP` or `# TYPE` comment, or blank; anything else throws with its line
 * number. Also checked: metric and label names, label value escapes (\\ \" \n), values (floats,
 * +Inf, -Inf, NaN in any case, as Go's ParseFloat), one TYPE and one HELP per family and before its samples, no duplicate series,
 * sample names matching their family's type (histogram: _bucket with `le`, _sum, _count; buckets
 * cumulative and the +Inf bucket equal to _count).
 */
import assert from 'node:assert/strict';

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
  readonly timestamp?: number;
}

export interface Family {
  readonly name: string;
  type?: string;
  help?: string;
}

export interface Exposition {
  readonly samples: readonly Sample[];
  readonly families: ReadonlyMap<string, Family>;
  /** The value of the one sample with this name whose labels include `labels`; undefined when none. @throws when several match. */
  value(name: string, labels?: Readonly<Record<string, string>>): number | undefined;
  /** Sum of every sample with this name whose labels include `labels` (0 when none). */
  sum(name: string, labels?: Readonly<Record<string, string>>): number;
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

class ParseError extends Error {
  constructor(line: number, text: string, why: string) {
    super(`line ${line}: ${why}: ${JSON.stringify(text.length > 200 ? text.slice(0, 200) + '...' : text)}`);
  }
}

/** A value as Go's strconv.ParseFloat reads it (the format's definition): decimal floats, and NaN, Inf, Infinity with any case and sign. */
function parseValue(s: string): number | undefined {
  const special = /^([+-]?)(inf|infinity|nan)$/i.exec(s);
  if (special) return special[2]!.toLowerCase() === 'nan' ? NaN : special[1] === '-' ? -Infinity : Infinity;
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(s)) return undefined;
  return Number(s);
}

/** Parses `name{a="b",...}` at the start of `rest`. @returns the name, labels and the remaining text. */
function parseSeries(rest: string, fail: (why: string) => never): { name: string; labels: Record<string, string>; tail: string } {
  const m = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(rest);
  if (!m) fail('bad metric name');
  const name = m[0];
  let i = name.length;
  const labels: Record<string, string> = {};
  if (rest[i] === '{') {
    i++;
    for (let guard = 0; guard < 1000; guard++) {
      if (rest[i] === '}') { i++; break; }
      const ln = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(rest.slice(i));
      if (!ln || !LABEL_NAME.test(ln[0])) fail('bad label name');
      i += ln[0].length;
      if (rest[i] !== '=' || rest[i + 1] !== '"') fail('expected ="');
      i += 2;
      let v = '';
      for (;;) {
        const c = rest[i];
        if (c === undefined) fail('unterminated label value');
        if (c === '"') { i++; break; }
        if (c === '\n') fail('raw newline in label value');
        if (c === '\\') {
          const n = rest[i + 1];
          if (n === '\\') v += '\\';
          else if (n === '"') v += '"';
          else if (n === 'n') v += '\n';
          else fail('bad escape in label value');
          i += 2;
          continue;
        }
        v += c;
        i++;
      }
      if (Object.hasOwn(labels, ln[0])) fail(`duplicate label ${ln[0]}`);
      labels[ln[0]] = v;
      if (rest[i] === ',') { i++; continue; }
      if (rest[i] === '}') { i++; break; }
      fail('expected , or }');
    }
  }
  return { name, labels, tail: rest.slice(i) };
}

/** The family a sample name belongs to, given the families declared so far. */
function familyOf(name: string, families: ReadonlyMap<string, Family>): Family | undefined {
  const direct = families.get(name);
  if (direct) return direct;
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (!name.endsWith(suffix)) continue;
    const f = families.get(name.slice(0, -suffix.length));
    if (f && (f.type === 'histogram' || (f.type === 'summary' && suffix !== '_bucket'))) return f;
  }
  return undefined;
}

/**
 * Parses a whole exposition. @throws Error naming the first bad line, or the family whose
 * histogram buckets are inconsistent.
 */
export function parsePromText(text: string): Exposition {
  if (text.length > 0 && !text.endsWith('\n')) throw new Error('exposition does not end with a newline');
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  const families = new Map<string, Family>();
  const withSamples = new Set<string>();
  const samples: Sample[] = [];
  const seen = new Set<string>();
  lines.forEach((line, idx) => {
    const n = idx + 1;
    const fail = (why: string): never => { throw new ParseError(n, line, why); };
    if (line.trim() === '') return;
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+)(?: (.*))?$/.exec(line);
      if (!m) fail('a comment that is neither HELP nor TYPE');
      const [, kind, name, rest] = m!;
      if (!METRIC_NAME.test(name!)) fail('bad metric name');
      const f = families.get(name!) ?? { name: name! };
      families.set(name!, f);
      if (withSamples.has(name!)) fail(`${kind} after the samples of ${name}`);
      if (kind === 'TYPE') {
        if (f.type !== undefined) fail('second TYPE');
        if (rest === undefined || !TYPES.has(rest)) fail('unknown type');
        f.type = rest;
      } else {
        if (f.help !== undefined) fail('second HELP');
        f.help = rest ?? '';
      }
      return;
    }
    const { name, labels, tail } = parseSeries(line, fail);
    const parts = tail.split(' ');
    if (parts[0] !== '' || parts.length < 2 || parts.length > 3) fail('expected " VALUE [TIMESTAMP]"');
    const value = parseValue(parts[1]!);
    if (value === undefined) fail('bad value');
    let timestamp: number | undefined;
    if (parts.length === 3) {
      if (!/^-?\d+$/.test(parts[2]!)) fail('bad timestamp');
      timestamp = Number(parts[2]);
    }
    const fam = familyOf(name, families);
    if (fam) {
      withSamples.add(fam.name);
      if (fam.type === 'histogram') {
        if (name === fam.name) fail('histogram sample without _bucket/_sum/_count');
        if (name.endsWith('_bucket') && labels.le === undefined) fail('bucket without le');
        if (name.endsWith('_bucket') && parseValue(labels.le!) === undefined) fail('bad le');
      } else if (fam.type === 'counter' || fam.type === 'gauge') {
        if (name !== fam.name) fail(`sample name does not match its ${fam.type}`);
        if (fam.type === 'counter' && !(value! >= 0)) fail('negative or NaN counter');
      }
    }
    const key = name + JSON.stringify(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    if (seen.has(key)) fail('duplicate series');
    seen.add(key);
    samples.push({ name, labels, value: value!, ...(timestamp !== undefined ? { timestamp } : {}) });
  });
  checkHistograms(samples, families);
  const matching = (name: string, want: Readonly<Record<string, string>>): Sample[] =>
    samples.filter((s) => s.name === name && Object.entries(want).every(([k, v]) => s.labels[k] === v));
  return {
    samples,
    families,
    value(name, labels = {}) {
      const found = matching(name, labels);
      if (found.length > 1) throw new Error(`${found.length} samples of ${name} match ${JSON.stringify(labels)}`);
      return found[0]?.value;
    },
    sum(name, labels = {}) {
      return matching(name, labels).reduce((a, s) => a + s.value, 0);
    },
  };
}

/** Buckets of each histogram series cumulative, with a +Inf bucket equal to _count. */
function checkHistograms(samples: readonly Sample[], families: ReadonlyMap<string, Family>): void {
  for (const f of families.values()) {
    if (f.type !== 'histogram') continue;
    const series = new Map<string, { le: number; v: number }[]>();
    const keyOf = (l: Readonly<Record<string, string>>): string =>
      JSON.stringify(Object.entries(l).filter(([k]) => k !== 'le').sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    for (const s of samples) {
      if (s.name !== `${f.name}_bucket`) continue;
      const k = keyOf(s.labels);
      const list = series.get(k) ?? [];
      series.set(k, list);
      list.push({ le: parseValue(s.labels.le!)!, v: s.value });
    }
    for (const [k, list] of series) {
      list.sort((a, b) => a.le - b.le);
      for (let i = 1; i < list.length; i++) {
        if (list[i]!.v < list[i - 1]!.v) throw new Error(`${f.name}${k}: buckets not cumulative`);
      }
      const inf = list[list.length - 1];
      if (!inf || inf.le !== Infinity) throw new Error(`${f.name}${k}: no +Inf bucket`);
      const count = samples.find((s) => s.name === `${f.name}_count` && keyOf(s.labels) === k);
      if (!count || count.value !== inf.v) throw new Error(`${f.name}${k}: _count differs from the +Inf bucket`);
    }
  }
}

/** No label value looks like a queue ID, an address, a domain or a host. */
export function assertBoundedLabels(samples: readonly { name: string; labels: Readonly<Record<string, string>> }[], forbidden: readonly string[]): void {
  for (const s of samples) {
    for (const [k, v] of Object.entries(s.labels)) {
      assert.ok(!v.includes('@'), `${s.name}{${k}="${v}"} holds an address`);
      assert.ok(!/\.(com|net|org|test)\b/.test(v), `${s.name}{${k}="${v}"} holds a domain`);
      assert.ok(!/^\d+\.\d+\.\d+\.\d+/.test(v), `${s.name}{${k}="${v}"} holds an IP`);
      for (const f of forbidden) assert.ok(!v.includes(f), `${s.name}{${k}="${v}"} holds ${f}`);
    }
  }
}
