/**
 * Complaints: RFC 5965 Abuse Reporting Format reports (multipart/report;
 * report-type=feedback-report with a message/feedback-report part, fields of 3.1-3.3; RFC 6591
 * auth-failure reports; RFC 6650), and the older complaint mails that enclose the original
 * without a feedback-report part (Hotmail's "complaint about message from ...").
 *
 * The complained recipient is the first Original-Rcpt-To, else Removal-Recipient, else the
 * enclosed original's To. The provider is the mailbox provider the User-Agent names, else the
 * Reporting-MTA host, else the report's From domain. Finding the queue entry (by our return
 * path, the original's Message-ID or X-Postline-* fields) is the caller's job.
 */
import { splitMessage } from './mime.js';
import { originalFromParts, ORIGINAL_TYPES } from './original.js';
import { addressesIn, bytesToText, decodeTransfer, decodeWords, fieldBlocks, firstAddress, firstField, allFields, stripAddressType, typedValue, type Field } from './text.js';
import { feedbackLimits, type ArfReport, type FeedbackLimits, type OriginalMessage } from './types.js';

/** User-Agent words of the mailbox providers that send feedback loops, and the name reported. */
const AGENTS: readonly [RegExp, string][] = [
  [/yahoo/i, 'yahoo'], [/\baol\b/i, 'aol'], [/hotmail|outlook|microsoft|\bjmrp\b/i, 'microsoft'], [/comcast/i, 'comcast'],
  [/mail\.ru/i, 'mail.ru'], [/yandex/i, 'yandex'], [/gmail|google/i, 'google'], [/icloud|apple/i, 'apple'], [/zoho/i, 'zoho'],
  [/\bgmx\b|web\.de|united internet/i, 'united-internet'], [/fastmail/i, 'fastmail'], [/\bntes|netease|163\.com|126\.com/i, 'netease'],
];

/** Old-style complaint mails: From or Subject of a feedback loop without a feedback-report part. */
const COMPLAINT_FROM = /staff@hotmail\.com|\bjunk\b|\babuse\b|feedback|complaint|fbl/i;
const COMPLAINT_SUBJECT = /complaint|abuse report|feedback report|spam report/i;

/**
 * Parses a feedback report.
 * @param raw the message as received.
 * @param opts limits (types.ts FeedbackLimits), clamped to sane ranges.
 * @returns the report; never rejects: kind 'unknown' with a `reason` for anything that is not a complaint.
 */
export async function parseArf(raw: Buffer | Uint8Array | string, opts: Partial<FeedbackLimits> = {}): Promise<ArfReport> {
  try {
    return await parse(raw, feedbackLimits(opts));
  } catch (err) {
    return empty('unknown', `cannot parse the message: ${err instanceof Error ? err.message : String(err)}`);
  }
}

function empty(kind: ArfReport['kind'], reason?: string): ArfReport {
  return { kind, originalRcptTo: [], reportedDomains: [], reportedUris: [], ...(reason ? { reason } : {}) };
}

async function parse(raw: Buffer | Uint8Array | string, limits: FeedbackLimits): Promise<ArfReport> {
  let buf = typeof raw === 'string' ? Buffer.from(raw, 'utf8') : Buffer.isBuffer(raw) ? raw : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
  if (buf.length === 0) return empty('unknown', 'empty message');
  const truncated = buf.length > limits.maxMessageBytes;
  if (truncated) buf = buf.subarray(0, limits.maxMessageBytes);
  const { parts, error } = await splitMessage(buf, limits);
  const root = parts[0]!;
  const extra = { ...(truncated ? { truncated: true } : {}), ...(error ? { reason: `MIME structure: ${error}` } : {}) };
  if (!root.header.length) return { ...empty('unknown', 'no header section'), ...(truncated ? { truncated: true } : {}) };
  const original = originalFromParts(parts);
  const fr = parts.find((p) => p.contentType === 'message/feedback-report');
  const reportFrom = firstField(root.header, 'from');
  if (fr) {
    const fields = fieldBlocks(bytesToText(decodeTransfer(fr.body, fr.encoding)), 500).flat();
    return { ...fromFields(fields, original, reportFrom, limits.maxRecipients), ...extra };
  }
  const subject = decodeWords(firstField(root.header, 'subject') ?? '');
  const enclosed = parts.some((p) => ORIGINAL_TYPES.has(p.contentType));
  if (enclosed && root.reportType !== 'delivery-status' && (COMPLAINT_FROM.test(reportFrom ?? '') || COMPLAINT_SUBJECT.test(subject))) {
    const recipient = recipientOf(original);
    const sourceIp = /\b(\d{1,3}(?:\.\d{1,3}){3}|[0-9a-f]{0,4}(?::[0-9a-f]{0,4}){2,7})\s*$/i.exec(subject)?.[1];
    return {
      kind: 'complaint', feedbackType: 'abuse', originalRcptTo: [], reportedDomains: [], reportedUris: [],
      ...(recipient ? { recipient } : {}), ...(recipient && isRedacted(recipient) ? { redacted: true } : {}),
      ...(sourceIp ? { sourceIp } : {}),
      ...providerOf(undefined, undefined, reportFrom),
      ...(original ? { original } : {}), ...extra,
    };
  }
  return { ...empty('unknown', 'not a feedback report (no message/feedback-report part)'), ...(original ? { original } : {}), ...extra, ...(error ? { reason: `not a feedback report; MIME structure: ${error}` } : {}) };
}

