/**
 * Row <-> value conversion for the SQLite queue store, with validation.
 *
 * Owns: the mapping between table rows (src/spool/sqlite/migrations.ts) and QueuedMessage /
 * QueuedRecipient. A row that does not validate raises RowError, which the store turns into a
 * quarantine (never a crash).
 */
import type { BodyType, DsnNotify, DsnRet, OriginalRecipient } from '../../core/envelope.js';
import { isQueueId } from '../../core/queue-id.js';
import type { EventRecord, StoredEvent } from '../../events/record.js';
import type { MessageOrigin, NewMessage, OutcomeWrite, QueuedMessage, QueuedRecipient, RecipientStatus } from '../types.js';
import type { WriteOp } from './writer-protocol.js';

/** A row of `messages` as better-sqlite3 returns it. */
export interface MessageRow {
  id: string;
  mail_from: string;
  body_type: string;
  smtputf8: number;
  ret: string | null;
  envid: string | null;
  size: number;
  arrived_at: number;
  origin: string;
  attempts: number;
  next_attempt_at: number;
  held: number;
  last_error: string | null;
  /** 1 / 0: the header section holds UTF-8 (SMTPUTF8 mail, migration 4); null: unknown. */
  utf8_headers: number | null;
  /** The Message-ID field value (migration 5); null when none. */
  message_id: string | null;
  /** JSON array of strings (migration 5); null when none. */
  tags: string | null;
  /** JSON object string -> string (migration 5); null when none. */
  metadata: string | null;
  /** Header fields given out before the body (migration 8), CRLF lines; null when none. */
  prepend: string | null;
  /** Deferred sending (migration 9): not before this time (ms); null when sent at once. */
  send_at: number | null;
}

/** A row of `events` (migration 5): the record's type, time and message, the rest as JSON. */
export interface EventRow {
  at: number;
  type: string;
  queue_id: string | null;
  data: string;
}

/** A row of `recipients`. */
export interface RecipientRow {
  message_id: string;
  idx: number;
  address: string;
  notify: string | null;
  orcpt: string | null;
  status: string;
  last_reply: string | null;
  dsn_status: string | null;
  remote_mta: string | null;
  done_at: number | null;
  delay_notified: number;
  /** 'failure' | 'success' while a DSN is decided but not yet queued (migration 2); null otherwise. */
  dsn_owed: string | null;
}

/** A stored row failed validation; `message` says which field. */
export class RowError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RowError';
  }
}

const BODY_TYPES: readonly string[] = ['7BIT', '8BITMIME', 'BINARYMIME'];
const STATUSES: readonly string[] = ['pending', 'delivered', 'relayed', 'bounced', 'expired'];
const NOTIFY: readonly string[] = ['NEVER', 'SUCCESS', 'FAILURE', 'DELAY'];
const ORIGIN_KINDS: readonly string[] = ['smtp', 'dsn', 'api', 'local'];

const opt = <T>(v: T | null): T | undefined => (v === null ? undefined : v);
const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v);

function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new RowError(`${what}: invalid JSON`);
  }
}

function parseOrigin(text: string): MessageOrigin {
  const o = parseJson(text, 'origin') as Record<string, unknown> | null;
  if (!o || typeof o !== 'object' || !ORIGIN_KINDS.includes(o.kind as string)) throw new RowError('origin: bad kind');
  for (const k of ['clientAddress', 'clientName', 'authUser', 'listener', 'apiKey', 'localUser', 'localUserSource']) {
    if (o[k] !== undefined && typeof o[k] !== 'string') throw new RowError(`origin.${k}: not a string`);
  }
  if (o.localUid !== undefined && !isInt(o.localUid)) throw new RowError('origin.localUid: not an integer');
  return o as unknown as MessageOrigin;
}

function parseNotify(text: string | null): DsnNotify[] | undefined {
  if (text === null) return undefined;
  const v = parseJson(text, 'notify');
  if (!Array.isArray(v) || !v.every((x) => NOTIFY.includes(x as string))) throw new RowError('notify: bad value');
  return v as DsnNotify[];
}

function parseOrcpt(text: string | null): OriginalRecipient | undefined {
  if (text === null) return undefined;
  const v = parseJson(text, 'orcpt') as Record<string, unknown> | null;
  if (!v || typeof v.addrType !== 'string' || typeof v.address !== 'string') throw new RowError('orcpt: bad value');
  return { addrType: v.addrType, address: v.address };
}

