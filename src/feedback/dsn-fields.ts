/**
 * The fields of a message/delivery-status body (RFC 3464 2.1-2.3; message/global-delivery-status,
 * RFC 6533 6.2): per-message fields, then one block per recipient.
 *
 * Tolerant of what reports really do: no empty line between the per-message block and the first
 * recipient or between recipients (a repeated Final-Recipient / Original-Recipient / Action /
 * Status starts the next one), "Name : value", address types such as "rfc/822", a block that
 * is itself base64 after a stray Content-Transfer-Encoding field, fields copied into a text part.
 */
import { fieldBlocks, stripAddressType, typedValue, oneLine, type Field } from './text.js';

/** One recipient's fields, as written (address types removed). */
export interface RecipientFields {
  finalRecipient?: string;
  originalRecipient?: string;
  action?: string;
  status?: string;
  /** The comment after the Status code ("4.0.0 (host name lookup failure)"), without parentheses. */
  statusComment?: string;
  diagnostic?: string;
  diagnosticType?: string;
  remoteMta?: string;
  lastAttemptDate?: string;
  willRetryUntil?: string;
}

/** A parsed delivery-status body. */
export interface DeliveryStatusFields {
  reportingMta?: string;
  envelopeId?: string;
  arrivalDate?: string;
  recipients: RecipientFields[];
}

const PER_RECIPIENT = new Set([
  'original-recipient', 'final-recipient', 'action', 'status', 'remote-mta', 'diagnostic-code',
  'last-attempt-date', 'final-log-id', 'will-retry-until', 'x-actual-recipient',
]);
/** A second one of these in the same recipient means a new recipient began. */
const STARTS_ANEW = new Set(['original-recipient', 'final-recipient', 'action', 'status']);

/**
 * Parses a delivery-status body.
 * @param text the decoded body (or a text part holding the same fields).
 * @param maxRecipients recipients kept at most.
 */
export function parseDeliveryStatus(text: string, maxRecipients: number): DeliveryStatusFields {
  const out: DeliveryStatusFields = { recipients: [] };
  let cur: RecipientFields | undefined;
  let seen = new Set<string>();
  const finish = (): void => {
    if (cur && (cur.finalRecipient || cur.originalRecipient || cur.action || cur.status || cur.diagnostic)) {
      if (out.recipients.length < maxRecipients) out.recipients.push(cur);
    }
    cur = undefined;
    seen = new Set();
  };
  for (const block of blocksOf(text)) {
    if (block.some((f) => PER_RECIPIENT.has(f.name))) {
      // A block without an address continues a recipient that has nothing but its address (a
      // stray empty line inside one recipient's fields); any other starts the next recipient.
      const hasAddress = block.some((f) => f.name === 'final-recipient' || f.name === 'original-recipient');
      const onlyAddress = cur !== undefined && !cur.action && !cur.status && !cur.diagnostic;
      if (hasAddress || !onlyAddress) finish();
    }
    for (const f of block) {
      if (!PER_RECIPIENT.has(f.name)) {
        perMessage(out, f);
        continue;
      }
      if (seen.has(f.name) && STARTS_ANEW.has(f.name)) finish();
      cur ??= {};
      seen.add(f.name);
      perRecipient(cur, f);
    }
  }
  finish();
  return out;
}

function perMessage(out: DeliveryStatusFields, f: Field): void {
  if (f.name === 'reporting-mta') out.reportingMta ??= typedValue(f.value).text;
  else if (f.name === 'original-envelope-id') out.envelopeId ??= f.value;
  else if (f.name === 'arrival-date') out.arrivalDate ??= f.value;
}

function perRecipient(r: RecipientFields, f: Field): void {
  switch (f.name) {
    case 'final-recipient': r.finalRecipient ??= stripAddressType(f.value) || undefined; break;
    case 'original-recipient': r.originalRecipient ??= stripAddressType(f.value) || undefined; break;
    case 'action': r.action ??= f.value.trim().split(/[\s(]/)[0]!.toLowerCase() || undefined; break;
    case 'status': {
      const m = /(\d\.\d{1,3}\.\d{1,3})\s*(?:\(([^)]{1,500})\))?/.exec(f.value);
      if (m && r.status === undefined) {
        r.status = m[1];
        if (m[2]?.trim()) r.statusComment = m[2].trim();
      }
      break;
    }
    case 'diagnostic-code': {
      if (r.diagnostic !== undefined) break;
      const d = typedValue(f.value);
      const text = oneLine(d.text);
      if (text) r.diagnostic = text;
      if (d.type) r.diagnosticType = d.type;
      break;
    }
    case 'remote-mta': r.remoteMta ??= typedValue(f.value).text || undefined; break;
    case 'last-attempt-date': r.lastAttemptDate ??= f.value; break;
    case 'will-retry-until': r.willRetryUntil ??= f.value; break;
    default: break;
  }
}

/**
 * Field blocks of the text, with a block that is only base64 decoded when an earlier field said
 * `Content-Transfer-Encoding: base64` (a gateway that rewrote the part left it so).
 */
function blocksOf(text: string): Field[][] {
  if (!/^content-transfer-encoding[ \t]*:[ \t]*base64/im.test(text)) return fieldBlocks(text);
  const out: Field[][] = [];
  let afterCte = false;
  for (const raw of text.split(/\r?\n[ \t]*\r?\n/)) {
    const compact = raw.replace(/\s+/g, '');
    if (afterCte && compact.length >= 16 && /^[A-Za-z0-9+/]+=*$/.test(compact)) {
      out.push(...fieldBlocks(Buffer.from(compact, 'base64').toString('utf8')));
      continue;
    }
    const blocks = fieldBlocks(raw);
    for (const b of blocks) if (b.some((f) => f.name === 'content-transfer-encoding' && /base64/i.test(f.value))) afterCte = true;
    out.push(...blocks);
  }
  return out;
}

/** True when `text` holds delivery-status fields: a recipient field and an Action or Status. */
export function looksLikeDeliveryStatus(text: string): boolean {
  return /^(?:final|original)-recipient[ \t]*:/im.test(text) && /^(?:action|status)[ \t]*:/im.test(text);
}
