/** Errors of the webhook dispatcher (PostlineError subclasses with stable codes). */
import { PostlineError } from '../core/errors.js';

/**
 * A webhook URL points where Postline refuses to send (SSRF guard, ssrf.ts): not http(s), or a
 * host that is or resolves to a link-local, metadata, unspecified, multicast, or (without
 * `allowPrivate`) loopback or private address. Code ERR_WEBHOOK_TARGET; permanent for this URL
 * until the configuration or the name's addresses change (the dispatcher keeps retrying).
 */
export class WebhookTargetError extends PostlineError {
  constructor(message: string) {
    super('ERR_WEBHOOK_TARGET', message, { temporary: false });
    this.name = 'WebhookTargetError';
  }
}
