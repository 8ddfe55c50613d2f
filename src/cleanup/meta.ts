/**
 * Message metadata (DESIGN.md "message metadata"): tags, metadata and sendAt, validated against the
 * configured bounds, and read from the X-Postline-Tags / X-Postline-Metadata header fields.
 *
 * Owns the rules: at most limits.maxTags tags, each a non-empty string of at most
 * limits.maxTagLength characters without control characters; metadata a JSON object of string
 * values, keys 1..maxTagLength characters, the whole at most limits.maxMetadataBytes bytes as JSON.
 * X-Postline-* fields are removed from every message (they never leave Postline); they are read
 * only from authenticated or trusted clients.
 */
import { PostlineError } from '../core/errors.js';
import { reply } from '../core/reply.js';
import type { MessageMeta } from '../core/session.js';
import type { PostlineConfig } from '../config/schema.js';
import { getHeaderFields, type HeaderField } from '../rfc5322/header.js';

/** The bounds (limits.maxTags, maxTagLength, maxMetadataBytes). */
export type MetaLimits = Pick<PostlineConfig['limits'], 'maxTags' | 'maxTagLength' | 'maxMetadataBytes'>;

/** Field names cleanup reads (lower case). */
export const TAGS_FIELD = 'x-postline-tags';
export const METADATA_FIELD = 'x-postline-metadata';
/** Open and click tracking for this message: "opens", "clicks", both comma-separated, or "none". */
export const TRACKING_FIELD = 'x-postline-tracking';

/** True for a field name (lower case) cleanup removes. */
export const isPostlineField = (lowerName: string): boolean => lowerName.startsWith('x-postline-');

/** Metadata refused: `path` names the bad part ("tags[2]", "metadata.key"). Maps to 554 5.6.0 over SMTP. */
export class MetadataError extends PostlineError {
  constructor(message: string, readonly path: string) {
    super('ERR_METADATA', `${path}: ${message}`, { temporary: false, reply: reply(554, '5.6.0', `Bad message metadata: ${path}: ${message}`) });
    this.name = 'MetadataError';
  }
}

// eslint-disable-next-line no-control-regex
const CONTROL = /[\x00-\x1f\x7f]/;

/**
 * Checks tags, metadata and sendAt against the limits. @returns the meta with empty parts dropped.
 * @throws MetadataError naming the first bad part.
 */
export function validateMeta(meta: MessageMeta, limits: MetaLimits): MessageMeta {
  const out: { tags?: string[]; metadata?: Record<string, string>; sendAt?: number; tracking?: { opens?: boolean; clicks?: boolean } } = {};
  if (meta.tags !== undefined) {
    if (!Array.isArray(meta.tags)) throw new MetadataError('must be a list of strings', 'tags');
    if (meta.tags.length > limits.maxTags) throw new MetadataError(`more than ${limits.maxTags} tags`, 'tags');
    meta.tags.forEach((t, i) => {
      if (typeof t !== 'string' || t.length === 0) throw new MetadataError('must be a non-empty string', `tags[${i}]`);
      if (t.length > limits.maxTagLength) throw new MetadataError(`longer than ${limits.maxTagLength} characters`, `tags[${i}]`);
      if (CONTROL.test(t)) throw new MetadataError('holds a control character', `tags[${i}]`);
    });
    if (meta.tags.length) out.tags = [...new Set(meta.tags)];
  }
  if (meta.metadata !== undefined) {
    const m = meta.metadata as unknown;
    if (!m || typeof m !== 'object' || Array.isArray(m)) throw new MetadataError('must be an object of strings', 'metadata');
    for (const [k, v] of Object.entries(m as Record<string, unknown>)) {
      if (k.length === 0 || k.length > limits.maxTagLength) throw new MetadataError(`key must be 1..${limits.maxTagLength} characters`, `metadata.${k}`);
      if (typeof v !== 'string') throw new MetadataError('value must be a string', `metadata.${k}`);
    }
    const size = Buffer.byteLength(JSON.stringify(m), 'utf8');
    if (size > limits.maxMetadataBytes) throw new MetadataError(`${size} bytes as JSON, over ${limits.maxMetadataBytes}`, 'metadata');
    if (Object.keys(m).length) out.metadata = { ...(m as Record<string, string>) };
  }
  if (meta.sendAt !== undefined) {
    if (!Number.isSafeInteger(meta.sendAt) || meta.sendAt < 0) throw new MetadataError('must be ms since epoch', 'sendAt');
    out.sendAt = meta.sendAt;
  }
  if (meta.tracking !== undefined) {
    const t = meta.tracking as unknown;
    if (!t || typeof t !== 'object' || Array.isArray(t)) throw new MetadataError('must be an object { opens, clicks }', 'tracking');
    const { opens, clicks, ...rest } = t as Record<string, unknown>;
    if (Object.keys(rest).length) throw new MetadataError('unknown key (expected opens, clicks)', `tracking.${Object.keys(rest)[0]}`);
    if (opens !== undefined && typeof opens !== 'boolean') throw new MetadataError('must be true or false', 'tracking.opens');
    if (clicks !== undefined && typeof clicks !== 'boolean') throw new MetadataError('must be true or false', 'tracking.clicks');
    out.tracking = { ...(opens !== undefined ? { opens } : {}), ...(clicks !== undefined ? { clicks } : {}) };
  }
  return out;
}

