/**
 * smtpd: the SMTP server (RFC 5321 and extensions). Public entry points of the module.
 */
export { SmtpServer, type SmtpServerOptions } from './server.js';
export { loadOrCreateTls, type TlsMaterial } from './tls.js';
export type { IncomingMessage, MessageSink, RecipientDecision, SessionInfo, SmtpPolicy } from './types.js';
