/**
 * Text patterns of delivery failures, as written by common MTAs and mailbox providers (Gmail,
 * Outlook / Exchange / Office 365, Yahoo / AOL, Postfix, Exim, Sendmail, qmail, Courier, Domino,
 * Mimecast, Barracuda, ...), for the bounce classifier (classify.ts). Facts about the wording of
 * replies only; no table is taken from another project.
 *
 * Every pattern is compiled once, case-insensitive, and bounded: alternations of literal words
 * with at most short `[^\n]{0,N}` gaps, so a test is linear in the text (no backtracking blow-up;
 * the classifier also cuts the text to 4 KiB).
 */
import type { BounceClass } from './classes.js';

/** One class and the pattern that names it. */
export interface ClassPattern {
  readonly cls: BounceClass;
  readonly re: RegExp;
}

/**
 * Causes a reply names in its text that no enhanced status code carries reliably (servers send a
 * generic X.7.1, or even X.1.1, with a blocklist, a rate limit, an SPF failure or a full mailbox):
 * these win over the code. Tested in this order.
 */
export const OVERRIDES: readonly ClassPattern[] = [
  { cls: 'VirusRelated', re: /\bvirus(?:es)? (?:found|detected)|\binfected\b|\bcontains? (?:a )?virus|\bmalware\b/i },
  {
    cls: 'Throttled',
    re: /\btoo many (?:connections|messages|sessions|concurrent|e-?mails|mails)\b|\brate[- ]?limit|\bfrequency limited\b|\bslow down\b|\bdeferred due to (?:unexpected volume|user complaints)|\bsent to too many recipients\b|\btoo much (?:mail|traffic) from\b|\bthrottl|\[TSS?0\d\]/i,
  },
  {
    cls: 'BlockedByReputation',
    re: /\b(?:spamhaus|spamcop|sorbs|barracudacentral|abuseat|uceprotect|mailspike|spameatingmonkey|surbl|dnsbl|rbl)\b|\bblock ?list(?:ed)?\b|\bblack ?list(?:ed)?\b|\bblocked using\b|\bbanned sending ip\b|\bpoor reputation\b|\b(?:ip|sender|domain|sending) reputation\b|\bnetwork not allowed\b|\blisted (?:at|in|on|by) [^\n]{0,40}\b(?:rbl|dnsbl|bl)\b/i,
  },
  { cls: 'BlockedByReputation', re: /[A-Z]RBL\b/ },
  {
    cls: 'ContentRejected',
    re: /\b(?:rejected|refused|blocked) (?:due to|as|because of) spam|\bflagged as spam\b|\bspam (?:classification|detected|content|signature|score)|\bMCSpamSignature\b|\bconsidered (?:as )?(?:unsolicited|spam)|\blikely (?:to be )?(?:spam|unsolicited)\b|\bUBE\b/i,
  },
  {
    cls: 'AuthFailure',
    re: /\bDMARC\b|\bSPF\b|\bDKIM\b|\bsender ?id\b|\bpurported responsible address\b|\bsmtp authentication\b|\bauthentication (?:is )?required\b|\bnot authenticated\b|\bunauthenticated (?:e-?mail|mail|message)|\bAUTH capability\b|\bARC (?:validation|check)/i,
  },
  {
    cls: 'MailboxFull',
    re: /\bover ?quota\b|\bquota (?:exceeded|full)\b|\bexceeded (?:the |its )?(?:storage|quota)|\bmail ?(?:box|folder) (?:is )?full\b|\bfull mailbox\b|\bexceeds allowed size\b|\bmailbox (?:size )?limit exceeded\b|\binsufficient mailbox storage\b|\bmessages in (?:the )?recipient's mailbox exceeded\b|\bmailbox is over\b/i,
  },
  { cls: 'TransientFailure', re: /\bgr[ae]ylist/i },
  // The recipient's own settings refused the mail: the address works (Facebook sends 5.1.1 with it).
  { cls: 'PolicyRelated', re: /\bdue to (?:the )?recipient(?:'s)? (?:preferences|settings)\b/i },
];

/**
 * Patterns for replies whose enhanced code is absent or only says "something about the
 * address / the mailbox / policy" (X.0.0, X.1.0, X.2.0, X.5.0, X.7.1, ...). Tested in this order:
 * the address itself first, then the destination, then what the receiver thinks of the mail,
 * then network and system trouble.
 */
export const TEXT_PATTERNS: readonly ClassPattern[] = [
  {
    cls: 'InactiveMailbox',
    re: /\b(?:account|mailbox|user|address)(?:\(s\))? (?:is |has been |was )?(?:disabled|deactivated|inactive|suspended|expired|frozen|locked|discontinued|closed)\b|\bno longer (?:on (?:this |the )?server|active|in use|available|valid)\b|\bdisabled or discontinued\b/i,
  },
  {
    cls: 'InvalidRecipient',
    re: /\b(?:user|recipient|mailbox|address|addressee|account)s? (?:is )?(?:unknown|not found|not listed|not known|invalid)\b|\bunknown (?:user|recipient|mailbox|address(?! error)|e-?mail address|local[- ]part|addressee)\b|\bno such (?:user|mailbox|recipient|address|account|local user|person)\b|\b(?:user|mailbox|recipient|address|account|account that you tried to reach) (?:does not|doesn't|did not|not) exist\b|\b(?:invalid|bad) (?:recipient|mailbox|user|address|destination)\b|\bnot (?:a )?(?:valid|known|registered) (?:gateway )?(?:user|recipient|mailbox|address)\b|\bRecip(?:ient)?NotFound\b|\bnot listed in (?:the )?(?:Domino Directory|public Name & Address Book|directory)\b|\bno mailbox here\b|\bdoesn't have an? \S+ account\b|\baddress (?:couldn't|could not|can't|cannot) be found\b|\baddress not found\b|\b(?:recipient|user) name is not recognized\b|\binvalid final delivery userid\b|\berr\.nosuchuser\b|No matching Directory Entry|ディレクトリ[^\n]{0,20}(?:ありません|見つかりません)/i,
  },
  {
    cls: 'BadDomain',
    re: /\bhost (?:or domain name )?(?:not found|unknown)\b|\bunknown host\b|\bdomain (?:name )?(?:not found|does not exist|doesn't exist|unknown|is not reachable)\b|\bno such domain\b|\bNXDOMAIN\b|\bnull MX\b|\bdoesn't receive e-?mail\b|\bunrout(?:e)?able (?:address|domain|mail domain)\b|\bno (?:MX|mail exchanger|MX or A|A or MX)(?: or A)?(?: records?| hosts?| for)\b|\bdomain \S+ (?:couldn't|could not) be found\b|\bhad no relevant answers\b|\bname service error\b[^\n]{0,60}\bhost not found\b/i,
  },
  {
    cls: 'DnsFailure',
    re: /\bhost name lookup failure\b|\bDNS (?:lookup )?(?:temporary )?(?:failure|error|timeout|problem)\b|\bSERVFAIL\b|\bname server (?:timeout|failure)\b|\btemporary (?:DNS|lookup) failure\b|\bresolver (?:error|failure)\b/i,
  },
  // Weaker address wording: after the domain cases ("Recipient address rejected: Domain not found").
  { cls: 'InvalidRecipient', re: /\brecipient (?:address )?rejected\b|\baddress rejected\b|\bmailbox unavailable\b|\bno valid recipients\b|\binvalid address\b/i },
  {
    cls: 'RelayingDenied',
    re: /\brelay(?:ing)? (?:access )?(?:denied|not (?:permitted|allowed)|prohibited|refused)\b|\b(?:unable|not permitted|not allowed) to relay\b|\bwe do not relay\b|\bnon-accepted domain\b|\bcannot relay\b/i,
  },
  {
    cls: 'MessageTooLarge',
    re: /\b(?:message|mail|e-?mail)(?: size)? (?:is )?(?:too (?:large|big)|exceeds? (?:the )?(?:maximum|max|size|fixed|allowed|limit))|\bsize (?:limit )?exceeded\b|\bsize limit\b|\bmaximum message size\b|\btoo large\b/i,
  },
  { cls: 'ContentRejected', re: /\bspam\b|\bunsolicited\b|\bbulk e-?mail\b|\bcontent (?:rejected|filter)|\bmessage (?:content )?rejected\b|\bheader error\b|\bphishing\b/i },
  {
    cls: 'InvalidSender',
    re: /\bsender (?:address |domain )?(?:is )?(?:invalid|unknown|not found|does not exist|doesn't exist|must (?:exist|resolve))\b|\bdomain of sender address\b[^\n]{0,40}\bdoes not (?:exist|resolve)\b|\binvalid sender\b|\bsender domain\b[^\n]{0,20}\b(?:not found|does not exist|unknown)\b/i,
  },
  {
    cls: 'PolicyRelated',
    re: /\bpolic(?:y|ies)\b|\baccess denied\b|\bnot (?:allowed|permitted|authori[sz]ed)\b|\bprohibited\b|\brestricted\b|\bsender (?:was |is )?rejected\b|\brecipient(?:'s)? preferences\b|\bnot accepted\b|\bblocked\b|(?<!connection )\brefused\b|\bnot a member\b|\bpermission to post\b|\bsmtp server of your ISP\b|\bdenied\b/i,
  },
  { cls: 'TlsFailure', re: /\bSTARTTLS\b|\bTLS\b|\bcertificate\b|\bencryption (?:is )?(?:required|needed)\b/i },
  {
    cls: 'ProtocolErrors',
    re: /\b(?:improper|bad|wrong) sequence of commands\b|\bsyntax error\b|\bcommand (?:not (?:recognized|implemented|understood)|unrecognized)\b|\bunrecognized command\b|\bprotocol (?:error|violation)\b|\bline too long\b|\bbare (?:LF|CR|linefeed)\b|\bSMTPUTF8\b|\bneed (?:RCPT|MAIL)\b/i,
  },
  { cls: 'BadConnection', re: /\bconnection (?:lost|reset|dropped|closed|broken|terminated)\b|\blost connection\b|\bbroken pipe\b|\bunexpected (?:end of file|EOF|disconnect)/i },
  {
    cls: 'NoAnswerFromHost',
    re: /\bconnection (?:timed out|refused|time ?out)\b|\btimed? ?out\b|\bno route to host\b|\b(?:network|host) (?:is )?unreachable\b|\b(?:unable|could not|couldn't|failed) to connect\b|\bdid not accept our requests to connect\b|\bno answer from\b|\bnot responding\b/i,
  },
  {
    cls: 'SystemError',
    re: /\bsystem (?:config(?:uration)? )?error\b|\binternal (?:system |server )?error\b|\bservice (?:is )?(?:currently |temporarily )?(?:unavailable|not available)\b|\blocal (?:configuration|delivery) error\b|\bmailer error\b|\bupstream error\b|\bnot enough (?:disk )?space\b|\binsufficient (?:system )?storage\b|\bconfiguration error\b|\bsystem (?:is )?(?:busy|overloaded)\b/i,
  },
  {
    cls: 'RoutingErrors',
    re: /\bmail loop\b|\brouting loop\b|\bloop (?:detected|alert)\b|\bhop count\b|\btoo many hops\b|\bforwarded more than\b|\bduplicated message-id\b|\bcould not find a gateway\b|\bunable to route\b|\brouting (?:error|failure|problem)/i,
  },
  {
    cls: 'MessageExpired',
    re: /\b(?:delivery time|message|retry time) (?:has )?expired\b|\bretry timeout exceeded\b|\bin the queue too long\b|\btoo long in (?:the )?queue\b|\bcould not be delivered for (?:\d+|more than)\b|\bfailed \d+ attempts\b/i,
  },
  { cls: 'TransientFailure', re: /\btry (?:again )?later\b|\btemporar(?:y|ily)\b|\bdeferred\b|\bplease retry\b/i },
];

/** The first pattern of `list` that matches `text`, or undefined. */
export function firstMatch(list: readonly ClassPattern[], text: string): BounceClass | undefined {
  for (const p of list) if (p.re.test(text)) return p.cls;
  return undefined;
}
