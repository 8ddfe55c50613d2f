/**
 * Inbound bounces: RFC 3464 delivery status notifications (multipart/report;
 * report-type=delivery-status, RFC 6522) and the other formats MTAs send (bounce-text.ts), to
 * one shape (types.ts BounceReport) with each recipient classified (classify.ts). Auto-replies
 * are told apart (autoreply.ts) and never reported as bounces.
 *
 * Order: the message is cut to maxMessageBytes and split (mime.ts); a delivery-status part (or
 * its fields copied into the text) gives the recipients; else, when the headers say auto-reply
 * (other than a bare Auto-Submitted), it is one; else the text is scanned for failed recipients
 * (and X-Failed-Recipients read); else a bare `Auto-Submitted: auto-replied` makes it an
 * auto-reply; else it is 'unknown'. The enclosed original's header section is returned for
 * finding the queue entry (Message-ID, X-Postline-* fields).
 */
import { autoReplyReason } from './autoreply.js';
import { scanBounceText, type BounceText } from './bounce-text.js';
import { CLASS_SEVERITY } from './classes.js';
import { classifyReply, findEnhanced, findReplyCode } from './classify.js';
import { looksLikeDeliveryStatus, parseDeliveryStatus, type DeliveryStatusFields, type RecipientFields } from './dsn-fields.js';
import { splitMessage, type MimePart } from './mime.js';
import { ORIGINAL_TYPES, originalFromParts, originalFromText, reportTextEnd } from './original.js';
import { addressesIn, bytesToText, decodeCharset, decodeTransfer, decodeWords, firstAddress, firstField, htmlToText, oneLine, type Field } from './text.js';
import { feedbackLimits, type BounceRecipient, type BounceReport, type FeedbackLimits, type OriginalMessage } from './types.js';

const DS_TYPES = new Set(['message/delivery-status', 'message/global-delivery-status']);
const NOT_FAILED = new Set(['delivered', 'relayed', 'expanded', 'deliverable']);
const MAX_TEXT = 64 * 1024;

/** Whose From: says it is a mail system's notice. */
const FROM_BOUNCER = /mailer-daemon|postmaster|post_master|mail[ -]?delivery|mail-daemon|mdaemon/i;
/** From: words of notices and of newsletters alike: enough only with a bounce's introduction in the text. */
const FROM_MAYBE = /\bmailer\b|bounce|no-?reply|sysadmin|administrator/i;
/** Subjects of bounces. */
const SUBJECT_BOUNCE = /undeliver|undelivered|returned mail|delivery (?:status|failure|failed|report|notification|problem|error)|failure notice|mail delivery failed|non-?delivery|could not be delivered|not delivered|returned to sender|mail system error|nondeliverable|failed delivery|there was an error sending|delayed mail|could not send message|mail failure|message delivery has failed|delivery failure/i;

/**
 * Parses an inbound bounce.
 * @param raw the message as received (CRLF or LF line ends; an mbox "From " line is allowed).
 * @param opts limits (types.ts FeedbackLimits; config `feedback.*`), clamped to sane ranges.
 * @returns the report; never rejects: a message that cannot be read is kind 'unknown' with a `reason`.
 */
export async function parseBounce(raw: Buffer | Uint8Array | string, opts: Partial<FeedbackLimits> = {}): Promise<BounceReport> {
  try {
    return await parse(raw, feedbackLimits(opts));
  } catch (err) {
    return { kind: 'unknown', recipients: [], reason: `cannot parse the message: ${err instanceof Error ? err.message : String(err)}` };
  }
}

/** The report's text parts, decoded: text/plain (else text/html as text, else multipart preambles), cut at the copy of the original. */
export function reportText(parts: readonly MimePart[]): string {
  const pick = (pred: (p: MimePart) => boolean, conv: (s: string) => string = (s) => s): string => {
    let out = '';
    for (const p of parts) {
      if (out.length >= MAX_TEXT || !pred(p)) continue;
      out += `${conv(decodeCharset(decodeTransfer(p.body, p.encoding), p.charset))}\n\n`;
    }
    return out;
  };
  // Text parts, and delivery-status parts that hold prose instead of fields.
  let text = pick((p) => !p.multipart && (p.contentType === 'text/plain'
    || (DS_TYPES.has(p.contentType) && !/^(?:final|original)-recipient[ \t]*:/im.test(p.body.toString('latin1')))));
  if (!text.trim()) text = pick((p) => !p.multipart && p.contentType === 'text/html', htmlToText);
  if (!text.trim()) text = pick((p) => p.multipart, (s) => s.replace(/^--\S+\s*$/gm, ''));
  text = text.length > MAX_TEXT ? text.slice(0, MAX_TEXT) : text;
  return text.slice(0, reportTextEnd(text));
}

