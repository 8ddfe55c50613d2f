/**
 * The suppression list's requests on the control socket (protocol.ts hands them here), so
 * `postline suppression ...` changes the list through the running server's store (its writer and
 * its check cache) while it runs:
 *
 *   {"op":"suppression.list","scope":"*","reason":"manual","address":"bo","domain":"example.com","after":"...","limit":100}
 *                                        -> {"ok":true,"result":{"items":[Suppression...],"next":"..."}}
 *   {"op":"suppression.add","entries":[{"address":"bob@example.com","scope":"*","reason":"manual","description":"...","expiresAt":ms}],"source":"operator"|"import"}
 *                                        -> {"ok":true,"result":{"added":[Suppression...]}}
 *   {"op":"suppression.remove","address":"bob@example.com","scope":"*"}
 *                                        -> {"ok":true,"result":{"removed":Suppression|null}}
 */
import { PostlineError } from '../core/errors.js';
import type { SuppressionAdmin, SuppressionInput, SuppressionListInput } from '../suppression/admin.js';
import type { ControlResponse } from './protocol.js';

export const SUPPRESSION_OPS = ['suppression.list', 'suppression.add', 'suppression.remove'] as const;

/** Entries in one add request at most (the CLI's import sends several). */
export const MAX_ADD_ENTRIES = 500;

export type SuppressionRequest =
  | { readonly op: 'suppression.list'; readonly query: SuppressionListInput }
  | { readonly op: 'suppression.add'; readonly entries: readonly SuppressionInput[]; readonly source: 'operator' | 'import' }
  | { readonly op: 'suppression.remove'; readonly address: string; readonly scope?: string };

const str = (v: unknown, max: number): v is string => typeof v === 'string' && v.length <= max;

/** True for the ops of this file. */
export function isSuppressionOp(op: unknown): boolean {
  return typeof op === 'string' && (SUPPRESSION_OPS as readonly string[]).includes(op);
}

/** The request line's object for `req` (the list's query fields flat beside op), which parseSuppressionRequest reads back. */
export function suppressionWire(req: SuppressionRequest): { readonly op: string } & Record<string, unknown> {
  return req.op === 'suppression.list' ? { op: req.op, ...req.query } : req;
}

/** True for a parsed request of this file. */
export function isSuppressionRequest(r: { readonly op: string }): r is SuppressionRequest {
  return isSuppressionOp(r.op);
}

/** Checks the shape of a suppression request (the values are checked by SuppressionAdmin). @returns it, or an error text. */
export function parseSuppressionRequest(o: Record<string, unknown>): SuppressionRequest | { readonly error: string } {
  for (const k of ['scope', 'reason', 'address', 'domain', 'after'] as const) {
    if (o[k] !== undefined && !str(o[k], 2000)) return { error: `${k} must be a string` };
  }
  switch (o.op) {
    case 'suppression.list': {
      if (o.limit !== undefined && (typeof o.limit !== 'number' || !Number.isInteger(o.limit) || o.limit < 1 || o.limit > 1000)) return { error: 'limit must be 1..1000' };
      if (o.expired !== undefined && typeof o.expired !== 'boolean') return { error: 'expired must be true or false' };
      const q: Record<string, unknown> = {};
      for (const k of ['scope', 'reason', 'address', 'domain', 'after', 'limit', 'expired']) if (o[k] !== undefined) q[k] = o[k];
      return { op: 'suppression.list', query: q as SuppressionListInput };
    }
    case 'suppression.add': {
      if (!Array.isArray(o.entries) || o.entries.length === 0 || o.entries.length > MAX_ADD_ENTRIES) return { error: `entries must be a list of 1..${MAX_ADD_ENTRIES} entries` };
      for (const [i, e] of o.entries.entries()) {
        if (typeof e !== 'object' || e === null || Array.isArray(e)) return { error: `entries.${i} must be an object` };
        const x = e as Record<string, unknown>;
        if (!str(x.address, 400)) return { error: `entries.${i}.address must be a string` };
        for (const k of ['scope', 'reason', 'description']) if (x[k] !== undefined && !str(x[k], 2000)) return { error: `entries.${i}.${k} must be a string` };
        if (x.expiresAt !== undefined && (typeof x.expiresAt !== 'number' || !Number.isSafeInteger(x.expiresAt))) return { error: `entries.${i}.expiresAt must be ms since epoch` };
      }
      if (o.source !== undefined && o.source !== 'operator' && o.source !== 'import') return { error: 'source must be operator or import' };
      return { op: 'suppression.add', entries: o.entries as SuppressionInput[], source: (o.source as 'operator' | 'import' | undefined) ?? 'operator' };
    }
    case 'suppression.remove':
      if (!str(o.address, 400)) return { error: 'suppression.remove needs an address' };
      return { op: 'suppression.remove', address: o.address, ...(o.scope !== undefined ? { scope: o.scope as string } : {}) };
    default:
      return { error: `unknown op; expected one of ${SUPPRESSION_OPS.join(', ')}` };
  }
}

/** Runs a valid request. Never rejects: errors become {ok:false} (SuppressionInputError: its code ERR_SUPPRESSION_INPUT). */
export async function executeSuppressionRequest(admin: SuppressionAdmin | undefined, req: SuppressionRequest): Promise<ControlResponse> {
  if (!admin) return { ok: false, error: 'this server keeps no suppression list', code: 'ERR_NO_SUPPRESSIONS' };
  try {
    switch (req.op) {
      case 'suppression.list': return { ok: true, result: await admin.list(req.query) };
      case 'suppression.add': return { ok: true, result: { added: await admin.add(req.entries, req.source) } };
      case 'suppression.remove': return { ok: true, result: { removed: (await admin.remove(req.address, req.scope, 'operator')) ?? null } };
    }
  } catch (err) {
    if (err instanceof PostlineError) return { ok: false, error: err.message, code: err.code };
    return { ok: false, error: 'internal error', code: 'ERR_INTERNAL' };
  }
}
