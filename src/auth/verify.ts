/**
 * The checks of inbound verification, on mailauth (our copy: mailauth.ts): SPF for MAIL FROM and
 * HELO (RFC 7208), the DKIM verdicts of every signature (RFC 6376), ARC chain validation (RFC
 * 8617), DMARC (RFC 7489: alignment, p= / sp= for subdomains, pct= sampling) and the disposition.
 * Each result becomes an Authentication-Results resinfo (results.ts) and a field of the flat
 * AuthOutcome of the message.received event.
 *
 * Owns: what counts as a DMARC failure to act on, and the mapping of mailauth's shapes. DNS
 * failures are temperror everywhere; nothing here refuses mail (the modifier decides, modifier.ts).
 */
import { isIP } from 'node:net';
import type { AuthOutcome, AuthResult } from '../events/record.js';
import type { Mailauth } from './mailauth.js';
import type { MailauthResolver } from './dns.js';
import type { ResInfo } from './results.js';

const RESULTS = new Set<AuthResult>(['pass', 'fail', 'softfail', 'neutral', 'none', 'temperror', 'permerror', 'policy']);

/** A mailauth result word as ours ('temperr' is mailauth's spelling in places). */
export function asResult(r: unknown): AuthResult {
  const s = String(r ?? 'none').toLowerCase();
  if (s === 'temperr') return 'temperror';
  return RESULTS.has(s as AuthResult) ? (s as AuthResult) : 'permerror';
}

/** One SPF check. */
export interface SpfCheck {
  readonly result: AuthResult;
  readonly domain?: string;
  readonly info: ResInfo;
}

/** True for a HELO name SPF can check (RFC 7208 2.3: a domain name; not an address literal). */
export function heloCheckable(helo: string | undefined): helo is string {
  return !!helo && !helo.startsWith('[') && !isIP(helo) && /^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+\.?$/.test(helo);
}

/**
 * SPF for one identity. `sender` '' (null reverse-path) checks postmaster@HELO (RFC 7208 2.4).
 * Never rejects: a failure inside mailauth is temperror.
 */
export async function checkSpf(ma: Mailauth, resolver: MailauthResolver, o: {
  readonly identity: 'mailfrom' | 'helo'; readonly sender: string; readonly ip: string; readonly helo: string | undefined; readonly mta: string;
}): Promise<SpfCheck> {
  const prop = o.identity === 'helo' ? 'smtp.helo' : 'smtp.mailfrom';
  if (!isIP(o.ip)) {
    return { result: 'none', info: { method: 'spf', result: 'none', comment: `${o.mta}: the client address is unknown`, props: [[prop, o.identity === 'helo' ? o.helo : o.sender || undefined]] } };
  }
  if (o.identity === 'helo' && !heloCheckable(o.helo)) {
    return { result: 'none', info: { method: 'spf', result: 'none', comment: `${o.mta}: no HELO domain to check`, props: [[prop, o.helo]] } };
  }
  const sender = o.identity === 'helo' || !o.sender ? (heloCheckable(o.helo) ? `postmaster@${o.helo}` : undefined) : o.sender;
  if (!sender) return { result: 'none', info: { method: 'spf', result: 'none', comment: `${o.mta}: null sender without a HELO domain`, props: [[prop, o.helo]] } };
  try {
    const r = await ma.spf({ sender, ip: o.ip, helo: o.helo, mta: o.mta, resolver });
    const result = asResult(r?.status?.result);
    const domain = typeof r?.domain === 'string' ? r.domain : undefined;
    const value = o.identity === 'helo' ? o.helo : sender;
    return { result, ...(domain ? { domain } : {}), info: { method: 'spf', result, comment: String(r?.status?.comment ?? ''), props: [[prop, value]] } };
  } catch (err) {
    return { result: 'temperror', info: { method: 'spf', result: 'temperror', comment: `${o.mta}: ${(err as Error).message}`, props: [[prop, sender]] } };
  }
}

/** One DKIM signature's verdict, from DkimVerifier.results. */
export interface DkimCheck {
  readonly domain: string;
  readonly selector: string;
  readonly result: AuthResult;
  readonly info: ResInfo;
  /** For DMARC: mailauth's id, domain, alignment. */
  readonly dmarcEntry?: Record<string, unknown>;
}

/** One signature as mailauth's verifier parsed it (DkimVerifier.signatureHeaders). */
interface ParsedSignature {
  readonly type?: string;
  readonly skip?: boolean;
  readonly signingDomain?: string;
  readonly selector?: string;
  readonly algorithm?: string;
}

