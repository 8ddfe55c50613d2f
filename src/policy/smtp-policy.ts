/**
 * SMTP policy: relay authorization, local recipients, postmaster (RFC 5321 4.5.1), sender ownership
 * for authenticated users, and the free-space reserve. smtpd asks; this module answers.
 *
 * Relay rule (like Postfix's reject_unauth_destination): mail for a local domain is accepted from
 * anyone; other destinations only from authenticated sessions or trusted networks. Addresses that
 * carry sender-specified routing in the local part ('%', '!', or a quoted '@') are never treated as
 * local, so the percent hack and bang paths cannot open a relay.
 *
 * Suppression list (src/suppression/): mail that authenticated or trusted clients send out (a
 * recipient outside the local domains) is checked against it at RCPT: 550 5.7.1 naming the reason
 * (check "suppression"), or in the drop mode accepted and dropped. Inbound mail for the local
 * domains is never checked.
 */
import { domainToASCII, domainToUnicode } from 'node:url';
import { postmasterAddress, type PostlineConfig } from '../config/schema.js';
import type { Recipient } from '../core/envelope.js';
import { splitAddress } from '../core/envelope.js';
import { R, type SmtpReply } from '../core/reply.js';
import type { PolicyReply, RecipientDecision, SessionInfo, SmtpPolicy } from '../core/session.js';
import { droppedOf, type SuppressionCheck } from '../suppression/guard.js';
import { NetworkList } from './networks.js';
import { compileLocalRoutes, configuredLocalRoutes, type LocalRoutes } from '../routing/local-routes.js';
import { aliasKey, aliasMap, AliasLoopError, expandAliases, type AliasMap } from '../routing/aliases.js';
import type { UserStore } from './users.js';

/**
 * Lower-case A-label form of a domain ("Bücher.Example" -> "xn--bcher-kva.example"); '' when invalid.
 * Strict: spellings that UTS #46 mapping would fold onto another name (fullwidth letters, the
 * ideographic full stop, soft hyphens) are not canonicalized, so they never match a local domain.
 */
export function canonicalDomain(domain: string): string {
  const d = domain.replace(/\.$/, '').toLowerCase();
  if (/^\[.*\]$/.test(d)) return d; // address literal
  const ascii = domainToASCII(d);
  if (!ascii) return '';
  if (/^[\x21-\x7e]*$/.test(d)) return ascii === d ? ascii : '';
  return domainToUnicode(ascii) === d.normalize('NFC') ? ascii : '';
}

/** `"alice"@x` means alice@x (RFC 5322 3.4.1): strips quotes that a dot-atom local part does not need. */
export function unquoteLocalPart(local: string): string {
  const m = /^"((?:[^"\\]|\\.)*)"$/.exec(local);
  if (!m) return local;
  const inner = m[1]!.replace(/\\(.)/g, '$1');
  return /^[A-Za-z0-9!#$%&'*+\/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+\/=?^_`{|}~-]+)*$/.test(inner) ? inner : local;
}

interface LocalDomain {
  readonly recipients?: Set<string>; // lower-case local parts and full addresses
}

export interface PolicyDeps {
  readonly config: PostlineConfig;
  readonly users: UserStore;
  /** Free bytes of the data directory; cached by the caller or here for 1 s. */
  readonly freeBytes: () => Promise<number>;
  /** Extra hook: e.g. backpressure from the queue size (later issue). */
  readonly acceptHook?: () => SmtpReply | undefined;
  /**
   * Backpressure (like Postfix in_flow_delay): ms to wait before answering MAIL, and optionally a
   * reply to refuse it with after the wait (452 4.3.1 when the queue is far past its high-water
   * mark). Absent: no delay.
   */
  readonly inFlow?: () => { readonly delayMs: number; readonly refuse?: SmtpReply };
  /** The suppression list check of relayed mail (absent: none). */
  readonly suppressions?: SuppressionCheck;
}

