/**
 * The suppression list's exchange formats (`postline suppression export|import`): CSV (RFC 4180:
 * a header line, comma-separated fields, quoted with '"' when they hold a comma, quote or line
 * break, CRLF line ends) and JSON (an array of entries). Import also takes a CSV without header
 * (columns address, scope, reason, description), the API's page ({ "items": [...] }) and JSON lines.
 */
import type { SuppressionInput } from './admin.js';
import type { Suppression } from './types.js';

/** The export's columns, in order. */
export const CSV_COLUMNS = ['address', 'scope', 'reason', 'description', 'source', 'createdAt', 'expiresAt'] as const;

function field(v: string): string {
  return /[",\r\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v;
}

const iso = (ms: number | undefined): string => (ms === undefined ? '' : new Date(ms).toISOString());

/** The CSV text of entries, header first (times as RFC 3339 UTC). */
export function toCsv(items: readonly Suppression[], header = true): string {
  const lines = header ? [CSV_COLUMNS.join(',')] : [];
  for (const e of items) {
    lines.push([e.address, e.scope, e.reason, e.description ?? '', e.source, iso(e.createdAt), iso(e.expiresAt)].map(field).join(','));
  }
  return lines.length ? lines.join('\r\n') + '\r\n' : '';
}

/** Splits CSV text into rows of fields (RFC 4180; LF or CRLF line ends; blank lines skipped). @throws Error for an unclosed quote. */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cur = '';
  let quoted = false;
  let i = 0;
  const endRow = (): void => {
    row.push(cur);
    if (row.length > 1 || row[0] !== '') rows.push(row);
    row = [];
    cur = '';
  };
  while (i < text.length) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { cur += '"'; i += 2; continue; }
      if (c === '"') { quoted = false; i++; continue; }
      cur += c;
      i++;
      continue;
    }
    if (c === '"' && cur === '') { quoted = true; i++; continue; }
    if (c === ',') { row.push(cur); cur = ''; i++; continue; }
    if (c === '\r' && text[i + 1] === '\n') { endRow(); i += 2; continue; }
    if (c === '\n' || c === '\r') { endRow(); i++; continue; }
    cur += c;
    i++;
  }
  if (quoted) throw new Error('unclosed quote in the CSV text');
  if (cur !== '' || row.length) endRow();
  return rows;
}

/** A time field: RFC 3339 or ms since epoch; undefined when empty. @throws Error when neither. */
function timeOf(v: string | undefined, what: string): number | undefined {
  if (v === undefined || v.trim() === '') return undefined;
  const t = /^\d+$/.test(v.trim()) ? Number(v.trim()) : Date.parse(v);
  if (!Number.isFinite(t)) throw new Error(`${what}: not a time: ${JSON.stringify(v.slice(0, 40))}`);
  return t;
}

/** The entries of an import file in CSV. @throws Error naming the line for a bad row. */
export function entriesFromCsv(text: string): SuppressionInput[] {
  const rows = parseCsv(text.replace(/^\uFEFF/, ''));
  if (!rows.length) return [];
  const head = rows[0]!.map((h) => h.trim().toLowerCase());
  const named = head.includes('address');
  const col = (name: string, fallback: number): number => (named ? head.indexOf(name.toLowerCase()) : fallback);
  const idx = { address: col('address', 0), scope: col('scope', 1), reason: col('reason', 2), description: col('description', 3), expiresAt: col('expiresAt', -1) };
  return rows.slice(named ? 1 : 0).map((r, n) => {
    const get = (i: number): string | undefined => (i >= 0 && r[i] !== undefined && r[i]!.trim() !== '' ? r[i]!.trim() : undefined);
    const address = get(idx.address);
    if (!address) throw new Error(`line ${n + (named ? 2 : 1)}: no address`);
    const expiresAt = timeOf(get(idx.expiresAt), `line ${n + (named ? 2 : 1)}: expiresAt`);
    const scope = get(idx.scope);
    const reason = get(idx.reason);
    const description = get(idx.description);
    return { address, ...(scope ? { scope } : {}), ...(reason ? { reason } : {}), ...(description ? { description } : {}), ...(expiresAt !== undefined ? { expiresAt } : {}) };
  });
}

/** The entries of an import file in JSON: an array, { items: [...] }, or one object per line. @throws Error for anything else. */
export function entriesFromJson(text: string): SuppressionInput[] {
  const t = text.replace(/^\uFEFF/, '').trim();
  if (t === '') return [];
  let list: unknown;
  try {
    list = JSON.parse(t);
  } catch {
    list = t.split('\n').filter((l) => l.trim()).map((l, i) => {
      try { return JSON.parse(l) as unknown; } catch { throw new Error(`line ${i + 1}: not JSON`); }
    });
  }
  if (list && typeof list === 'object' && !Array.isArray(list) && Array.isArray((list as { items?: unknown }).items)) list = (list as { items: unknown[] }).items;
  if (!Array.isArray(list)) throw new Error('expected a JSON array of entries ({ "address": ..., "scope": ..., "reason": ... })');
  return list.map((x, i) => {
    if (!x || typeof x !== 'object' || typeof (x as { address?: unknown }).address !== 'string') throw new Error(`entry ${i}: needs an address`);
    const o = x as Record<string, unknown>;
    const expiresAt = typeof o.expiresAt === 'number' ? o.expiresAt : timeOf(typeof o.expiresAt === 'string' ? o.expiresAt : undefined, `entry ${i}: expiresAt`);
    return {
      address: o.address as string,
      ...(typeof o.scope === 'string' ? { scope: o.scope } : {}),
      ...(typeof o.reason === 'string' ? { reason: o.reason } : {}),
      ...(typeof o.description === 'string' ? { description: o.description } : {}),
      ...(expiresAt !== undefined ? { expiresAt } : {}),
    };
  });
}
