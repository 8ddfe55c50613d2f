/**
 * Every stable error code of Postline (PostlineError.code), in one typed union (DESIGN.md "stable
 * error codes"): a code a caller, a log reader or an API client can rely on. Add a code here
 * before using it; never rename one. Model: undici's error classes with fixed codes.
 */
export const ERROR_CODES = [
  // core, config, data directory, CLI
  'ERR_INTERNAL', 'ERR_CONFIG', 'ERR_USAGE', 'ERR_CLI', 'ERR_STATE', 'ERR_DATA_DIR_LOCKED', 'ERR_SECRET_FILE',
  // queue store
  'ERR_STORE', 'ERR_STORE_FULL', 'ERR_STORE_OPTIONS', 'ERR_NO_SUCH_MESSAGE', 'ERR_MESSAGE_HELD', 'ERR_MESSAGE_SCHEDULED',
  'ERR_BAD_QUERY', 'ERR_NO_DESTINATION_STATES', 'ERR_NOT_SUSPENDED', 'ERR_BAD_DESTINATION',
  // cleanup and the message
  'ERR_SIZE', 'ERR_HEADER_SIZE', 'ERR_LOOP', 'ERR_NO_RECIPIENTS', 'ERR_METADATA', 'ERR_MODIFIER', 'ERR_CLEANUP_OPTIONS',
  'ERR_ALIAS_LOOP', 'ERR_MAILBOX_NAME',
  // local delivery: the http transport (inbound parse)
  'ERR_INBOUND_PARSE', 'ERR_INBOUND_TOO_BIG',
  // users and policy
  'ERR_USERS_FILE', 'ERR_USER_NAME', 'ERR_USER_PASSWORD',
  // DNS and MX
  'ERR_DNS_BAD_DOMAIN', 'ERR_DNS_NULL_MX', 'ERR_DNS_NXDOMAIN', 'ERR_DNS_TEMPORARY', 'ERR_DNS_NO_MX', 'ERR_DNS_MX_UNRESOLVED', 'ERR_DNS_HOST',
  // delivery (ERR_SMTP_* below: the SMTP client's trouble kinds)
  'ERR_MIME_DOWNGRADE', 'ERR_SMTPUTF8_REQUIRED', 'ERR_SMTP_REPLY_MALFORMED', 'ERR_MTA_STS_NO_MX', 'ERR_TLS_CA_FILE',
  // authentication
  'ERR_DKIM_KEY', 'ERR_DKIM_SIGN', 'ERR_DMARC_REJECT',
  // HTTP API
  'ERR_API_VALIDATION', 'ERR_API_UNAUTHORIZED', 'ERR_API_FORBIDDEN', 'ERR_API_NOT_FOUND', 'ERR_API_CONFLICT',
  'ERR_API_IDEMPOTENCY', 'ERR_API_TOO_LARGE', 'ERR_API_MEDIA_TYPE', 'ERR_API_UNPROCESSABLE', 'ERR_API_RATE_LIMITED',
  'ERR_API_UNAVAILABLE', 'ERR_API_INTERNAL', 'ERR_API_TIMEOUT', 'ERR_API_HTTP', 'ERR_API_KEY_EXISTS', 'ERR_API_KEY_SPEC',
  'ERR_HTTP_REQUEST_TIMEOUT', 'ERR_API_BAD_TOKEN',
  // tracking and unsubscribe links
  'ERR_LINK_TOKEN',
  // webhooks
  'ERR_WEBHOOK_TARGET', 'ERR_WEBHOOK_UNKNOWN_ENDPOINT',
  // the sendmail command and its doors (src/cli/sendmail*.ts, src/pickup/)
  'ERR_SENDMAIL', 'ERR_SUBMIT_ENVELOPE', 'ERR_SUBMIT_VERB', 'ERR_SUBMIT_REFUSED', 'ERR_SUBMIT_LOCAL',
  // the suppression list
  'ERR_SUPPRESSION_INPUT',
] as const;

/** A stable error code: one of ERROR_CODES, or an SMTP client trouble code (delivery/client-error.ts: ERR_SMTP_ + its kind). */
export type ErrorCode = (typeof ERROR_CODES)[number] | `ERR_SMTP_${string}`;