async function parse(raw: Buffer | Uint8Array | string, limits: FeedbackLimits, depth = 0): Promise<BounceReport> {
  let buf = typeof raw === 'string' ? Buffer.from(raw, 'utf8') : Buffer.isBuffer(raw) ? raw : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
  if (buf.length === 0) return { kind: 'unknown', recipients: [], reason: 'empty message' };
  const truncated = buf.length > limits.maxMessageBytes;
  if (truncated) buf = buf.subarray(0, limits.maxMessageBytes);
  const { parts, error } = await splitMessage(buf, limits);
  const root = parts[0]!;
  const extra = { ...(truncated ? { truncated: true } : {}) };
  if (!root.header.length) return { kind: 'unknown', recipients: [], reason: 'no header section', ...extra };
  const text = reportText(parts);
  const original = originalFromParts(parts) ?? (parts.some((p) => ORIGINAL_TYPES.has(p.contentType)) ? undefined : originalFromText(fullText(parts)));
  const withOriginal = { ...(original ? { original } : {}), ...extra, ...(error ? { reason: `MIME structure: ${error}` } : {}) };

  const dsParts = parts.filter((p) => DS_TYPES.has(p.contentType));
  let fields: DeliveryStatusFields | undefined;
  if (dsParts.length) fields = mergeFields(dsParts.map((p) => parseDeliveryStatus(dsText(p), limits.maxRecipients)), limits.maxRecipients);
  if (!fields?.recipients.length && looksLikeDeliveryStatus(text)) fields = parseDeliveryStatus(text, limits.maxRecipients);
  const isReport = dsParts.length > 0 || root.reportType === 'delivery-status';
  const exclude = senderAddresses(root.header, original);
  const scan = scanBounceText(text, exclude, limits.maxRecipients);
  const failedHeader = xFailedRecipients(root.header);

  if (fields?.recipients.length) {
    const recipients = fromFields(fields.recipients, scan, failedHeader);
    return {
      kind: isReport ? 'dsn' : 'bounce', recipients,
      ...(fields.reportingMta ? { reportingMta: fields.reportingMta } : {}),
      ...(fields.envelopeId ? { envelopeId: fields.envelopeId } : {}),
      ...(fields.arrivalDate ? { arrivalDate: fields.arrivalDate } : {}),
      ...withOriginal,
    };
  }
  if (!isReport) {
    const strong = autoReplyReason(root.header, { weak: false });
    if (strong) return { kind: 'autoreply', recipients: [], autoReply: strong, ...withOriginal };
  }
  const from = firstField(root.header, 'from') ?? '';
  const subject = decodeWords(firstField(root.header, 'subject') ?? '');
  const signed = FROM_BOUNCER.test(from) || SUBJECT_BOUNCE.test(subject) || /^\s*<\s*>\s*$/.test(firstField(root.header, 'return-path') ?? 'x');
  const bounce = failedHeader.length > 0 || (signed && (scan.bounceLike || scan.reasons !== '')) || (FROM_MAYBE.test(from) && scan.bounceLike);
  if (!isReport && !bounce) {
    const weak = autoReplyReason(root.header);
    if (weak) return { kind: 'autoreply', recipients: [], autoReply: weak, ...withOriginal };
    return { kind: 'unknown', recipients: [], reason: 'not a delivery report', ...withOriginal };
  }
  let recipients = fromText(scan, failedHeader, exclude);
  if (!recipients.length && depth === 0) {
    // A bounce forwarded inside another notice (a gateway wrapping the DSN as message/rfc822).
    const nested = enclosedReport(parts);
    if (nested) {
      const inner = await parse(nested, limits, 1);
      if (inner.recipients.length && (inner.kind === 'dsn' || inner.kind === 'bounce')) return { ...inner, ...extra };
    }
  }
  if (!recipients.length) recipients = inferred(original, scan, exclude);
  // Text that reads like a bounce but names no recipient is not taken for one (news letters
  // from "no-reply" senders that mention spam), unless the MIME type says it is a report.
  if (!recipients.length && !isReport) return { kind: 'unknown', recipients: [], ...withOriginal, reason: 'no failed recipient found' };
  return {
    kind: isReport ? 'dsn' : 'bounce', recipients, ...withOriginal,
    ...(!recipients.length && !error ? { reason: 'no failed recipient found' } : {}),
  };
}

