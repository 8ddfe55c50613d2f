/**
 * The control socket protocol: newline-delimited JSON over a unix socket. One request per line,
 * one response line per request, in order:
 *
 *   {"op":"list"}                      -> {"ok":true,"result":[QueueSummary...]}
 *   {"op":"show","id":"...","body":true} -> {"ok":true,"result":MessageDetail}
 *   {"op":"flush"} | {"op":"flush","domain":"example.com"} | {"op":"flush","id":"..."} -> {"ok":true,"result":{"flushed":n}}
 *   {"op":"delete"|"hold"|"release","id":"..."} -> {"ok":true,"result":{"id":"..."}}
 *   {"op":"destinations"}              -> {"ok":true,"result":[DestinationStatus...]}
 *   {"op":"suspend","destination":"example.com","forMs":3600000} -> {"ok":true,"result":DestinationStatus}
 *   {"op":"resume","destination":"example.com"} -> {"ok":true,"result":[DestinationStatus...]}
 *   {"op":"bounce","domain":"example.com"} | {"op":"bounce","sender":"a@example.org"} -> {"ok":true,"result":{"bounced":n}}
 *   {"op":"suppression.list|add|remove",...} -> suppression-ops.ts (the suppression list)
 *   anything wrong                      -> {"ok":false,"error":"...","code":"..."}
 *
 * Owns the request validation and the mapping of requests onto a QueueAdmin.
 */
import { parseDestinationMatch } from '../config/delivery-shaping.js';
import { PostlineError } from '../core/errors.js';
import { isQueueId } from '../core/queue-id.js';
import type { QueueAdmin } from '../scheduler/admin.js';
import { isSuppressionOp, parseSuppressionRequest, SUPPRESSION_OPS, type SuppressionRequest } from './suppression-ops.js';

export const CONTROL_OPS = ['list', 'show', 'flush', 'delete', 'hold', 'release', 'destinations', 'suspend', 'resume', 'bounce'] as const;
export type ControlOp = (typeof CONTROL_OPS)[number];

export interface ControlRequest {
  readonly op: ControlOp;
  /** Queue ID (18 chars, see core/queue-id.ts); required for show/delete/hold/release, optional for flush. */
  readonly id?: string;
  /** show: include the whole message (base64) in the answer. */
  readonly body?: boolean;
  /** flush (without id): only messages with a pending recipient in this domain; bounce: the recipients in it. */
  readonly domain?: string;
  /** bounce: messages with this reverse-path (exact; '' is the null sender). */
  readonly sender?: string;
  /** suspend / resume: a destination name (config/delivery-shaping.ts parseDestinationMatch). */
  readonly destination?: string;
  /** suspend: for this long, ms (absent: until resumed). */
  readonly forMs?: number;
}

export type ControlResponse =
  | { readonly ok: true; readonly result: unknown }
  | { readonly ok: false; readonly error: string; readonly code?: string };

/** Longest request line accepted (bytes). */
export const MAX_REQUEST_BYTES = 64 * 1024;

const NEEDS_ID: ReadonlySet<ControlOp> = new Set(['show', 'delete', 'hold', 'release']);
/** Longest suspension accepted, ms (10 years). */
const MAX_FOR_MS = 10 * 365 * 86_400_000;

