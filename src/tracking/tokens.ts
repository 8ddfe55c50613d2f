/**
 * Signed link tokens for open and click tracking and for unsubscribe links (issue 10 sections 5, 6).
 *
 * A token names what it stands for and proves we made it: version byte, kind byte ('o' open,
 * 'c' click, 'u' unsubscribe), then the queue ID, the recipient ('' for a message-level token of
 * mail with several recipients) and the kind's own field (the original URL of a click, the sender
 * domain of an unsubscribe), NUL-separated, followed by the first 16 bytes of HMAC-SHA256 over all
 * of it (RFC 2104; a 128-bit tag, as RFC 2104 section 5 allows), the whole in base64url without
 * padding (RFC 4648 section 5). Verification takes only the canonical spelling: any other byte
 * sequence, also one that decodes to the same bytes, is refused, so no change to a token passes.
 *
 * The secret: `tracking.secret` when configured, else a random 32-byte key kept in
 * dataDir/link-tokens.key (core/secret-file.ts: made at first use, mode 0600). Changing it makes
 * every link sent before fail (400).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { PostlineError } from '../core/errors.js';
import { loadOrCreateSecret } from '../core/secret-file.js';

/** What a token stands for. */
export type LinkKind = 'open' | 'click' | 'unsubscribe';

/** The content of a token. */
export interface LinkToken {
  readonly kind: LinkKind;
  readonly queueId: string;
  /** The recipient's address; '' for a message-level token (mail with several recipients). */
  readonly recipient: string;
  /** click: the original URL (absolute http/https). */
  readonly url?: string;
  /** unsubscribe: the sender domain (the suppression scope). */
  readonly scope?: string;
}

/** A token that is not one of ours (malformed, tampered with, or of another kind). Answered 400. */
export class TokenError extends PostlineError {
  constructor(readonly reason: string) {
    super('ERR_LINK_TOKEN', `bad link token: ${reason}`, { temporary: false });
    this.name = 'TokenError';
  }
}

const VERSION = 1;
const MAC_BYTES = 16;
/** Longest token accepted, characters (a click token of a URL of 4096 bytes fits). */
export const MAX_TOKEN_CHARS = 8192;
const KIND_BYTE: Record<LinkKind, number> = { open: 0x6f, click: 0x63, unsubscribe: 0x75 };
const BYTE_KIND = new Map<number, LinkKind>(Object.entries(KIND_BYTE).map(([k, v]) => [v, k as LinkKind]));
const B64URL = /^[A-Za-z0-9_-]+$/;
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Makes and checks link tokens with one secret. */
export class LinkSigner {
  private readonly key: Buffer;

  /** @param secret at least 16 bytes. @throws TokenError when shorter. */
  constructor(secret: Buffer) {
    if (secret.length < 16) throw new TokenError('the secret is shorter than 16 bytes');
    // A key of its own for link tokens, whatever else the secret may be used for.
    this.key = createHmac('sha256', secret).update('postline link tokens v1').digest();
  }

  /**
   * The token of `t`, base64url. @throws TokenError when a field holds NUL, or a click has no URL
   * (or an unsubscribe no scope).
   */
  sign(t: LinkToken): string {
    const extra = t.kind === 'click' ? t.url : t.kind === 'unsubscribe' ? t.scope : undefined;
    if (t.kind === 'click' && !t.url) throw new TokenError('a click token needs its URL');
    if (t.kind === 'unsubscribe' && t.scope === undefined) throw new TokenError('an unsubscribe token needs its scope');
    const fields = [t.queueId, t.recipient, ...(extra !== undefined ? [extra] : [])];
    if (fields.some((f) => f.includes('\0'))) throw new TokenError('a field holds NUL');
    const payload = Buffer.concat([Buffer.from([VERSION, KIND_BYTE[t.kind]]), Buffer.from(fields.join('\0'), 'utf8')]);
    return Buffer.concat([payload, this.mac(payload)]).toString('base64url');
  }

  /**
   * Checks a token and gives its content. @param kind the kind the caller serves (another is refused).
   * @throws TokenError naming why (not base64url, not canonical, too short or long, bad signature,
   *         unknown version or kind, wrong kind, malformed fields).
   */
  verify(token: string, kind?: LinkKind): LinkToken {
    if (token.length === 0 || token.length > MAX_TOKEN_CHARS) throw new TokenError('wrong length');
    if (!B64URL.test(token)) throw new TokenError('not base64url');
    const raw = Buffer.from(token, 'base64url');
    if (raw.toString('base64url') !== token) throw new TokenError('not in canonical base64url');
    if (raw.length < 2 + MAC_BYTES) throw new TokenError('too short');
    const payload = raw.subarray(0, raw.length - MAC_BYTES);
    if (!timingSafeEqual(this.mac(payload), raw.subarray(raw.length - MAC_BYTES))) throw new TokenError('signature does not match');
    if (payload[0] !== VERSION) throw new TokenError(`unknown version ${payload[0]}`);
    const k = BYTE_KIND.get(payload[1]!);
    if (!k) throw new TokenError('unknown kind');
    if (kind && k !== kind) throw new TokenError(`a ${k} token, not a ${kind} token`);
    let text: string;
    try {
      text = utf8.decode(payload.subarray(2));
    } catch {
      throw new TokenError('fields are not UTF-8');
    }
    const f = text.split('\0');
    const want = k === 'open' ? 2 : 3;
    if (f.length !== want || !f[0]) throw new TokenError('malformed fields');
    if (k === 'click') return { kind: k, queueId: f[0], recipient: f[1]!, url: f[2]! };
    if (k === 'unsubscribe') return { kind: k, queueId: f[0], recipient: f[1]!, scope: f[2]! };
    return { kind: k, queueId: f[0], recipient: f[1]! };
  }

  private mac(payload: Buffer): Buffer {
    return createHmac('sha256', this.key).update(payload).digest().subarray(0, MAC_BYTES);
  }
}

/** The key file's name in the data directory. */
export const LINK_KEY_FILE = 'link-tokens.key';

/**
 * The secret for link tokens: `configured` (tracking.secret, UTF-8) when given, else the key in
 * `dataDir` (core/secret-file.ts: 32 random bytes, mode 0600, made at first use).
 * @throws PostlineError ERR_SECRET_FILE when the file cannot be read or made.
 */
export function loadLinkSecret(dataDir: string, configured?: string): Buffer {
  return configured !== undefined ? Buffer.from(configured, 'utf8') : loadOrCreateSecret(dataDir, LINK_KEY_FILE);
}