/** Converts one recipient row. @throws RowError when a field is invalid. */
export function toRecipient(r: RecipientRow): QueuedRecipient {
  if (!isInt(r.idx) || r.idx < 0) throw new RowError('recipient idx: bad value');
  if (typeof r.address !== 'string') throw new RowError('recipient address: bad value');
  if (!STATUSES.includes(r.status)) throw new RowError(`recipient status: ${String(r.status)}`);
  const rcpt: QueuedRecipient = { idx: r.idx, address: r.address, status: r.status as RecipientStatus };
  const notify = parseNotify(r.notify);
  const orcpt = parseOrcpt(r.orcpt);
  const out = { ...rcpt, ...(notify ? { notify } : {}), ...(orcpt ? { orcpt } : {}) } as QueuedRecipient;
  if (r.last_reply !== null) out.lastReply = r.last_reply;
  if (r.dsn_status !== null) out.dsnStatus = r.dsn_status;
  if (r.remote_mta !== null) out.remoteMta = r.remote_mta;
  if (r.done_at !== null) out.doneAt = r.done_at;
  if (r.delay_notified) out.delayNotified = true;
  if (r.dsn_owed !== null && r.dsn_owed !== undefined) {
    if (r.dsn_owed !== 'failure' && r.dsn_owed !== 'success') throw new RowError(`recipient dsn_owed: ${String(r.dsn_owed)}`);
    out.dsnOwed = r.dsn_owed;
  }
  return out;
}

/**
 * Converts a message row and its recipient rows (ordered by idx).
 * @throws RowError when any field is invalid or the message has no recipients.
 */
export function toMessage(m: MessageRow, rcpts: readonly RecipientRow[]): QueuedMessage {
  if (!isQueueId(m.id)) throw new RowError('id: not a queue ID');
  if (typeof m.mail_from !== 'string') throw new RowError('mail_from: bad value');
  if (!BODY_TYPES.includes(m.body_type)) throw new RowError(`body_type: ${String(m.body_type)}`);
  if (m.ret !== null && m.ret !== 'FULL' && m.ret !== 'HDRS') throw new RowError(`ret: ${String(m.ret)}`);
  for (const k of ['size', 'arrived_at', 'attempts', 'next_attempt_at'] as const) {
    if (!isInt(m[k]) || m[k] < 0) throw new RowError(`${k}: bad value`);
  }
  if (!rcpts.length) throw new RowError('no recipients');
  if (m.prepend != null && typeof m.prepend !== 'string') throw new RowError('prepend: not text');
  if (prependBytes(m) > m.size) throw new RowError('prepend: longer than size');
  const msg: QueuedMessage = {
    id: m.id,
    mailFrom: m.mail_from,
    bodyType: m.body_type as BodyType,
    smtputf8: m.smtputf8 === 1,
    ...(m.ret !== null ? { ret: m.ret as DsnRet } : {}),
    ...(m.envid !== null ? { envid: m.envid } : {}),
    size: m.size,
    arrivedAt: m.arrived_at,
    origin: parseOrigin(m.origin),
    recipients: rcpts.map(toRecipient),
    attempts: m.attempts,
    nextAttemptAt: m.next_attempt_at,
    held: m.held === 1,
    ...(m.send_at != null ? { sendAt: m.send_at } : {}),
  };
  const lastError = opt(m.last_error);
  if (lastError !== undefined) msg.lastError = lastError;
  const meta = parseMeta(m);
  if (meta) Object.assign(msg, meta);
  if (m.utf8_headers !== null && m.utf8_headers !== undefined) {
    if (m.utf8_headers !== 0 && m.utf8_headers !== 1) throw new RowError(`utf8_headers: ${String(m.utf8_headers)}`);
    return { ...msg, utf8Headers: m.utf8_headers === 1 };
  }
  return msg;
}

/** Bytes of the prepended header fields of a row (0 when none). */
export function prependBytes(m: Pick<MessageRow, 'prepend'>): number {
  return m.prepend ? Buffer.byteLength(m.prepend, 'utf8') : 0;
}

/**
 * The message row for a new message whose stored body is `bodySize` bytes (due at once); its
 * `size` adds the prepended fields (what openBody gives out).
 */