function fromFields(fields: readonly Field[], original: OriginalMessage | undefined, reportFrom: string | undefined, max: number): ArfReport {
  const one = (name: string): string | undefined => firstField(fields, name) || undefined;
  const rcpts = allFields(fields, 'original-rcpt-to').map(stripAddressType).filter(Boolean).slice(0, max);
  const removal = one('removal-recipient');
  const recipient = rcpts[0] ?? (removal ? stripAddressType(removal) : undefined) ?? recipientOf(original);
  const userAgent = one('user-agent');
  const reportingMta = one('reporting-mta') ? typedValue(one('reporting-mta')!).text : undefined;
  const incidents = Number(one('incidents'));
  const mailFrom = one('original-mail-from');
  return {
    kind: 'arf',
    ...(one('feedback-type') ? { feedbackType: one('feedback-type')!.toLowerCase() } : {}),
    ...(userAgent ? { userAgent } : {}),
    ...(one('version') ? { version: one('version') } : {}),
    ...(mailFrom ? { originalMailFrom: stripAddressType(mailFrom) } : {}),
    originalRcptTo: rcpts,
    ...(recipient ? { recipient } : {}),
    ...(fields.some((f) => f.name === 'redacted-address') || (recipient && isRedacted(recipient)) ? { redacted: true } : {}),
    ...(one('arrival-date') ?? one('received-date') ? { arrivalDate: one('arrival-date') ?? one('received-date') } : {}),
    ...(one('source-ip') ? { sourceIp: one('source-ip') } : {}),
    reportedDomains: [...new Set(allFields(fields, 'reported-domain').filter(Boolean))].slice(0, max),
    reportedUris: allFields(fields, 'reported-uri').filter(Boolean).slice(0, max),
    ...(one('authentication-results') ? { authenticationResults: one('authentication-results') } : {}),
    ...(Number.isInteger(incidents) && incidents > 0 ? { incidents } : {}),
    ...(reportingMta ? { reportingMta } : {}),
    ...providerOf(userAgent, reportingMta, reportFrom),
    ...(original ? { original } : {}),
  };
}

/** The first address of the original's To that is not a placeholder ("Undisclosed Recipients"). */
function recipientOf(original: OriginalMessage | undefined): string | undefined {
  const to = original?.to;
  if (!to) return undefined;
  return addressesIn(to)[0]?.address ?? firstAddress(to);
}

function isRedacted(address: string): boolean {
  return /^redacted@|^redacted$/i.test(address);
}

function providerOf(userAgent: string | undefined, reportingMta: string | undefined, reportFrom: string | undefined): { provider?: string } {
  if (userAgent) for (const [re, name] of AGENTS) if (re.test(userAgent)) return { provider: name };
  if (reportingMta) return { provider: reportingMta.split(/[\s(]/)[0]!.toLowerCase() };
  const from = firstAddress(reportFrom);
  const domain = from?.slice(from.lastIndexOf('@') + 1).toLowerCase();
  return domain ? { provider: domain } : {};
}
