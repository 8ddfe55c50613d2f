/**
 * Inbound verification as a `verify`-stage modifier of cleanup's chain (cleanup/modifiers.ts), for
 * mail received on `role: mx` listeners from clients that are neither authenticated nor trusted
 * (unless auth.verifyTrusted): SPF for MAIL FROM and HELO, every DKIM signature, ARC chain
 * validation, DMARC, then one Authentication-Results field (RFC 8601) with our authserv-id.
 *
 * When each part runs: SPF starts when the message starts (the envelope and the client are known),
 * beside the data transfer. DKIM: the client's header section (`view.client`: before our Received
 * field and any removal) goes to mailauth's streaming verifier at header(), every body byte as the
 * client sent it (`clientBody`, before any 7-bit conversion) is hashed as it passes, nothing is
 * buffered beyond the header section; key records (and the _dmarc record) are asked for at once,
 * so the answers are cached when end() needs them. At end(): DKIM keys and signatures, ARC, DMARC,
 * all bounded by auth.timeoutMs; a lookup still running then is a temperror.
 *
 * Policy (RFC 7489 6.6.3, 7.3, pct= per 6.6.4): a failure whose policy is reject is refused with
 * 550 5.7.1 only with auth.dmarc.reject; otherwise it is marked like quarantine: the field
 * "X-Postline-Quarantine: dmarc; policy=...; domain=..." is added (local delivery can act on it;
 * cleanup removes X-Postline-* fields from every message it receives, so it cannot be forged from
 * outside). DNS trouble is temperror and never refuses. Existing Authentication-Results claiming
 * our authserv-id are removed (declared in `removes`, applied by cleanup; RFC 8601 5).
 * ARC sealing (seal.ts) when arc.* is configured and the message is forwarded (arc.sealRelayed, or
 * a recipient's delivery.routes entry has arcSeal).
 */
