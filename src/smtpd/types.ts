/**
 * What the SMTP server (smtpd) needs from the rest of Postline. smtpd only speaks the protocol and
 * asks policy; it never writes the queue itself: it streams each accepted message into the
 * `MessageSink` (cleanup), which commits it and returns the queue ID for the 250 reply.
 */
// The session facts, the sink and the policy interface live in core (src/core/session.ts), so
// cleanup and policy need nothing from smtpd; they are re-exported here for smtpd's own files.
export type {
  AuthVerdict, ForwardedFacts, GreetingPlan, IncomingMessage, ListenerFacts, PolicyReply, ProxyFacts, Rejection, SessionLimits, MessageSink, RecipientDecision, SessionInfo, SmtpPolicy, TlsFacts,
} from '../core/session.js';
