/**
 * The modifier chain of cleanup (DESIGN.md "modifier chain in cleanup + prepended headers").
 *
 * A message body is written once and never rewritten, yet some header fields (DKIM-Signature,
 * Authentication-Results) can only be computed once the whole message went by. A modifier is
 * made per message from its factory and sees, in this order:
 *
 * 1. `header(view)`: the complete header section as it will be stored (our Received first, the
 *    client's fields without the removed ones, Date/Message-ID when cleanup added them, the fields
 *    earlier modifiers added). It may return fields to add now (written into the stored header
 *    section, on top) and ask for a 7-bit stored form (`sevenBit`: 8-bit parts become
 *    quoted-printable in cleanup, so no downgrade at delivery changes a signed body).
 *    `view.client` is the header section exactly as the client sent it (no Received of ours, nothing
 *    removed or added): what an inbound verifier checks signatures over.
 * 2. `body(chunk)`: every stored body byte after the empty line, in order, as it is written
 *    (a view: the modifier must not keep or change the chunks; nothing buffers the whole body).
 *    `clientBody(chunk)`: the same bytes as the client sent them, before any 7-bit conversion
 *    (they differ only when a modifier asked for `sevenBit`).
 * 3. `end(view)`: the header section exactly as stored and the fields earlier modifiers prepended
 *    at the end. It may return fields known only now; they are stored with the message row and
 *    given out in front of the body (spool NewMessage.prepend). It refuses the message by
 *    throwing a PostlineError with the SmtpReply to send. After it, `facts()` may hand cleanup
 *    what the modifier found for the message.received event (verification results).
 *
 * Removal: a factory declares the header fields of its own kind it removes (`removes`: a field
 * name and an optional test on the value, e.g. an Authentication-Results that claims our
 * authserv-id). The chain applies these when cleanup writes the header section, before any
 * `header()` call; a modifier has no other way to remove anything, and never touches our Received.
 *
 * Body rewrites ('rewrite' stage only): `header()` may hand an `html` rewrite. Cleanup then passes
 * the stored bytes through body-rewrite.ts as they are written (mailsplit: every text/html part
 * that is not an attachment is decoded, given to the rewrite's part filter as it streams, and
 * re-encoded; every other byte passes unchanged; memory stays flat). `body()` and `end()` of every
 * modifier see the rewritten bytes, so a signer signs what is stored; the body is still written
 * once. A rewrite never sees text/plain parts, header fields or attachments.
 *
 * Order (fixed, documented in ARCHITECTURE.md): by stage, then in the order given:
 * 'verify' (inbound checks: Authentication-Results), 'rewrite' (HTML body rewrites: tracking
 * links and the open pixel), 'add' (header adders: List-Unsubscribe, Feedback-ID), 'sign' (DKIM
 * signing last, so it signs what the earlier ones added and rewrote). Fields a later modifier adds
 * go above those of an earlier one, as trace fields do.
 */
import type { Envelope } from '../core/envelope.js';
import { PostlineError, toPostlineError } from '../core/errors.js';
import type { MessageMeta, MessageOrigin, SessionInfo } from '../core/session.js';
import type { HtmlRewrite } from './body-rewrite.js';
import type { HeaderField } from '../rfc5322/header.js';
import type { AuthOutcome } from '../events/record.js';

/** The stages, in the order they run. */
export const MODIFIER_STAGES = ['verify', 'rewrite', 'add', 'sign'] as const;
export type ModifierStage = (typeof MODIFIER_STAGES)[number];

/** What a modifier knows of its message before the first byte. */
export interface ModifierContext {
  readonly queueId: string;
  readonly envelope: Envelope;
  readonly origin: MessageOrigin;
  /** The SMTP session (SMTP mail only). */
  readonly session?: SessionInfo;
  /** The listener's role for SMTP mail; 'api' for the HTTP API; 'dsn' for generated notices. */
  readonly role: 'mx' | 'submission' | 'api' | 'dsn';
  /**
   * Mail of our own users: an authenticated or trusted (relay.trustedNetworks) SMTP client, the
   * API, or a DSN we generated. False for mail merely received or relayed from outside.
   */
  readonly trusted: boolean;
  /**
   * The metadata handed with a whole message (`submit`: the API's tags, metadata, tracking), known
   * before the first byte; `HeaderView.meta` has what X-Postline-* fields gave. The submission's
   * own values win, field by field.
   */
  readonly meta?: MessageMeta;
}