import { PostlineError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { R } from '../core/reply.js';
import type { AuthOutcome } from '../events/record.js';
import type { Resolver } from '../dns/types.js';
import { RelaxedBodyHash } from '../dkim/canon.js';
import type { EndView, HeaderView, MessageModifier, ModifierContext, ModifierFacts, ModifierFactory } from '../cleanup/modifiers.js';
import { mailauth, type DkimVerifierLike, type Mailauth } from './mailauth.js';
import { mailauthResolver, type MailauthResolver } from './dns.js';
import { authResultsField, authResultsValue, claimsAuthservId, type ResInfo } from './results.js';
import { makeArcSet, sealPlan, type ArcKey } from './seal.js';
import { checkArc, checkDmarc, checkSpf, dkimChecks, outcomeOf, type DkimCheck, type SpfCheck } from './verify.js';

/** What one message's verification reads from the configuration (auth.*, arc.*), per message. */
export interface AuthSettings {
  readonly authservId: string;
  readonly verifyTrusted: boolean;
  /** RSA keys below this many bits: dkim=policy. */
  readonly minKeyBits: number;
  /** Longest wait for DNS at the end of DATA (and for SPF from the start of the message), ms. */
  readonly timeoutMs: number;
  readonly dmarcReject: boolean;
  readonly seal?: { readonly key: ArcKey; readonly relayed: boolean };
}

export interface InboundAuthDeps {
  readonly settings: () => AuthSettings;
  /** A resolver with lookup() (the caching one). */
  readonly resolver: Resolver;
  /** True when this recipient's delivery.routes entry asks for ARC sealing (arcSeal). */
  readonly sealRoute?: (recipient: string) => boolean;
  readonly logger?: Logger;
  /** For pct= sampling, [0, 1). */
  readonly random?: () => number;
  readonly now?: () => number;
}

/** The modifier factory: one check per mx message. */
export function inboundAuth(deps: InboundAuthDeps): ModifierFactory {
  return {
    name: 'auth',
    stage: 'verify',
    removes: [{ name: 'Authentication-Results', when: (value) => claimsAuthservId(value, deps.settings().authservId) }],
    create(ctx: ModifierContext): MessageModifier | undefined {
      if (ctx.role !== 'mx' || !ctx.session) return undefined;
      const settings = deps.settings();
      if (ctx.trusted && !settings.verifyTrusted) return undefined;
      return new InboundCheck(ctx, deps, settings);
    },
  };
}

const CRLF = Buffer.from('\r\n');

/** DKIM signatures checked per message at most, top first (RFC 6376 6.1 lets a verifier limit them; OpenDKIM checks 3 by default). */
export const MAX_DKIM_SIGNATURES = 10;

/** A domain as it may appear in our reply text. */
function replyDomain(d: string | undefined): string {
  return (d ?? 'the sender domain').replace(/[^A-Za-z0-9.-]/g, '?').slice(0, 253);
}

class InboundCheck implements MessageModifier {
  private readonly ma: Mailauth = mailauth();
  private readonly now: () => number;
  private endDeadline: number | undefined;
  private readonly spf: Promise<readonly [SpfCheck, SpfCheck]>;
  private readonly endResolver: MailauthResolver;
  private verifier: DkimVerifierLike | undefined;
  private ready: Promise<void> = Promise.resolve();
  private readonly bodyHash: RelaxedBodyHash | undefined;
  private outcome: AuthOutcome | undefined;
  private temporary: string[] = [];
  /** DKIM signatures left unchecked (over MAX_DKIM_SIGNATURES). */
  private unchecked = 0;

  constructor(private readonly ctx: ModifierContext, private readonly deps: InboundAuthDeps, private readonly s: AuthSettings) {
    this.now = deps.now ?? Date.now;
    const note = (name: string, type: string, why: string): void => {
      if (this.temporary.length < 5) this.temporary.push(`${name} ${type}: ${why}`);
    };
    const spfDeadline = this.now() + s.timeoutMs;
    const spfResolver = mailauthResolver(deps.resolver, { deadline: () => spfDeadline, onTemporary: note, now: this.now });
    this.endResolver = mailauthResolver(deps.resolver, { deadline: () => this.endDeadline, onTemporary: note, now: this.now });
    const session = ctx.session!;
    const base = { ip: session.clientAddress, helo: session.heloName, mta: s.authservId };
    // The null sender is checked as postmaster@HELO (RFC 7208 2.4): the same lookups, from the cache.
    const helo = checkSpf(this.ma, spfResolver, { ...base, identity: 'helo', sender: '' });
    const from = checkSpf(this.ma, spfResolver, { ...base, identity: 'mailfrom', sender: ctx.envelope.mailFrom });
    this.spf = Promise.all([from, helo]);
    const sealing = s.seal && (s.seal.relayed || ctx.envelope.recipients.some((r) => deps.sealRoute?.(r.address)));
    this.bodyHash = sealing ? new RelaxedBodyHash() : undefined;
  }

  header(view: HeaderView): undefined {
    const v = new this.ma.DkimVerifier({
      resolver: this.endResolver, minBitLength: this.s.minKeyBits, ...(this.ctx.envelope.mailFrom ? { sender: this.ctx.envelope.mailFrom } : {}),
    });
    this.verifier = v;
    // messageHeaders and nextChunk do their work before they return (mailauth.ts); kept for order.
    this.ready = v.messageHeaders(this.ma.parseHeaders(view.complete ? Buffer.concat([view.client, CRLF]) : view.client)).catch(() => {});
    this.capSignatures(v);
    this.prefetch(v);
    return undefined;
  }

  clientBody(chunk: Buffer): void {
    // mailauth's hashers consume the chunk at once (a relaxed hash keeps at most the last partial
    // line's view until the next chunk); cleanup never reuses a buffer it handed out.
    this.verifier?.nextChunk(chunk).catch(() => {});
  }

  body(chunk: Buffer): void {
    this.bodyHash?.update(chunk);
  }

  async end(view: EndView): Promise<readonly string[]> {
    this.endDeadline = this.now() + this.s.timeoutMs;
    const v = this.verifier;
    let dkimFailed: string | undefined;
    if (v) {
      await this.ready;
      try {
        await v.finalChunk();
      } catch (err) {
        dkimFailed = (err as Error).message;
      }
    }
    const [spf, helo] = await this.spf;
    const dkim: DkimCheck[] = v && !dkimFailed ? dkimChecks(v.results, v.signatureHeaders) : [{ domain: '', selector: '', result: v ? 'temperror' : 'none', info: { method: 'dkim', result: v ? 'temperror' : 'none', ...(dkimFailed ? { comment: dkimFailed } : {}) } }];
    const arc = await checkArc(this.ma, this.endResolver, v?.arc, this.s.minKeyBits);
    const dmarc = await checkDmarc(this.ma, this.endResolver, {
      headerFrom: v?.headerFrom ?? [], spf, dkim, arc, random: this.deps.random ?? Math.random,
    });
    const log = this.deps.logger;
    if (dmarc.action === 'reject' && this.s.dmarcReject) {
      log?.info({ queueId: this.ctx.queueId, domain: dmarc.domain, client: this.ctx.session?.clientAddress }, 'DMARC policy reject: message refused');
      throw new PostlineError('ERR_DMARC_REJECT', `DMARC p=reject failure for ${dmarc.domain}`, { temporary: false, reply: R.dmarcReject(replyDomain(dmarc.domain)), check: 'dmarc' });
    }
    const action = dmarc.action === 'reject' ? 'quarantine' : dmarc.action;
    const more: ResInfo[] = this.unchecked ? [{ method: 'dkim', result: 'neutral', comment: `${this.unchecked} more signatures not checked` }] : [];
    const infos: ResInfo[] = [...dkim.map((d) => d.info), ...more, spf.info, helo.info, ...(arc.info ? [arc.info] : []), dmarc.info];
    const utf8 = !!this.ctx.envelope.smtputf8;
    const fields = [authResultsField(this.s.authservId, infos, utf8)];
    if (action === 'quarantine') {
      fields.push(`X-Postline-Quarantine: dmarc; policy=${dmarc.policy ?? 'quarantine'}; domain=${replyDomain(dmarc.domain)}\r\n`);
    }
    let sealed = false;
    if (this.bodyHash && this.s.seal) {
      const plan = sealPlan(arc.raw, arc.chain);
      if ('skip' in plan) log?.debug({ queueId: this.ctx.queueId, why: plan.skip }, 'ARC: not sealed');
      else {
        try {
          const header = Buffer.concat([Buffer.from(fields.join('') + view.prepended.join(''), 'utf8'), view.header]);
          const set = await makeArcSet(this.ma, this.s.seal.key, {
            plan, arcData: v?.arc, header, bodyHash: this.bodyHash.digest(), authResults: authResultsValue(this.s.authservId, infos, utf8), now: new Date(this.now()),
          });
          fields.unshift(...set);
          sealed = true;
        } catch (err) {
          log?.warn({ queueId: this.ctx.queueId, err: (err as Error).message }, 'ARC: cannot seal; delivered unsealed');
        }
      }
    }
    this.outcome = outcomeOf(spf, helo, dkim, arc, { ...dmarc, action }, sealed);
    if (this.temporary.length) log?.info({ queueId: this.ctx.queueId, dns: this.temporary }, 'verification: DNS trouble (temperror)');
    return fields;
  }

  facts(): ModifierFacts | undefined {
    return this.outcome ? { auth: this.outcome } : undefined;
  }

  /** Beyond MAX_DKIM_SIGNATURES, DKIM signatures are not checked (mailauth would check every one). */
  private capSignatures(v: DkimVerifierLike): void {
    const sigs = v.signatureHeaders as { type?: string }[] | undefined;
    if (!Array.isArray(sigs)) return;
    let kept = 0;
    const keep = sigs.filter((sig) => sig.type !== 'DKIM' || ++kept <= MAX_DKIM_SIGNATURES);
    this.unchecked = sigs.length - keep.length;
    if (this.unchecked) sigs.splice(0, sigs.length, ...keep);
  }

  /** Asks for the key records and the _dmarc record now, so end() finds them cached. Never throws. */
  private prefetch(v: DkimVerifierLike): void {
    const lookup = this.deps.resolver.lookup?.bind(this.deps.resolver);
    if (!lookup) return;
    const names = new Set<string>();
    const sigs = v.signatureHeaders ?? [];
    for (const sig of sigs.slice(0, 10)) {
      if (sig.signingDomain && sig.selector) names.add(`${sig.selector}._domainkey.${sig.signingDomain}`);
    }
    const from = v.headerFrom?.[0];
    if (from?.includes('@')) names.add(`_dmarc.${from.slice(from.lastIndexOf('@') + 1)}`);
    for (const n of names) lookup(n, 'TXT').catch(() => {});
  }
}