/** Parses and validates one request line. @returns the request (suppression.* ones: suppression-ops.ts), or an error text for the client. */
export function parseRequest(line: string): ControlRequest | SuppressionRequest | { readonly error: string } {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return { error: 'request is not valid JSON' };
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return { error: 'request must be a JSON object' };
  const o = v as Record<string, unknown>;
  if (isSuppressionOp(o.op)) return parseSuppressionRequest(o);
  if (typeof o.op !== 'string' || !(CONTROL_OPS as readonly string[]).includes(o.op)) {
    return { error: `unknown op; expected one of ${[...CONTROL_OPS, ...SUPPRESSION_OPS].join(', ')}` };
  }
  const op = o.op as ControlOp;
  if (o.id !== undefined && (typeof o.id !== 'string' || !isQueueId(o.id))) return { error: 'bad queue ID' };
  if (NEEDS_ID.has(op) && o.id === undefined) return { error: `${op} needs an id` };
  if (o.body !== undefined && typeof o.body !== 'boolean') return { error: 'body must be true or false' };
  if (o.domain !== undefined && (typeof o.domain !== 'string' || !/^@?[^\s@]{1,255}$/.test(o.domain))) return { error: 'bad domain' };
  if (o.domain !== undefined && ((op !== 'flush' && op !== 'bounce') || o.id !== undefined)) return { error: 'domain applies to flush without an id and to bounce' };
  if (o.id !== undefined && !NEEDS_ID.has(op) && op !== 'flush') return { error: `${op} takes no id` };
  const extra = parseShapingFields(op, o);
  if ('error' in extra) return extra;
  return { op, id: o.id as string | undefined, body: o.body as boolean | undefined, ...(o.domain !== undefined ? { domain: o.domain as string } : {}), ...extra };
}

/** The fields of destinations, suspend, resume and bounce. */
function parseShapingFields(op: ControlOp, o: Record<string, unknown>): { destination?: string; forMs?: number; sender?: string } | { error: string } {
  const wantsDestination = op === 'suspend' || op === 'resume';
  if (o.destination !== undefined && !wantsDestination) return { error: 'destination applies to suspend and resume' };
  if (wantsDestination && (typeof o.destination !== 'string' || parseDestinationMatch(o.destination) === undefined)) {
    return { error: `${op} needs a destination: a domain, ".domain", "[host]", "[host]:port" or a next-hop key such as mx:example.com:25` };
  }
  if (o.forMs !== undefined && (op !== 'suspend' || typeof o.forMs !== 'number' || !Number.isInteger(o.forMs) || o.forMs < 1 || o.forMs > MAX_FOR_MS)) {
    return { error: 'forMs applies to suspend: a whole number of ms, at least 1' };
  }
  if (o.sender !== undefined && (op !== 'bounce' || typeof o.sender !== 'string' || o.sender.length > 512 || /[\s<>]/.test(o.sender))) return { error: 'sender applies to bounce: an address, or "" for the null sender' };
  if (op === 'bounce' && o.domain === undefined && o.sender === undefined) return { error: 'bounce needs a domain or a sender' };
  return {
    ...(wantsDestination ? { destination: o.destination as string } : {}),
    ...(o.forMs !== undefined ? { forMs: o.forMs as number } : {}),
    ...(o.sender !== undefined ? { sender: o.sender as string } : {}),
  };
}

/** Runs a valid request against `admin`. Never rejects: errors become {ok:false}. */
export async function executeRequest(admin: QueueAdmin, req: ControlRequest): Promise<ControlResponse> {
  try {
    const id = req.id ?? '';
    switch (req.op) {
      case 'list': return { ok: true, result: await admin.list() };
      case 'show': return { ok: true, result: await admin.show(id, { body: req.body === true }) };
      case 'flush':
        if (req.id === undefined) return { ok: true, result: { flushed: await admin.flush(req.domain !== undefined ? { domain: req.domain } : {}) } };
        await admin.flushOne(id);
        return { ok: true, result: { flushed: 1 } };
      case 'delete': await admin.delete(id); return { ok: true, result: { id } };
      case 'hold': await admin.hold(id); return { ok: true, result: { id } };
      case 'release': await admin.release(id); return { ok: true, result: { id } };
      case 'destinations': return { ok: true, result: await admin.listDestinations() };
      case 'suspend': return { ok: true, result: await admin.suspend(req.destination ?? '', req.forMs !== undefined ? { forMs: req.forMs } : {}) };
      case 'resume': return { ok: true, result: await admin.resume(req.destination ?? '') };
      case 'bounce': {
        const q = { ...(req.domain !== undefined ? { domain: req.domain } : {}), ...(req.sender !== undefined ? { sender: req.sender } : {}) };
        return { ok: true, result: { bounced: await admin.bounce(q) } };
      }
    }
  } catch (err) {
    if (err instanceof PostlineError) return { ok: false, error: err.message, code: err.code };
    return { ok: false, error: 'internal error', code: 'ERR_INTERNAL' };
  }
}
