/**
 * DKIM signing as a cleanup modifier (stage 'sign', the last one), RFC 6376 and RFC 8463.
 *
 * Which mail: mail of our own users (ModifierContext.trusted: authenticated submission, trusted
 * networks, the API, our DSNs); mail from other clients only with `signRelayed`. Which key: the
 * From: domain's keys, else the keys of its nearest parent domain that has any; every key of that
 * domain signs (an RSA and an Ed25519 key: two signatures, RFC 8463 dual signing).
 *
 * How: relaxed/relaxed, never l=, h= lists each configured field as often as it occurs plus From
 * once more (over-signing: nobody can add a From later). The body hash is computed while the body
 * streams by (canon.ts), the header hash at the end over the header section as stored plus what
 * earlier modifiers prepended, then signed with node:crypto (RSA PKCS#1 v1.5 SHA-256; Ed25519 over
 * the SHA-256 of the hash input, RFC 8463 3). mailauth's signer is not used: DkimSignStream keeps
 * the whole message in memory, and dkimSign wants the complete header section before the body,
 * while the fields earlier modifiers prepend at the end are only known after it.
 *
 * 8-bit mail: the modifier asks for a 7-bit stored form (`sevenBit`), so the signed bytes are the
 * bytes every hop gets (no downgrade at delivery).
 */
import { createHash, sign } from 'node:crypto';
import { domainToASCII } from 'node:url';
import { PostlineError } from '../core/errors.js';
import { reply } from '../core/reply.js';
import type { HeaderView, MessageModifier, ModifierContext, ModifierFactory } from '../cleanup/modifiers.js';
import { headerHashInput, pickSigned, RelaxedBodyHash, splitFields, type RawField } from './canon.js';
import type { DkimKey } from './keys.js';

/** The header fields signed by default (those present; From once more). */
export const DEFAULT_SIGNED_HEADERS: readonly string[] = [
  'From', 'Sender', 'Reply-To', 'To', 'Cc', 'Subject', 'Date', 'Message-ID', 'In-Reply-To', 'References',
  'MIME-Version', 'Content-Type', 'Content-Transfer-Encoding', 'List-Id', 'List-Unsubscribe',
  'List-Unsubscribe-Post', 'Feedback-ID',
];

/** What the signer needs. */
export interface DkimSignerOptions {
  readonly keys: readonly DkimKey[];
  /** Field names for h= (default DEFAULT_SIGNED_HEADERS); From is always signed and over-signed. */
  readonly headers?: readonly string[];
  /** Sign mail from clients that are not ours too (default false). */
  readonly signRelayed?: boolean;
  /** ms since epoch, for t=. */
  readonly now?: () => number;
  /** Told once per signed message (for the log). */
  readonly onSigned?: (queueId: string, domain: string, selectors: readonly string[]) => void;
}

/**
 * The domain of the first address of a From: field value (RFC 5322 3.6.2), A-labels, lower case;
 * undefined when there is none. Comments and display names are skipped, not parsed in full.
 */
export function fromDomain(value: string): string | undefined {
  const noComments = value.replace(/\((?:[^()\\]|\\.)*\)/g, ' ');
  const angle = /<([^<>]*)>/.exec(noComments);
  const addr = angle ? angle[1]! : noComments.replace(/"(?:[^"\\]|\\.)*"/g, '').split(',')[0]!;
  const at = addr.lastIndexOf('@');
  if (at < 0) return undefined;
  const raw = addr.slice(at + 1).trim().replace(/\.$/, '');
  const utf8 = Buffer.from(raw, 'latin1').toString('utf8'); // header bytes were read as latin1
  const d = domainToASCII(utf8).toLowerCase();
  return d || undefined;
}

/** The keys that sign for `domain`: its own, else the nearest parent domain's. */
export function keysFor(keys: readonly DkimKey[], domain: string): DkimKey[] {
  for (let d = domain; d.includes('.'); d = d.slice(d.indexOf('.') + 1)) {
    const found = keys.filter((k) => k.domain === d);
    if (found.length) return found;
  }
  return [];
}

/** Folds a tag list at the "; " boundaries so lines stay near 78 characters (RFC 5322 2.1.1). */
function fold(tags: readonly string[]): string {
  let out = 'DKIM-Signature:';
  let line = out.length;
  for (let i = 0; i < tags.length; i++) {
    const t = tags[i]! + (i < tags.length - 1 ? ';' : '');
    if (line + 1 + t.length > 78 && line > 16) {
      out += '\r\n\t' + t;
      line = 1 + t.length;
    } else {
      out += ' ' + t;
      line += 1 + t.length;
    }
  }
  return out;
}

/** Breaks a base64 value into folded pieces (continuation lines of 72 characters). */
function foldValue(v: string): string {
  const parts: string[] = [];
  for (let i = 0; i < v.length; i += 72) parts.push(v.slice(i, i + 72));
  return parts.join('\r\n\t');
}

