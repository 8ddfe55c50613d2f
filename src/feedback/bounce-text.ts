/**
 * Bounces that are not RFC 3464 DSNs: the text qmail ("Hi. This is the qmail-send program"),
 * Exim ("This message was created automatically by mail delivery software"), old Sendmail
 * ("----- Transcript of session follows -----"), Exchange 2003 ("did not reach the following
 * recipient(s)"), Domino, Gmail's plain text, IMail, Yahoo, Postfix without MIME and many
 * gateways write. They share a shape: an introduction ("could not be delivered to the
 * following addresses"), then each failed address at the start of a line (or after "to:"),
 * with the reason on the same or the following lines, then a copy of the original.
 *
 * So rather than one parser per MTA, one scan: from the first introduction line on, an address
 * that leads its line (or follows a "to"/"recipient" phrase) starts a recipient; the lines after
 * it are its reason until an empty line or the next recipient; an address after a reply code
 * ("550 5.1.1 <a@b>... User unknown") belongs to the reason. Addresses of the sender (the
 * bounce's To, the original's From) and of sender-like lines (MAIL FROM:, From:) are skipped.
 */
import { firstMatch, OVERRIDES, TEXT_PATTERNS } from './patterns.js';
import { addressesIn, oneLine } from './text.js';

/** Words that say "these recipients failed"; the scan starts at the first line holding one. */
const INTRO = /following (?:e-?mail )?(?:address(?:es|\(es\))?|recipients?(?:\(s\))?|destination)|(?:could|can) ?not be (?:delivered|sent) to|couldn't be delivered|unable to deliver|wasn't able to deliver|(?:was|were) unable to deliver|(?:was|were) not delivered to|did not reach|delivery to the following|failed to deliver to|failed addresses|(?:permanent|delivery) (?:fatal )?(?:errors|problems)|addressed to:|rcpt to|could not be delivered|error has occurred while attempting to deliver|failure reasons|not able to deliver|recipients? (?:returned|rejected)|rejected recipient|following recipients were affected|delivery errors|your message to|Invalid user address|error delivering your (?:mail|message) to|did not like our/i;

/** Lines whose addresses are the sender's, not a failed recipient's. */
const SENDER_LINE = /^\s*(?:MAIL FROM|From|Sender|Reply-To|Return-Path|Original Sender|Envelope-From|Sender-MTA|Message-ID|In-Reply-To|References|CC|Bcc|X-[\w-]+)\s*:/i;