export class RelayPolicy implements SmtpPolicy {
  private trusted!: NetworkList;
  private readonly locals = new Map<string, LocalDomain>();
  /** `local.routes` compiled (with relay.localDomains): reject mode, and the domains routes name. */
  private routes: LocalRoutes = compileLocalRoutes([]);
  /** `local.aliases` by key, and the domains of alias addresses (alias-only domains accept only their aliases). */
  private aliases: AliasMap = new Map();
  private aliasDomains = new Set<string>();
  private free = { at: 0, bytes: Infinity };

  constructor(private readonly deps: PolicyDeps) {
    this.reload();
  }

  /**
   * Rebuilds the trusted networks and local domains from `config.relay`, and the local routes and
   * aliases from `config.local` (after a SIGHUP reload).
   */
  reload(): void {
    const { config } = this.deps;
    this.trusted = new NetworkList(config.relay.trustedNetworks);
    this.locals.clear();
    for (const d of config.relay.localDomains) {
      const name = canonicalDomain(typeof d === 'string' ? d : d.domain);
      const list = typeof d === 'string' ? undefined : d.recipients;
      this.locals.set(name, { recipients: list ? new Set(list.map((r) => r.toLowerCase())) : undefined });
    }
    const local = config.local;
    this.routes = configuredLocalRoutes(config);
    this.aliases = aliasMap(local?.aliases ?? {}).map;
    this.aliasDomains = new Set([...this.aliases.keys()].map((k) => k.slice(k.lastIndexOf('@') + 1)));
  }

  /**
   * True when `domain` is local (IDN and case insensitive): one of relay.localDomains, a domain a
   * local route names (local-routes.ts isLocalDomain), or the domain of an alias address.
   */
  isLocalDomain(domain: string): boolean {
    const c = canonicalDomain(domain);
    return this.locals.has(c) || (c !== '' && (this.routes.isLocalDomain(c) || this.aliasDomains.has(c)));
  }

  /**
   * The local rules of one recipient: an alias is accepted (554 5.4.6 when its expansion loops or
   * passes local.aliasLimits); a local route in mode reject refuses it (550 5.1.1); in a domain
   * named only by aliases, other addresses are unknown (550 5.1.1, like Postfix's
   * virtual_alias_domains). @returns the decision, or undefined when relay.localDomains decides.
   */
  private localDecision(rcpt: Recipient, local: string, domain: string): RecipientDecision | undefined {
    const address = `${local}@${domain}`;
    const key = aliasKey(address);
    if (this.aliases.has(key)) {
      const limits = this.deps.config.local?.aliasLimits ?? { depth: 10, recipients: 1000 };
      try {
        expandAliases([rcpt], this.aliases, limits);
      } catch (err) {
        if (err instanceof AliasLoopError) return { accept: false, reply: err.reply };
        throw err;
      }
      return { accept: true, recipient: rcpt };
    }
    const route = this.routes.size > 0 ? this.routes.find(address) : undefined;
    if (route?.mode === 'reject') return { accept: false, reply: R.rejectedByLocalRoute(rcpt.address) };
    const c = canonicalDomain(domain);
    if (this.locals.has(c)) return undefined; // relay.localDomains (and its recipient lists) decide
    if (route || this.routes.isLocalDomain(c)) return { accept: true, recipient: rcpt };
    if (this.aliasDomains.has(c)) return { accept: false, reply: R.noSuchUser };
    return undefined;
  }

  /** True when `address` is in relay.trustedNetworks. */
  isTrustedNetwork(address: string): boolean {
    return this.trusted.contains(address);
  }

  /** True when the client may relay: authenticated, or connecting from a trusted network. */
  mayRelay(s: SessionInfo): boolean {
    return s.authUser !== undefined || this.trusted.contains(s.clientAddress);
  }

  async checkMailFrom(s: SessionInfo, mailFrom: string): Promise<SmtpReply | undefined> {
    const hook = this.deps.acceptHook?.();
    if (hook) return hook;
    const flow = this.deps.inFlow?.();
    if (flow && flow.delayMs > 0) await new Promise((r) => setTimeout(r, flow.delayMs));
    if (flow?.refuse) return flow.refuse;
    if ((await this.freeBytesCached()) < this.deps.config.limits.minFreeBytes) return R.insufficientStorage;
    if (s.authUser !== undefined && mailFrom !== '' && !this.senderAllowed(s.authUser, mailFrom)) return R.senderNotOwned;
    return undefined;
  }

