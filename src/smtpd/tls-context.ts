/**
 * The TLS contexts of one listener: its TLS policy (tls-policy.ts) applied to every certificate,
 * one context per server name, chosen by SNI (RFC 6066 3).
 *
 * Owns: grouping the certificates by server name (entries of one name, e.g. an RSA and an ECDSA
 * pair, share one context and OpenSSL picks by the client's signature algorithms), matching a
 * requested name (exact, then "*." one label up), the default for no or an unknown name (the
 * first entry's name: port-25 senders rarely send SNI), and rebuilding only when the material
 * object changes (SIGHUP). The session reads the name from the ClientHello (client-hello.ts) and
 * builds its TLSSocket with the chosen context: node's SNICallback would keep the default's
 * other key types (an ECDSA default would win over a named RSA certificate).
 */
import { createSecureContext, type SecureContext, type SecureContextOptions } from 'node:tls';
import type { ListenerConfig } from '../config/schema.js';
import { normalizeServername, type ServerCertificates } from './tls-certificates.js';
import { tlsPolicyOptions } from './tls-policy.js';

/** What a server TLSSocket is made with: the default context and, with several names, the chooser by SNI name. */
export interface TlsServerSetup {
  readonly context: SecureContext;
  /** The context for the name a ClientHello asks for (undefined: none asked); absent with one name only. */
  readonly select?: (servername: string | undefined) => SecureContext;
}

/** The material: all certificates (main.ts), or one pair as node:tls options (tests, embedders). */
export type TlsSource = ServerCertificates | SecureContextOptions;

/**
 * Builds the contexts for `source` under the listener's policy.
 * @throws the node:tls error when a pair or a policy value is refused (checked at load, so rare here).
 */
export function buildTlsSetup(source: TlsSource, listener: Pick<ListenerConfig, 'role' | 'tlsPolicy'>): TlsServerSetup {
  const policy = tlsPolicyOptions(listener);
  if (!('entries' in source)) return { context: createSecureContext({ ...policy, ...source }) };
  const groups = new Map<string, { cert: string[]; key: string[] }>();
  for (const e of source.entries) {
    const name = e.servername ?? '';
    const g = groups.get(name) ?? { cert: [], key: [] };
    g.cert.push(e.cert);
    g.key.push(e.key);
    groups.set(name, g);
  }
  const contexts = new Map<string, SecureContext>();
  for (const [name, g] of groups) contexts.set(name, createSecureContext({ ...policy, cert: g.cert, key: g.key }));
  const context = contexts.get(source.entries[0]?.servername ?? '')!;
  if (contexts.size < 2) return { context };
  return {
    context,
    select: (servername) => {
      if (!servername) return context;
      const n = normalizeServername(servername);
      const dot = n.indexOf('.');
      return contexts.get(n) ?? (dot > 0 ? contexts.get(`*${n.slice(dot)}`) : undefined) ?? context;
    },
  };
}

/** A listener's current TLS setup, rebuilt when `material()` returns a new object. */
export class ListenerTls {
  private cache: { source: TlsSource; setup: TlsServerSetup } | undefined;

  constructor(private readonly listener: Pick<ListenerConfig, 'role' | 'tlsPolicy'>, private readonly material: () => TlsSource | undefined) {}

  /** The setup for the material now; undefined when there is none (then no TLS is offered). */
  current(): TlsServerSetup | undefined {
    const source = this.material();
    if (!source) return undefined;
    if (this.cache?.source !== source) this.cache = { source, setup: buildTlsSetup(source, this.listener) };
    return this.cache.setup;
  }
}
