/**
 * The control socket protocol: newline-delimited JSON over a unix socket. One request per line,
 * one response line per request, in order:
 *
 *   {"op":"list"}                      -> {"ok":true,"result":[QueueSummary...]}
 *   {"op":"show","id":"...","body":true} -> {"ok":true,"result":MessageDetail}
 *   {"op":"flush"} | {"op":"flush","domain":"example.com"} | {"op":"flush","id":"..."} -> {"ok":true,"result":{"flushed":n}}
 *   {"op":"delete"|"hold"|"release","id":"..."} -> {"ok":true,"result":{"id":"..."}}
 *   anything wrong                      -> {"ok":false,"error":"...","code":"..."}
 *
 * Owns the request validation and the mapping of requests onto a QueueAdmin.
 */
import { PostlineError } from '../core/errors.js';
import { isQueueId } from '../core/queue-id.js';
import type { QueueAdmin } from '../scheduler/admin.js';

export const CONTROL_OPS = ['list', 'show', 'flush', 'delete', 'hold', 'release'] as const;
export type ControlOp = (typeof CONTROL_OPS)[number];

export interface ControlRequest {
  readonly op: ControlOp;
  /** Queue ID (18 chars, see core/queue-id.ts); required for show/delete/hold/release, optional for flush. */
  readonly id?: string;
  /** show: include the whole message (base64) in the answer. */
  readonly body?: boolean;
  /** flush (without id): only messages with a pending recipient in this domain. */
  readonly domain?: string;
}

export type ControlResponse =
  | { readonly ok: true; readonly result: unknown }
  | { readonly ok: false; readonly error: string; readonly code?: string };

/** Longest request line accepted (bytes). */
export const MAX_REQUEST_BYTES = 64 * 1024;

const NEEDS_ID: ReadonlySet<ControlOp> = new Set(['show', 'delete', 'hold', 'release']);

/** Parses and validates one request line. @returns the request, or an error text for the client. */
export function parseRequest(line: string): ControlRequest | { readonly error: string } {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return { error: 'request is not valid JSON' };
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return { error: 'request must be a JSON object' };
  const o = v as Record<string, unknown>;
  if (typeof o.op !== 'string' || !(CONTROL_OPS as readonly string[]).includes(o.op)) {
    return { error: `unknown op; expected one of ${CONTROL_OPS.join(', ')}` };
  }
  const op = o.op as ControlOp;
  if (o.id !== undefined && (typeof o.id !== 'string' || !isQueueId(o.id))) return { error: 'bad queue ID' };
  if (NEEDS_ID.has(op) && o.id === undefined) return { error: `${op} needs an id` };
  if (o.body !== undefined && typeof o.body !== 'boolean') return { error: 'body must be true or false' };
  if (o.domain !== undefined && (typeof o.domain !== 'string' || !/^@?[^\s@]{1,255}$/.test(o.domain))) return { error: 'bad domain' };
  if (o.domain !== undefined && (op !== 'flush' || o.id !== undefined)) return { error: 'domain applies to flush without an id' };
  return { op, id: o.id as string | undefined, body: o.body as boolean | undefined, ...(o.domain !== undefined ? { domain: o.domain as string } : {}) };
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
    }
  } catch (err) {
    if (err instanceof PostlineError) return { ok: false, error: err.message, code: err.code };
    return { ok: false, error: 'internal error', code: 'ERR_INTERNAL' };
  }
}