/** Delivery-status parts' fields together (a report may split them over several parts). */
function mergeFields(list: readonly DeliveryStatusFields[], max: number): DeliveryStatusFields {
  const out: DeliveryStatusFields = { recipients: [] };
  for (const f of list) {
    out.reportingMta ??= f.reportingMta;
    out.envelopeId ??= f.envelopeId;
    out.arrivalDate ??= f.arrivalDate;
    for (const r of f.recipients) if (out.recipients.length < max) out.recipients.push(r);
  }
  return out;
}

/** The bytes of an enclosed message that is itself a delivery report (multipart/report, or from a mailer daemon). */
function enclosedReport(parts: readonly MimePart[]): Buffer | undefined {
  for (const p of parts) {
    if (p.contentType !== 'message/rfc822' && p.contentType !== 'message/global') continue;
    const body = decodeTransfer(p.body, p.encoding);
    const head = bytesToText(body.subarray(0, 8192));
    if (/^content-type:[^\n]*report-type\s*=\s*"?delivery-status/im.test(head.replace(/\r?\n[ \t]+/g, ' '))
      || /^from:[^\n]*(?:mailer-daemon|postmaster)/im.test(head)) return body;
  }
  return undefined;
}

/** The whole text of the message (for a copy of the original written into a text part). */
function fullText(parts: readonly MimePart[]): string {
  let out = '';
  for (const p of parts) {
    if (p.multipart || !p.contentType.startsWith('text/')) continue;
    out += `${decodeCharset(decodeTransfer(p.body, p.encoding), p.charset)}\n`;
    if (out.length > MAX_TEXT * 2) break;
  }
  return out;
}

function dsText(p: MimePart): string {
  const b = decodeTransfer(p.body, p.encoding);
  return p.contentType === 'message/global-delivery-status' ? b.toString('utf8') : bytesToText(b);
}

/** Addresses that are the notified sender's, not recipients: the bounce's To, Cc, From, Reply-To, the original's From, Sender, Return-Path. */
function senderAddresses(header: readonly Field[], original: OriginalMessage | undefined): Set<string> {
  const out = new Set<string>();
  for (const f of header) {
    if (f.name === 'to' || f.name === 'cc' || f.name === 'from' || f.name === 'reply-to') {
      for (const a of addressesIn(f.value)) out.add(a.address.toLowerCase());
    }
  }
  for (const v of [original?.from, original?.headers['return-path'], original?.headers['sender']]) {
    const a = firstAddress(v);
    if (a) out.add(a.toLowerCase());
  }
  return out;
}

function xFailedRecipients(header: readonly Field[]): string[] {
  const out: string[] = [];
  for (const f of header) if (f.name === 'x-failed-recipients') for (const a of addressesIn(f.value)) out.push(a.address);
  return [...new Set(out)];
}

/** Recipients from delivery-status fields; missing addresses and reasons from the text. */
function fromFields(list: readonly RecipientFields[], scan: BounceText, failedHeader: readonly string[]): BounceRecipient[] {
  const textByAddress = new Map(scan.recipients.map((r) => [r.address.toLowerCase(), r.diagnostic]));
  const unnamed = [...scan.recipients.map((r) => r.address), ...failedHeader];
  let nextUnnamed = 0;
  const out: BounceRecipient[] = [];
  for (const f of list) {
    let address = f.finalRecipient ?? f.originalRecipient;
    if (!address) {
      address = unnamed[nextUnnamed++];
      if (!address) continue;
    }
    let diagnostic = f.diagnostic ?? (informative(f.statusComment) ? f.statusComment : undefined);
    if (!informative(diagnostic)) {
      const fromText = textByAddress.get(address.toLowerCase()) ?? (f.originalRecipient ? textByAddress.get(f.originalRecipient.toLowerCase()) : undefined);
      diagnostic = [diagnostic, informative(fromText) ? fromText : list.length === 1 ? scan.reasons : ''].filter(Boolean).join(' ') || undefined;
    }
    const statusOfDiag = diagnostic ? enhancedString(diagnostic) : undefined;
    const status = !f.status ? statusOfDiag
      : f.status.endsWith('.0.0') && statusOfDiag && statusOfDiag[0] === f.status[0] ? statusOfDiag : f.status;
    const action = f.action ?? (status?.startsWith('4.') ? 'delayed' : 'failed');
    const own = textByAddress.get(address.toLowerCase());
    out.push(recipient(address, {
      originalRecipient: f.originalRecipient, action, status, diagnostic, diagnosticType: f.diagnosticType,
      remoteMta: f.remoteMta, lastAttemptDate: f.lastAttemptDate, willRetryUntil: f.willRetryUntil,
      // When the fields say nothing the classifier knows, the human-readable part may.
      alternative: informative(own) ? own : list.length === 1 ? scan.reasons : undefined,
    }));
  }
  return out;
}