function dkimCheck(r: any): DkimCheck {
  let result = asResult(r?.status?.result);
  let comment = r?.status?.comment ? String(r.status.comment) : undefined;
  const h = r?.status?.header ?? {};
  const domain = String(r?.signingDomain ?? '');
  if (result === 'pass' && /-sha1$/i.test(String(r?.algo ?? ''))) {
    result = 'permerror'; // RFC 8301 3.1: rsa-sha1 must not be used for verifying
    comment = 'rsa-sha1 is not accepted (RFC 8301)';
  }
  return {
    domain, selector: String(r?.selector ?? ''), result,
    info: { method: 'dkim', result, ...(comment ? { comment } : {}), props: [['header.i', h.i], ['header.s', h.s], ['header.a', h.a], ['header.b', h.b]] },
    ...(result === 'pass' ? { dmarcEntry: { id: r.id, domain, aligned: r.status?.aligned, underSized: r.status?.underSized } } : {}),
  };
}

/**
 * The verdicts of every DKIM signature, top first (one 'none' entry for an unsigned message).
 * mailauth leaves out signatures it cannot use (an unknown a= or c=, no d= or s=): those are
 * permerror here (RFC 6376 6.1.1, RFC 8601 2.7.1), as is a passing rsa-sha1 one (RFC 8301 3.1).
 * @param results DkimVerifier.results; @param parsed DkimVerifier.signatureHeaders (DKIM, ARC and AS).
 */
export function dkimChecks(results: readonly any[], parsed: readonly ParsedSignature[] = []): DkimCheck[] {
  const sigs = parsed.filter((p) => p.type === 'DKIM');
  if (!sigs.some((p) => p.skip)) return results.map(dkimCheck);
  const verified = results.filter((r) => r?.status?.comment !== 'message not signed' || r?.signingDomain);
  let next = 0;
  return sigs.map((p): DkimCheck => {
    if (!p.skip) return dkimCheck(verified[next++]);
    const domain = String(p.signingDomain ?? '');
    const comment = 'unsupported or malformed signature (a=, c=, d= or s=)';
    return { domain, selector: String(p.selector ?? ''), result: 'permerror', info: { method: 'dkim', result: 'permerror', comment, props: [['header.d', domain || undefined], ['header.s', p.selector]] } };
  });
}

/** The DKIM summary of the event (see AuthOutcome.dkim). */
export function dkimSummary(checks: readonly DkimCheck[]): AuthResult {
  if (checks.some((c) => c.result === 'pass')) return 'pass';
  if (checks.some((c) => c.result === 'temperror')) return 'temperror';
  return checks[0]?.result ?? 'none';
}

/** ARC chain validation. */
export interface ArcCheck {
  readonly result: AuthResult;
  /** Instances in the chain as received. */
  readonly chain: number;
  /** mailauth's result (for sealing). */
  readonly raw: any;
  readonly info?: ResInfo;
}

/** Validates the ARC chain the DKIM verifier collected. Never rejects: a failure inside mailauth is 'fail'. */
export async function checkArc(ma: Mailauth, resolver: MailauthResolver, arcData: any, minBitLength: number): Promise<ArcCheck> {
  const chain = Array.isArray(arcData?.chain) ? arcData.chain.length : 0;
  try {
    const raw = await ma.arc(arcData ?? { chain: false }, { resolver, minBitLength });
    const result = asResult(raw?.status?.result);
    return { result, chain, raw, ...(result !== 'none' || chain ? { info: { method: 'arc', result, ...(raw?.status?.comment ? { comment: String(raw.status.comment) } : {}) } } : {}) };
  } catch (err) {
    const raw = { status: { result: 'fail', comment: (err as Error).message }, i: chain };
    return { result: 'fail', chain, raw, info: { method: 'arc', result: 'fail', comment: (err as Error).message } };
  }
}

/** DMARC policy words. */
export type DmarcPolicy = 'none' | 'quarantine' | 'reject';

/** The DMARC verdict and what to do about it. */
export interface DmarcCheck {
  readonly result: AuthResult;
  readonly domain?: string;
  readonly policy?: DmarcPolicy;
  /** After pct= sampling (RFC 7489 6.6.4): the policy to apply to this failing message. */
  readonly action: DmarcPolicy;
  readonly info: ResInfo;
}