/** The header section handed to `header()`. */
export interface HeaderView {
  /** The header section as it will be stored (before any 7-bit conversion), CRLF lines, no empty line. */
  readonly raw: Buffer;
  readonly fields: readonly HeaderField[];
  /**
   * False when the message ended without the empty line after its header section (a header
   * section over cleanup's limit, 1 MiB, is refused before this). A signer should not sign then.
   */
  readonly complete: boolean;
  /** Message metadata read from X-Postline-* fields (trusted clients), when any. */
  readonly meta?: MessageMeta;
  /**
   * The header section exactly as the client sent it: without our Received field, before any
   * removal (X-Postline-*, declared removals) or addition; CRLF lines, no empty line.
   */
  readonly client: Buffer;
}

/** What `header()` may answer. */
export interface HeaderDecision {
  /** Whole header fields to add now, each "Name: value" with its CRLF (folding allowed). */
  readonly add?: readonly string[];
  /** Store the message 7-bit (8-bit parts as quoted-printable), when it is not already. */
  readonly sevenBit?: boolean;
  /** 'rewrite' stage only: rewrite the text/html parts as they are stored (body-rewrite.ts). */
  readonly html?: HtmlRewrite;
}

/** What `end()` sees. */
export interface EndView {
  /** The header section exactly as stored (after header-time additions and 7-bit conversion), CRLF lines, no empty line. */
  readonly header: Buffer;
  /** Fields earlier modifiers prepended at the end, top first, each with its CRLF. */
  readonly prepended: readonly string[];
  /** True when the stored form was converted to 7-bit (the envelope's BODY= is then 7BIT). */
  readonly sevenBit: boolean;
}

/** One modifier working on one message. Every method is optional. */
export interface MessageModifier {
  /** @throws PostlineError to refuse the message (its reply is sent at the end of data). */
  header?(view: HeaderView): HeaderDecision | undefined;
  /** A view of stored body bytes (after the empty line), in order. Must not throw. */
  body?(chunk: Buffer): void;
  /** A view of the body bytes as the client sent them (after the empty line, before any 7-bit conversion), in order. Must not throw. */
  clientBody?(chunk: Buffer): void;
  /**
   * Fields known only at the end (each with its CRLF), or nothing.
   * @throws PostlineError with the SmtpReply to refuse the message.
   */
  end?(view: EndView): Promise<readonly string[] | undefined> | readonly string[] | undefined;
  /** The message was abandoned or refused; drop any state. */
  abort?(): void;
  /** After `end()`: facts for the message.received event. Must not throw. */
  facts?(): ModifierFacts | undefined;
}

/** What modifiers tell cleanup for the message.received event and its log line. */
export interface ModifierFacts {
  /** Inbound verification results (src/auth/). */
  readonly auth?: AuthOutcome;
}

/** A header field a factory's modifiers remove (of their own kind only). */
export interface FieldRemoval {
  /** Field name, any case. */
  readonly name: string;
  /** Removes only fields whose unfolded value passes this test; absent: every field of that name. */
  readonly when?: (value: string) => boolean;
}

/** Makes the modifier of one kind for each message (or none: undefined). */
export interface ModifierFactory {
  /** For logs and errors ("dkim"). */
  readonly name: string;
  readonly stage: ModifierStage;
  /** Fields removed from the client's header section when this factory's modifier runs. */
  readonly removes?: readonly FieldRemoval[];
  /** @returns the modifier for this message, or undefined when it has nothing to do with it. */
  create(ctx: ModifierContext): MessageModifier | undefined;
}

/** Largest total of fields one message may get from its modifiers, bytes. */
const MAX_ADDED_BYTES = 64 * 1024;
const FIELD = /^[\x21-\x39\x3b-\x7e]+:[^\r\n]*(\r\n[ \t][^\r\n]*)*\r\n$/;

/** True when `f` is one header field with its CRLF: a name, a colon, folded lines only. */
export function isHeaderFieldLine(f: string): boolean {
  return FIELD.test(f);
}

/** A modifier broke the rules (a malformed field, too much added): a local error (451 4.3.0). */
function badField(name: string, why: string): PostlineError {
  return new PostlineError('ERR_MODIFIER', `modifier ${name}: ${why}`);
}

interface Active { readonly name: string; readonly stage: ModifierStage; readonly m: MessageModifier; readonly removes: readonly FieldRemoval[] }

/** The modifiers of one message, in chain order. */
export class ModifierChain {
  private added = 0;
  private failed = false;

  private constructor(private readonly active: readonly Active[]) {}

  /** A chain with nothing in it. */
  static readonly EMPTY = new ModifierChain([]);

  /**
   * Makes the modifiers of one message: factories sorted by stage (stable within a stage), each
   * asked for a modifier. @throws PostlineError when a factory throws.
   */
  static create(factories: readonly ModifierFactory[], ctx: ModifierContext): ModifierChain {
    if (!factories.length) return ModifierChain.EMPTY;
    const sorted = [...factories].sort((a, b) => MODIFIER_STAGES.indexOf(a.stage) - MODIFIER_STAGES.indexOf(b.stage));
    const active: Active[] = [];
    for (const f of sorted) {
      const m = f.create(ctx);
      if (m) active.push({ name: f.name, stage: f.stage, m, removes: f.removes ?? [] });
    }
    return active.length ? new ModifierChain(active) : ModifierChain.EMPTY;
  }