/** Recipients from the text scan, else from X-Failed-Recipients (Exim, Gmail) with the text's reasons. */
function fromText(scan: BounceText, failedHeader: readonly string[], exclude: ReadonlySet<string>): BounceRecipient[] {
  const action = scan.delayed ? 'delayed' : 'failed';
  const byAddress = new Map(scan.recipients.map((r) => [r.address.toLowerCase(), r.diagnostic]));
  // The sender's own address (a greeting "Hello a@b,") only when nothing else is named.
  const named = scan.recipients.filter((r) => !exclude.has(r.address.toLowerCase()));
  const list = named.length ? named.map((r) => r.address) : failedHeader.length ? failedHeader : scan.recipients.map((r) => r.address);
  return list.map((address) => {
    const own = byAddress.get(address.toLowerCase());
    const diagnostic = informative(own) ? own : [own, scan.reasons].filter(Boolean).join(' ') || undefined;
    return recipient(address, { action, status: diagnostic ? enhancedString(diagnostic) : undefined, diagnostic });
  });
}

/** No recipient named: the original's only To address, when it has exactly one. */
function inferred(original: OriginalMessage | undefined, scan: BounceText, exclude: ReadonlySet<string>): BounceRecipient[] {
  const to = original?.to ? addressesIn(original.to).filter((a) => !exclude.has(a.address.toLowerCase())) : [];
  if (to.length !== 1) return [];
  const diagnostic = scan.reasons || undefined;
  return [{ ...recipient(to[0]!.address, { action: scan.delayed ? 'delayed' : 'failed', status: diagnostic ? enhancedString(diagnostic) : undefined, diagnostic }), inferred: true }];
}

interface RecipientFacts {
  originalRecipient?: string;
  action: string;
  status?: string;
  diagnostic?: string;
  diagnosticType?: string;
  remoteMta?: string;
  lastAttemptDate?: string;
  willRetryUntil?: string;
  /** Text to classify when `diagnostic` gives Uncategorized (the report's human-readable reason). */
  alternative?: string;
}

function recipient(address: string, f: RecipientFacts): BounceRecipient {
  const diagnostic = f.diagnostic ? oneLine(f.diagnostic) : undefined;
  const base: BounceRecipient = {
    address,
    ...(f.originalRecipient && f.originalRecipient.toLowerCase() !== address.toLowerCase() ? { originalRecipient: f.originalRecipient } : {}),
    action: f.action,
    ...(f.status ? { status: f.status } : {}),
    ...(diagnostic ? { diagnostic } : {}),
    ...(f.diagnosticType ? { diagnosticType: f.diagnosticType } : {}),
    ...(f.remoteMta ? { remoteMta: f.remoteMta } : {}),
    ...(f.lastAttemptDate ? { lastAttemptDate: f.lastAttemptDate } : {}),
    ...(f.willRetryUntil ? { willRetryUntil: f.willRetryUntil } : {}),
  };
  if (NOT_FAILED.has(f.action)) return base;
  const code = diagnostic ? findReplyCode(diagnostic) : 0;
  let v = classifyReply(code, f.status, diagnostic ?? '');
  if (v.class === 'Uncategorized' && f.alternative && f.alternative !== diagnostic) {
    const alt = classifyReply(code, f.status, f.alternative);
    if (alt.class !== 'Uncategorized') v = alt;
  }
  const severity = f.action === 'delayed' ? 'soft' : f.action === 'failed' ? CLASS_SEVERITY[v.class] : v.severity;
  return { ...base, class: v.class, severity };
}

/** A diagnostic that says something: a reply code, an enhanced code or a few words. */
function informative(d: string | undefined): d is string {
  return d !== undefined && /[A-Za-z\u00c0-\uffff]{3,}|\d{3}/.test(d.replace(/\S+@\S+/g, ''));
}

function enhancedString(text: string): string | undefined {
  const e = findEnhanced(text);
  return e ? `${e.cls}.${e.subject}.${e.detail}` : undefined;
}