  checkRecipient(s: SessionInfo, rcpt: Recipient, mailFrom = ''): RecipientDecision {
    const split = splitAddress(rcpt.address);
    const { domain } = split;
    const local = unquoteLocalPart(split.local);
    const localLower = local.toLowerCase();
    const routed = /[%!@]/.test(local.replace(/^"|"$/g, '')) || local.startsWith('"') && local.includes('@');
    if (!routed && localLower === 'postmaster' && (domain === '' || this.isLocalDomain(domain))) {
      // RFC 5321 4.5.1: postmaster is always accepted, with or without a domain.
      return { accept: true, recipient: { ...rcpt, address: postmasterAddress(this.deps.config), orcpt: rcpt.orcpt ?? { addrType: 'rfc822', address: rcpt.address } } };
    }
    if (domain === '') return { accept: false, reply: R.addressSyntax('a domain is required') };
    const decided = routed ? undefined : this.localDecision(rcpt, local, domain);
    if (decided) return decided;
    if (!routed && this.isLocalDomain(domain)) {
      const ld = this.locals.get(canonicalDomain(domain)) ?? {};
      if (ld.recipients && !ld.recipients.has(localLower) && !ld.recipients.has(`${localLower}@${canonicalDomain(domain)}`) && !ld.recipients.has(rcpt.address.toLowerCase())) {
        return { accept: false, reply: R.noSuchUser };
      }
      return { accept: true, recipient: rcpt };
    }
    if (this.mayRelay(s)) return this.suppressed(rcpt, mailFrom) ?? { accept: true, recipient: rcpt };
    return { accept: false, reply: R.relayDenied };
  }

  /** The decision for a suppressed recipient of relayed mail (reject, or accept and drop), or undefined. */
  private suppressed(rcpt: Recipient, mailFrom: string): RecipientDecision | undefined {
    const v = this.deps.suppressions?.verdict(mailFrom, rcpt.address);
    if (!v) return undefined;
    if (v.action === 'drop') return { accept: true, recipient: rcpt, drop: droppedOf(rcpt.address, v) };
    const reply: PolicyReply = { ...R.suppressed(rcpt.address, v.entry.reason), check: 'suppression' };
    return { accept: false, reply };
  }

  authenticate(username: string, password: string): Promise<boolean> {
    return this.deps.users.authenticate(username, password);
  }

  /**
   * Sender ownership (like Postfix's reject_sender_login_mismatch): a user's `senders` list holds full
   * addresses or "@domain" entries; without a list, a user named like an address may send as that
   * address, and a plain user name may send as name@ any local domain or the hostname.
   */
  senderAllowed(user: string, mailFrom: string): boolean {
    const rec = this.deps.users.get(user);
    const from = mailFrom.toLowerCase();
    const { local, domain } = splitAddress(from);
    const dom = canonicalDomain(domain);
    const list = rec?.senders?.length ? rec.senders : defaultSenders(user, this.deps.config, [...this.locals.keys()]);
    return list.some((entry) => {
      const e = entry.toLowerCase();
      if (e.startsWith('@')) return dom === canonicalDomain(e.slice(1));
      const s = splitAddress(e);
      return s.local === local && canonicalDomain(s.domain) === dom;
    });
  }

  private async freeBytesCached(): Promise<number> {
    const now = Date.now();
    if (now - this.free.at > 1000) {
      try {
        this.free = { at: now, bytes: await this.deps.freeBytes() };
      } catch {
        this.free = { at: now, bytes: Infinity };
      }
    }
    return this.free.bytes;
  }
}

function defaultSenders(user: string, config: PostlineConfig, localDomains: string[]): string[] {
  if (user.includes('@')) return [user];
  return [...localDomains, canonicalDomain(config.hostname)].map((d) => `${user}@${d}`);
}
