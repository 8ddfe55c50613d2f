/**
 * ARC sealing (RFC 8617 5.1): when Postline passes on mail it verified, it adds one ARC set
 * (ARC-Seal, ARC-Message-Signature, ARC-Authentication-Results with our results) so the next hop
 * can trust our findings after the message changed hands (forwarding breaks SPF, lists break DKIM).
 *
 * Owns: whether a chain may be sealed (instance 1 with cv=none; after a passing chain cv=pass; after
 * a chain that claimed pass but failed here cv=fail; never after a failed or over-long chain,
 * RFC 8617 5.1.1 and 4.2.1: at most 50 sets), the AMS over the header section as stored (our
 * Received and Authentication-Results included, after any 7-bit conversion) and the relaxed body
 * hash of the stored body (computed as it streams, dkim/canon.ts). The signing is mailauth's
 * (createSeal, RSA only in 4.13).
 */
import { isHeaderFieldLine } from '../cleanup/modifiers.js';
import type { Mailauth } from './mailauth.js';

/** The configured sealing key (arc.*), loaded. */
export interface ArcKey {
  readonly domain: string;
  readonly selector: string;
  /** PKCS#8 PEM of the RSA private key (mailauth's signer takes PEM). */
  readonly pem: string;
}

/** The ARC set to add: instance and chain validation state (cv=), or why none. */
export type SealPlan = { readonly i: number; readonly cv: 'none' | 'pass' | 'fail' } | { readonly skip: string };

/** Decides the instance and cv= of our set from the chain's validation (mailauth's arc() result). */
export function sealPlan(arcRaw: any, chainLength: number): SealPlan {
  const result = String(arcRaw?.status?.result ?? 'none');
  if (chainLength >= 50) return { skip: 'the ARC chain already has 50 sets' };
  if (result === 'none' && chainLength === 0) return { i: 1, cv: 'none' };
  if (result === 'pass') return { i: chainLength + 1, cv: 'pass' };
  if (result === 'fail' && arcRaw?.status?.shouldSeal) return { i: chainLength + 1, cv: 'fail' };
  return { skip: `ARC chain ${result}` };
}

/**
 * Makes our ARC set. @param header the header section as it will be delivered (our new fields on
 * top), CRLF lines; @param authResults the A-R value after the name (authserv-id; results).
 * @returns the three fields, each with its CRLF, top first (AS, AMS, AAR).
 * @throws Error when mailauth could not make a well-formed set (the caller logs and delivers unsealed).
 */
export async function makeArcSet(ma: Mailauth, key: ArcKey, o: {
  readonly plan: { readonly i: number; readonly cv: string };
  readonly arcData: any; readonly header: Buffer; readonly bodyHash: string; readonly authResults: string; readonly now: Date;
}): Promise<string[]> {
  const res = await ma.createSeal(false, {
    headers: ma.parseHeaders(o.header),
    arc: o.arcData && Array.isArray(o.arcData.chain) ? o.arcData : { chain: false },
    seal: {
      signingDomain: key.domain, selector: key.selector, privateKey: key.pem,
      i: o.plan.i, cv: o.plan.cv, authResults: o.authResults.replace(/^\s+/, ''), bodyHash: o.bodyHash, signTime: o.now,
    },
  });
  const fields = (res?.headers ?? []).map((h) => (typeof h === 'string' ? h.replace(/\r?\n/g, '\r\n') + '\r\n' : ''));
  if (fields.length !== 3 || !fields.every(isHeaderFieldLine)) throw new Error('mailauth made no well-formed ARC set');
  const names = fields.map((f) => f.slice(0, f.indexOf(':')).toLowerCase());
  if (names.join() !== 'arc-seal,arc-message-signature,arc-authentication-results') throw new Error(`unexpected ARC set fields: ${names.join(', ')}`);
  return fields;
}