function policyWord(p: unknown): DmarcPolicy | undefined {
  const s = String(p ?? '').toLowerCase().trim();
  return s === 'none' || s === 'quarantine' || s === 'reject' ? s : undefined;
}

/** RFC 7489 6.6.4: a failing message not selected by pct= gets the next less strict policy. */
export function sampled(policy: DmarcPolicy, pct: number | undefined, random: () => number): DmarcPolicy {
  const p = pct === undefined || Number.isNaN(pct) ? 100 : Math.min(100, Math.max(0, pct));
  if (policy === 'none' || p >= 100 || random() * 100 < p) return policy;
  return policy === 'reject' ? 'quarantine' : 'none';
}

/**
 * DMARC for the From: addresses (RFC 7489 6.6): exactly one From: domain is evaluated (none: no
 * result; several: permerror, 6.6.1). Never rejects: a DNS failure is temperror (action none).
 */
export async function checkDmarc(ma: Mailauth, resolver: MailauthResolver, o: {
  readonly headerFrom: readonly string[]; readonly spf: SpfCheck; readonly dkim: readonly DkimCheck[]; readonly arc: ArcCheck; readonly random: () => number;
}): Promise<DmarcCheck> {
  const domains = [...new Set(o.headerFrom.map((a) => a.slice(a.lastIndexOf('@') + 1).toLowerCase()).filter(Boolean))];
  if (!domains.length) return { result: 'none', action: 'none', info: { method: 'dmarc', result: 'none', comment: 'no From: domain' } };
  if (domains.length > 1) return { result: 'permerror', action: 'none', info: { method: 'dmarc', result: 'permerror', comment: 'several From: domains' } };
  try {
    const r = await ma.dmarc({
      headerFrom: o.headerFrom.length === 1 ? o.headerFrom[0] : `x@${domains[0]}`,
      spfDomains: o.spf.result === 'pass' && o.spf.domain ? [o.spf.domain] : [],
      dkimDomains: o.dkim.flatMap((c) => (c.dmarcEntry ? [c.dmarcEntry] : [])),
      arcResult: o.arc.raw, resolver,
    });
    if (!r) return { result: 'none', action: 'none', info: { method: 'dmarc', result: 'none' } };
    const result = asResult(r.status?.result);
    const policy = policyWord(r.policy);
    const action = result === 'fail' && policy ? sampled(policy, typeof r.pct === 'number' ? r.pct : undefined, o.random) : 'none';
    const from = domains[0]!; // RFC 7489 11.2: the RFC5322.From domain (mailauth's header.from is the organizational one)
    const comment = [
      policy ? `p=${String(r.p ?? policy).toUpperCase()}` : '', r.sp && r.sp !== r.p ? `sp=${String(r.sp).toUpperCase()}` : '',
      result === 'fail' && policy ? `dis=${action.toUpperCase()}` : '', typeof r.pct === 'number' && r.pct < 100 ? `pct=${r.pct}` : '',
    ].filter(Boolean).join(' ');
    return {
      result, domain: from, ...(policy ? { policy } : {}), action,
      info: { method: 'dmarc', result, ...(comment ? { comment } : {}), props: [['header.from', from]] },
    };
  } catch (err) {
    return { result: 'temperror', action: 'none', info: { method: 'dmarc', result: 'temperror', comment: (err as Error).message, props: [['header.from', domains[0]]] } };
  }
}

/** The flat event record of all checks. */
export function outcomeOf(spf: SpfCheck, helo: SpfCheck, dkim: readonly DkimCheck[], arc: ArcCheck, dmarc: DmarcCheck, sealed: boolean): AuthOutcome {
  const sigs = dkim.filter((c) => c.domain || c.selector || c.result !== 'none').map((c) => ({ domain: c.domain, selector: c.selector, result: c.result }));
  return {
    spf: spf.result, ...(spf.domain ? { spfDomain: spf.domain } : {}), spfHelo: helo.result,
    dkim: dkimSummary(dkim), ...(sigs.length ? { dkimSignatures: sigs } : {}),
    dmarc: dmarc.result, ...(dmarc.domain ? { dmarcDomain: dmarc.domain } : {}), ...(dmarc.policy ? { dmarcPolicy: dmarc.policy } : {}),
    ...(dmarc.result === 'fail' ? { dmarcAction: dmarc.action } : {}),
    arc: arc.result, arcChain: arc.chain, ...(sealed ? { arcSealed: true } : {}),
  };
}