  /** True when no modifier runs for this message. */
  get empty(): boolean {
    return this.active.length === 0;
  }

  /** True when some running modifier declared it removes this client field (lower-case name, unfolded value). */
  removes(lowerName: string, value: string): boolean {
    for (const a of this.active) {
      for (const r of a.removes) {
        if (r.name.toLowerCase() === lowerName && (!r.when || r.when(value))) return true;
      }
    }
    return false;
  }

  /** True when some running modifier declared removals (cleanup parses fields only then). */
  get hasRemovals(): boolean {
    return this.active.some((a) => a.removes.length > 0);
  }

  /**
   * Runs every `header()` in order; each sees the fields the earlier ones added (on top).
   * @param base the header section as it will be stored without modifier fields.
   * @param parse parses a header section into fields.
   * @param client the header section as the client sent it.
   * @returns the fields to write above `base` (top first), whether a 7-bit form is wanted, and
   *          the HTML rewrites of 'rewrite' modifiers in chain order (only for a complete header section).
   * @throws PostlineError: a refusal, or a malformed field (ERR_MODIFIER).
   */
  header(base: Buffer, complete: boolean, meta: MessageMeta | undefined, parse: (b: Buffer) => HeaderField[], client: Buffer): { add: string; sevenBit: boolean; html: HtmlRewrite[] } {
    let add = '';
    let sevenBit = false;
    const html: HtmlRewrite[] = [];
    let raw = base;
    for (const a of this.active) {
      if (!a.m.header) continue;
      const d = this.guard(a, () => a.m.header!({ raw, fields: parse(raw), complete, client, ...(meta ? { meta } : {}) }));
      if (d?.sevenBit) sevenBit = true;
      if (d?.html) {
        if (a.stage !== 'rewrite') throw badField(a.name, `a body rewrite from stage ${a.stage} (only 'rewrite' modifiers may rewrite)`);
        if (complete) html.push(d.html);
      }
      if (d?.add?.length) {
        const text = this.checked(a.name, d.add);
        add = text + add;
        raw = Buffer.concat([Buffer.from(text, 'utf8'), raw]);
      }
    }
    return { add, sevenBit, html };
  }

  /** Hands a stored body chunk to every modifier. */
  body(chunk: Buffer): void {
    if (this.failed || !chunk.length) return;
    for (const a of this.active) a.m.body?.(chunk);
  }

  /** Hands a body chunk as the client sent it to every modifier that wants one. */
  clientBody(chunk: Buffer): void {
    if (this.failed || !chunk.length) return;
    for (const a of this.active) a.m.clientBody?.(chunk);
  }

  /** The facts the modifiers found (after `end()`), merged in chain order. Never throws. */
  facts(): ModifierFacts {
    let out: ModifierFacts = {};
    for (const a of this.active) {
      try {
        const f = a.m.facts?.();
        if (f) out = { ...out, ...f };
      } catch { /* a modifier's facts are optional */ }
    }
    return out;
  }

  /**
   * Runs every `end()` in order. @returns the fields to prepend (top first), '' when none.
   * @throws PostlineError: the first refusal (later modifiers do not run), or ERR_MODIFIER.
   */
  async end(header: Buffer, sevenBit: boolean): Promise<string> {
    const prepended: string[] = [];
    for (const a of this.active) {
      if (!a.m.end) continue;
      let got: readonly string[] | undefined;
      try {
        got = await a.m.end({ header, prepended: [...prepended], sevenBit });
      } catch (err) {
        this.abort();
        throw toPostlineError(err);
      }
      if (got?.length) {
        this.checked(a.name, got);
        prepended.unshift(...got);
      }
    }
    return prepended.join('');
  }

  /** Tells every modifier the message is gone. Never throws. */
  abort(): void {
    if (this.failed) return;
    this.failed = true;
    for (const a of this.active) {
      try {
        a.m.abort?.();
      } catch { /* nothing to do */ }
    }
  }

  private guard<T>(a: Active, fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      this.abort();
      throw toPostlineError(err);
    }
  }

  /** Validates added fields. @returns them joined. @throws ERR_MODIFIER. */
  private checked(name: string, fields: readonly string[]): string {
    for (const f of fields) {
      if (!isHeaderFieldLine(f)) throw badField(name, `malformed header field ${JSON.stringify(f.slice(0, 60))}`);
      this.added += Buffer.byteLength(f, 'utf8');
    }
    if (this.added > MAX_ADDED_BYTES) throw badField(name, `added more than ${MAX_ADDED_BYTES} bytes of header fields`);
    return fields.join('');
  }
}
