/**
 * src/feedback: reading what comes back about our mail. Owns the parsing of inbound DSNs (RFC
 * 3464) and other bounce formats, ARF feedback reports (RFC 5965) and other complaint formats,
 * auto-reply detection (RFC 3834), and the bounce classifier that also labels synchronous
 * replies during delivery. Pure functions on bytes: it never touches the store, decides nothing
 * about suppression and sends nothing; the inbound transport and the suppression list call it.
 *
 * API:
 * - `parseBounce(raw, limits?) → Promise<BounceReport>`: kind dsn | bounce | autoreply | unknown,
 *   recipients with address, action, status, diagnostic, remoteMta, class, severity; the
 *   Reporting-MTA, ENVID, and the enclosed original's header section (Message-ID, X-Postline-*).
 * - `parseArf(raw, limits?) → Promise<ArfReport>`: Feedback-Type, the complained recipient,
 *   the reporting provider, the enclosed original's header section.
 * - `isAutoReply(headers) → boolean`, `autoReplyReason(headers)`.
 * - `classifyReply(code, enhanced, text) → { class, severity }`: synchronous, allocation-free.
 * None of them throws on any input.
 */
export { parseBounce } from './dsn-parse.js';
export { parseArf } from './arf-parse.js';
export { isAutoReply, autoReplyReason, type HeaderBag } from './autoreply.js';
export { classifyReply, parseEnhanced } from './classify.js';
export { BOUNCE_CLASSES, CLASS_SEVERITY, isBounceClass, type BounceClass, type BounceSeverity, type BounceVerdict } from './classes.js';
export {
  DEFAULT_FEEDBACK_LIMITS, feedbackLimits,
  type ArfKind, type ArfReport, type BounceKind, type BounceRecipient, type BounceReport, type FeedbackLimits, type OriginalMessage,
} from './types.js';