/** A reply code or enhanced code before an address: the address is part of a reply text. */
const CODE_BEFORE = /(?:^|[^\d.])(?:[245]\d\d|[245]\.\d{1,3}\.\d{1,3})(?=[\s\-:'\]>)]|$)|<<<|\bsaid:/i;

/** Only punctuation before the address: it leads its line ("<a@b>:", "-- a@b", "* a@b"). */
const LEADS = /^[\s>*\u2022\-\u2013\u2014|#]*[<"(\[]?\s*$/;

/** "Some phrase: <a@b>" ("Could not be delivered to:", "Unknown user:", "RCPT TO:"). */
const PHRASE_COLON = /^[^:<>@]{2,80}:\s*[<"(\[]?\s*$/;

/** "... to <a@b>", "rejected recipient <a@b>". */
const TO_WORD = /\b(?:to|recipients?|for)\s*[<"(\[]?\s*$/i;

const RCPT_TO = /\bRCPT TO:?\s*<?\s*$/i;

/** The copied original's header section begins: nothing after it is the report's. */
const HEADER_START = /^\s*(?:Received|Return-Path|DKIM-Signature)\s*:/i;

/** Lines that only separate sections ("-----", "=====", "*****"). */
const RULE = /^\s*[-=*_#~]{4,}\s*$/;

/** A recipient found in the text with the lines that give its reason. */
export interface TextRecipient {
  readonly address: string;
  /** The reason given with the address, one line; '' when none is. */
  readonly diagnostic: string;
}

/** What the scan found. */
export interface BounceText {
  readonly recipients: readonly TextRecipient[];
  /** Lines of the report's text (from the introduction on) that name a reason, joined; '' when none. */
  readonly reasons: string;
  /** The text says it will retry (a delay warning) rather than having given up. */
  readonly delayed: boolean;
  /** The text reads like a bounce: an introduction line or a failure phrase was found (`reasons` alone is weaker). */
  readonly bounceLike: boolean;
}

const MAX_LINES = 2000;
const MAX_REASON_LINES = 12;
/** Longest line looked at, characters (a reason is short; a huge line is cut). */
const MAX_LINE = 2000;

/**
 * Scans a bounce's own text (without the copy of the original: see original.ts reportTextEnd).
 * @param exclude lower-case addresses that are not recipients (the bounce's To and From, the original's From).
 * @param maxRecipients recipients kept at most.
 */
export function scanBounceText(text: string, exclude: ReadonlySet<string>, maxRecipients: number): BounceText {
  const lines = text.split(/\r?\n|\r/, MAX_LINES);
  const intro = lines.findIndex((l) => INTRO.test(l));
  const bounceLike = intro >= 0 || BOUNCE_PHRASE.test(text.slice(0, 8192));
  let found = scanFrom(lines, Math.max(0, intro), exclude, maxRecipients);
  // An address written before the introduction ("<a@b>\n\nEach of the following recipients was rejected").
  if (!found.size && intro > 0) found = scanFrom(lines, 0, exclude, maxRecipients);
  const recipients = [...found.values()].map((e) => ({ address: e.address, diagnostic: oneLine(e.lines.join(' ')) }));
  const reasons = reasonLines(lines.slice(Math.max(0, intro)));
  return { recipients, reasons, delayed: isDelay(text), bounceLike };
}

interface Entry {
  readonly address: string;
  readonly lines: string[];
}

function scanFrom(lines: readonly string[], start: number, exclude: ReadonlySet<string>, maxRecipients: number): Map<string, Entry> {
  const found = new Map<string, Entry>();
  let current: Entry | undefined;
  for (let i = start; i < lines.length; i++) {
    const raw = lines[i]!;
    const line = raw.length > MAX_LINE ? raw.slice(0, MAX_LINE) : raw;
    if (HEADER_START.test(line)) break;
    if (line.trim() === '' || RULE.test(line) || SENDER_LINE.test(line)) {
      current = undefined;
      continue;
    }
    const mention = recipientMention(line, exclude);
    if (mention) {
      const key = mention.address.toLowerCase();
      let entry = found.get(key);
      if (!entry && found.size < maxRecipients) {
        entry = { address: mention.address, lines: [] };
        found.set(key, entry);
      }
      if (entry) {
        if (mention.rest && entry.lines.length < MAX_REASON_LINES) entry.lines.push(mention.rest);
        current = entry;
      }
      continue;
    }
    if (current && current.lines.length < MAX_REASON_LINES) current.lines.push(line.trim());
  }
  return found;
}

function recipientMention(line: string, exclude: ReadonlySet<string>): { address: string; rest: string } | undefined {
  for (const a of addressesIn(line)) {
    const before = line.slice(0, a.index);
    if (/(?:\/\/|[=/%])$/.test(before) || /https?:\/\/\S*$/.test(before)) continue; // part of a URL
    const leads = LEADS.test(before);
    // The sender's own address is skipped unless it leads its line (a report naming a recipient
    // that happens to be the sender too).
    if (!leads && exclude.has(a.address.toLowerCase())) continue;
    if (!leads && !RCPT_TO.test(before) && !((PHRASE_COLON.test(before) || TO_WORD.test(before)) && !CODE_BEFORE.test(before))) continue;
    const after = line.slice(a.index + a.address.length).replace(/^[>")\]\s]*(?:\.{3}|[:.,;]+)?\s*/, '');
    const prefix = leads ? '' : before.replace(/[\s<("[]+$/, '').replace(/\s*:$/, '').trim();
    const rest = [prefix && !INTRO.test(prefix) && !RCPT_TO.test(before) ? prefix : '', after].filter(Boolean).join(' ');
    return { address: a.address, rest };
  }
  return undefined;
}

/** Phrases of a delivery failure anywhere in a text (for reports with no introduction line). */
export const BOUNCE_PHRASE = /qmail-send program|created automatically by mail delivery software|could not be delivered|couldn't be delivered|cannot be delivered|unable to deliver|wasn't able to deliver|was not delivered|did not reach|delivery (?:to the following recipients? )?(?:has )?failed|failed permanently|transcript of session follows|undeliverable|undelivered|permanent (?:fatal )?error|could not be sent|error has occurred while attempting to deliver|mail delivery (?:failed|subsystem)|failure reasons|no valid recipients|invalid user address|delivery errors|message non-deliverable|had trouble delivering|failed to deliver|delivery incomplete|mailbox is full|This is the mail (?:system|delivery agent)|delivery error|rejected by (?:a|the) remote|error delivering your (?:mail|message)|not a member of this mailing list|loop alert/i;

/** Lines naming a reason: a reply or enhanced code, or words a class pattern knows. At most 3. */
function reasonLines(lines: readonly string[]): string {
  const out: string[] = [];
  for (const l of lines) {
    const t = l.trim();
    if (!t || t.length > 2000) continue;
    if (/(?:^|[^\d.])(?:[245]\d\d[ \-]|[45]\.\d{1,3}\.\d{1,3})/.test(t) || firstMatch(OVERRIDES, t) || firstMatch(TEXT_PATTERNS, t)) {
      out.push(t);
      if (out.length >= 3) break;
    }
  }
  return oneLine(out.join(' '));
}

const PERMANENT = /\bpermanent(?:ly)?\b|\bgiven up\b|\bgiving up\b|\bwill not (?:try|be retried|continue)|\bnot going to try again\b|\bfatal errors?\b|\bwill be deleted\b/i;
const DELAY = /\bTHIS IS A WARNING\b|\bwarning message only\b|\bstill being retried\b|\bwill (?:continue|keep) (?:trying|to try)|\bwill be retried\b|\bwill retry\b|\bdelivery incomplete\b|\bhas not yet been delivered\b|\bdelayed\b/i;

function isDelay(text: string): boolean {
  const head = text.slice(0, 4096);
  return !PERMANENT.test(head) && DELAY.test(head);
}