/** The signature field without its b= value, and the bytes its b= signs (RFC 6376 3.5, 3.7). */
function unsignedField(key: DkimKey, fields: readonly RawField[], names: readonly string[], bodyHash: string, timeSec: number): { unsigned: string; input: Buffer } {
  const h: string[] = [];
  for (const n of names) {
    const count = fields.filter((f) => f.name.toLowerCase() === n.toLowerCase()).length;
    for (let i = 0; i < count; i++) h.push(n);
  }
  h.push('From'); // over-signed: one more than there are
  const tags = [
    'v=1', `a=${key.algorithm}`, 'c=relaxed/relaxed', `d=${key.domain}`, `s=${key.selector}`, `t=${timeSec}`,
    `h=${h.join(':')}`, `bh=${bodyHash}`, 'b=',
  ];
  const unsigned = fold(tags);
  return { unsigned, input: headerHashInput(pickSigned(fields, h), unsigned) };
}

/** "b=" ends the last line: the value goes on continuation lines (verifiers drop it, with its whitespace). */
const withSignature = (unsigned: string, sig: Buffer): string => `${unsigned}\r\n\t${foldValue(sig.toString('base64'))}\r\n`;

/**
 * One DKIM-Signature field (with its CRLF) for the given fields and body hash (RFC 6376 3.5, 3.7;
 * Ed25519: RFC 8463, the SHA-256 of the input is signed).
 * @param fields the header section to sign, top first (prepended fields included).
 */
export function signatureField(key: DkimKey, fields: readonly RawField[], names: readonly string[], bodyHash: string, timeSec: number): string {
  const { unsigned, input } = unsignedField(key, fields, names, bodyHash, timeSec);
  const sig = key.algorithm === 'ed25519-sha256'
    ? sign(null, createHash('sha256').update(input).digest(), key.key)
    : sign('sha256', input, key.key);
  return withSignature(unsigned, sig);
}

/**
 * The same as signatureField, signed on libuv's thread pool (node:crypto's callback form), so an
 * RSA signature (about 1 ms of CPU) does not stall the event loop and can use another core.
 * @throws (rejects) what node:crypto's sign throws.
 */
export function signatureFieldAsync(key: DkimKey, fields: readonly RawField[], names: readonly string[], bodyHash: string, timeSec: number): Promise<string> {
  const { unsigned, input } = unsignedField(key, fields, names, bodyHash, timeSec);
  const ed = key.algorithm === 'ed25519-sha256';
  return new Promise((resolve, reject) => {
    sign(ed ? null : 'sha256', ed ? createHash('sha256').update(input).digest() : input, key.key, (err, sig) => (err ? reject(err) : resolve(withSignature(unsigned, sig))));
  });
}

/** The names for h=: the configured list (default), From first and once only, duplicates dropped. */
function signedNames(headers: readonly string[] | undefined): string[] {
  const seen = new Set<string>(['from']);
  const out = ['From'];
  for (const n of headers ?? DEFAULT_SIGNED_HEADERS) {
    const l = n.toLowerCase();
    if (seen.has(l) || l === 'dkim-signature') continue;
    seen.add(l);
    out.push(n);
  }
  return out;
}

/**
 * The DKIM signing modifier factory. Sign failures (they cannot happen with keys that loaded)
 * refuse the message with 451 4.7.0 rather than send it unsigned.
 */
export function dkimSigner(opts: DkimSignerOptions): ModifierFactory {
  const names = signedNames(opts.headers);
  const now = opts.now ?? Date.now;
  return {
    name: 'dkim',
    stage: 'sign',
    create(ctx: ModifierContext): MessageModifier | undefined {
      if (!opts.keys.length) return undefined;
      if (!ctx.trusted && !opts.signRelayed) return undefined;
      let keys: DkimKey[] = [];
      let body: RelaxedBodyHash | undefined;
      return {
        header(view: HeaderView) {
          if (!view.complete) return undefined;
          const from = view.fields.find((f) => f.name.toLowerCase() === 'from');
          const domain = from ? fromDomain(from.value) : undefined;
          keys = domain ? keysFor(opts.keys, domain) : [];
          if (!keys.length) return undefined;
          body = new RelaxedBodyHash();
          return { sevenBit: true };
        },
        body(chunk: Buffer) {
          body?.update(chunk);
        },
        async end(view) {
          if (!body || !keys.length) return undefined;
          const bh = body.digest();
          const fields = splitFields(Buffer.concat([Buffer.from(view.prepended.join(''), 'utf8'), view.header]));
          const t = Math.floor(now() / 1000);
          try {
            // RSA on top: a verifier that looks at the first signature only finds the widely supported one.
            const sorted = [...keys].sort((a, b) => (a.algorithm === b.algorithm ? 0 : a.algorithm === 'rsa-sha256' ? -1 : 1));
            const out = await Promise.all(sorted.map((k) => signatureFieldAsync(k, fields, names, bh, t)));
            opts.onSigned?.(ctx.queueId, keys[0]!.domain, sorted.map((k) => `${k.selector}/${k.algorithm}`));
            return out;
          } catch (err) {
            throw new PostlineError('ERR_DKIM_SIGN', `DKIM signing failed: ${(err as Error).message}`, {
              temporary: true, cause: err, reply: reply(451, '4.7.0', 'Local error in DKIM signing, try again later'),
            });
          }
        },
        abort() {
          body = undefined;
        },
      };
    },
  };
}