/**
 * Reads X-Postline-Tags (a JSON array of strings, or a comma-separated list) and
 * X-Postline-Metadata (a JSON object of strings) from parsed header fields. Several fields of one
 * name are merged. @returns undefined when neither is present. @throws MetadataError.
 */
export function metaFromHeaders(fields: readonly HeaderField[], limits: MetaLimits): MessageMeta | undefined {
  const tagFields = getHeaderFields(fields, TAGS_FIELD);
  const metaFields = getHeaderFields(fields, METADATA_FIELD);
  const trackFields = getHeaderFields(fields, TRACKING_FIELD);
  if (!tagFields.length && !metaFields.length && !trackFields.length) return undefined;
  const tags: string[] = [];
  for (const f of tagFields) {
    const v = decodeValue(f.value).trim();
    if (v.startsWith('[')) {
      const parsed = parseJson(v, 'X-Postline-Tags');
      if (!Array.isArray(parsed)) throw new MetadataError('must be a JSON array of strings', 'X-Postline-Tags');
      tags.push(...(parsed as string[]));
    } else {
      tags.push(...v.split(',').map((t) => t.trim()).filter((t) => t.length > 0));
    }
  }
  let metadata: Record<string, string> | undefined;
  for (const f of metaFields) {
    const parsed = parseJson(decodeValue(f.value).trim(), 'X-Postline-Metadata');
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new MetadataError('must be a JSON object of strings', 'X-Postline-Metadata');
    metadata = { ...metadata, ...(parsed as Record<string, string>) };
  }
  const tracking = trackFields.length ? trackingFromHeader(trackFields.map((f) => f.value).join(',')) : undefined;
  return validateMeta({ ...(tags.length ? { tags } : {}), ...(metadata ? { metadata } : {}), ...(tracking ? { tracking } : {}) }, limits);
}

/** X-Postline-Tracking: the words it lists are on, the others off; "none" turns both off. @throws MetadataError. */
function trackingFromHeader(value: string): { opens: boolean; clicks: boolean } {
  const out = { opens: false, clicks: false };
  for (const w of value.split(',').map((x) => x.trim().toLowerCase()).filter((x) => x.length > 0)) {
    if (w === 'opens' || w === 'open') out.opens = true;
    else if (w === 'clicks' || w === 'click') out.clicks = true;
    else if (w !== 'none') throw new MetadataError(`unknown word ${JSON.stringify(w.slice(0, 40))} (expected opens, clicks or none)`, 'X-Postline-Tracking');
  }
  return out;
}

/** Header bytes are latin1 in the parser; the JSON may be UTF-8 (RFC 6532). */
function decodeValue(latin1: string): string {
  return Buffer.from(latin1, 'latin1').toString('utf8');
}

function parseJson(text: string, path: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new MetadataError('is not valid JSON', path);
  }
}