export function newMessageRow(msg: NewMessage, bodySize: number): MessageRow {
  const prepend = msg.prepend ? msg.prepend : null;
  const size = bodySize + (prepend ? Buffer.byteLength(prepend, 'utf8') : 0);
  const row: MessageRow = {
    id: msg.id,
    mail_from: msg.mailFrom,
    body_type: msg.bodyType,
    smtputf8: msg.smtputf8 ? 1 : 0,
    ret: msg.ret ?? null,
    envid: msg.envid ?? null,
    size,
    arrived_at: msg.arrivedAt,
    origin: JSON.stringify(msg.origin),
    attempts: 0,
    next_attempt_at: msg.arrivedAt,
    held: msg.held ? 1 : 0,
    last_error: null,
    utf8_headers: msg.utf8Headers === undefined ? null : msg.utf8Headers ? 1 : 0,
    message_id: msg.messageId ?? null,
    tags: msg.meta?.tags?.length ? JSON.stringify(msg.meta.tags) : null,
    metadata: msg.meta?.metadata && Object.keys(msg.meta.metadata).length ? JSON.stringify(msg.meta.metadata) : null,
    prepend,
    send_at: null,
  };
  if (msg.meta?.sendAt !== undefined && msg.meta.sendAt > msg.arrivedAt) row.next_attempt_at = row.send_at = msg.meta.sendAt;
  return row;
}

/** messageId, tags and metadata of a message row (migration 5), when any. @throws RowError when malformed. */
function parseMeta(m: MessageRow): Pick<QueuedMessage, 'messageId' | 'tags' | 'metadata'> | undefined {
  if (m.message_id == null && m.tags == null && m.metadata == null) return undefined;
  const out: { messageId?: string; tags?: string[]; metadata?: Record<string, string> } = {};
  if (m.message_id != null) out.messageId = m.message_id;
  if (m.tags != null) {
    const t = parseJson(m.tags, 'tags');
    if (!Array.isArray(t) || !t.every((x) => typeof x === 'string')) throw new RowError('tags: not a list of strings');
    out.tags = t as string[];
  }
  if (m.metadata != null) {
    const v = parseJson(m.metadata, 'metadata') as Record<string, unknown> | null;
    if (!v || typeof v !== 'object' || Array.isArray(v) || !Object.values(v).every((x) => typeof x === 'string')) throw new RowError('metadata: not an object of strings');
    out.metadata = v as Record<string, string>;
  }
  return out;
}

/** The row of one event (the record minus type, at and queueId becomes `data`). */
export function eventRow(e: EventRecord): EventRow {
  const { type, at, queueId, ...rest } = e;
  return { at, type, queue_id: queueId ?? null, data: JSON.stringify(rest) };
}

/** One stored event from its row. A row whose data is not a JSON object yields the bare record. */
export function toStoredEvent(r: EventRow & { id: number }): StoredEvent {
  let rest: Record<string, unknown> = {};
  try {
    const v = JSON.parse(r.data) as unknown;
    if (v && typeof v === 'object' && !Array.isArray(v)) rest = v as Record<string, unknown>;
  } catch { /* damaged row: the bare record */ }
  return { ...rest, id: r.id, type: r.type as StoredEvent['type'], at: r.at, ...(r.queue_id !== null ? { queueId: r.queue_id } : {}) } as StoredEvent;
}

/** The recipient rows for a new message (all pending). */
export function newRecipientRows(msg: NewMessage): RecipientRow[] {
  return msg.recipients.map((r, idx) => ({
    message_id: msg.id,
    idx,
    address: r.address,
    notify: r.notify ? JSON.stringify(r.notify) : null,
    orcpt: r.orcpt ? JSON.stringify(r.orcpt) : null,
    status: 'pending',
    last_reply: null,
    dsn_status: null,
    remote_mta: null,
    done_at: null,
    delay_notified: 0,
    dsn_owed: null,
  }));
}

/**
 * The writer operation of one round's outcome (SqliteQueueStore.record). Durable when a body file
 * is unlinked after this commit (`fileBody`), or for a bounce or DSN decision (Postfix fsyncs its
 * bounce logs). Others (deliveries, deferrals) ride on the next fsync: a power loss can at most
 * repeat an attempt, and their events are published only once that fsync happened.
 */
export function recordOp(id: string, w: OutcomeWrite, fileBody: boolean): Extract<WriteOp, { kind: 'record' }> {
  const durable = fileBody || w.updates.some((u) => u.status === 'bounced' || u.status === 'expired' || (u.dsnOwed !== undefined && u.dsnOwed !== null));
  return {
    kind: 'record', id, remove: w.remove === true, durable,
    next: w.next ? { attempts: w.next.attempts, nextAttemptAt: w.next.nextAttemptAt, lastError: w.next.lastError ?? null } : null,
    updates: w.updates.map((u) => ({
      message_id: id, idx: u.idx, status: u.status,
      last_reply: u.lastReply ?? null, dsn_status: u.dsnStatus ?? null, remote_mta: u.remoteMta ?? null,
      done_at: u.doneAt ?? null, delay_notified: u.delayNotified === undefined ? null : u.delayNotified ? 1 : 0,
      dsn_owed_set: u.dsnOwed === undefined ? 0 : 1, dsn_owed: u.dsnOwed ?? null,
    })),
  };
}
