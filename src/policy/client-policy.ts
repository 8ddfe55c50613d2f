/**
 * Client checks in one place, in front of the relay policy: the static access list
 * (postscreen_access_list), per-client and per-network rates (Postfix's anvil), DNS blocklists
 * (RFC 5782, postscreen's weights), the pregreet check, AUTH throttling, and the limits smtpd
 * enforces itself for a client (error tarpit, minimum data rate).
 *
 * Owns: which client is exempt (relay.trustedNetworks, limits.exemptNetworks, access-list permits;
 * authenticated sessions for the blocklists), which check runs at which stage, and the refusal
 * replies, each tagged with the check that gave it (core/session.ts PolicyReply) for the
 * message.rejected event and metrics. Rates answer 421 4.7.0 (connect), 450 4.7.1 (MAIL),
 * 452 4.7.1 (RCPT), never 5xx; blocklists 554 5.7.1 (per recipient, or instead of 220 with action
 * connect, RFC 5321 3.1); postmaster@ and abuse@ of local domains are accepted from listed clients.
 * Blocklists and pregreet apply to role mx listeners only. Also who may speak for other clients:
 * PROXY headers from policy.trustedProxies, XCLIENT from xclientNetworks, XFORWARD from
 * xforwardNetworks. smtpd stays free of these decisions; after XCLIENT it calls closeSession and
 * openSession again, so every check runs on the new address.
 */
import type { Logger } from 'pino';
import type { PostlineConfig } from '../config/schema.js';
import type { Recipient } from '../core/envelope.js';
import { splitAddress } from '../core/envelope.js';
import { reply, type SmtpReply } from '../core/reply.js';
import type {
  AuthVerdict, GreetingPlan, PolicyReply, RecipientDecision, SessionInfo, SessionLimits, SmtpPolicy,
} from '../core/session.js';
import type { Resolver } from '../dns/types.js';
import { Anvil } from './anvil.js';
import { AuthThrottle } from './auth-throttle.js';
import { Dnsbl, type DnsblVerdict } from './dnsbl.js';
import { networkKey } from './ip.js';
import { NetworkList, normalizeAddress } from './networks.js';
import { unquoteLocalPart } from './smtp-policy.js';

/** The relay policy (or any policy) this one guards, and its local-domain test. */
export type InnerPolicy = SmtpPolicy & { isLocalDomain(domain: string): boolean };

export interface ClientPolicyDeps {
  readonly config: PostlineConfig;
  readonly inner: InnerPolicy;
  readonly logger: Logger;
  /** The resolver for the lists (policy.dns, else delivery.dns); made again on reload when zones change. */
  readonly resolver: () => Resolver;
  /** A zone was disabled or enabled again by its self-test. */
  readonly onZoneState?: (zone: string, enabled: boolean, why: string) => void;
  /** Every refusal this policy gives, by check (metrics). */
  readonly onRefusal?: (check: string) => void;
  readonly now?: () => number;
}

/** Counter slots of the client table. */
const CONN = 0, MSG = 1, RCPT = 2, UNKNOWN = 3;
type RateName = 'connectionsPerMinute' | 'messagesPerMinute' | 'recipientsPerMinute' | 'unknownRecipientsPerMinute';

interface ClientState {
  /** Trusted, exempt or permitted: no rate, tarpit, data-rate, pregreet or blocklist check. */
  readonly exempt: boolean;
  /** The blocklist answer, started at connect. */
  dnsbl?: Promise<DnsblVerdict>;
  /** The same, once it arrived (no timer per RCPT then). */
  verdict?: DnsblVerdict;
}

const tag = (r: SmtpReply, check: string): PolicyReply => ({ ...r, check });

export class ClientPolicy implements SmtpPolicy {
  private trusted!: NetworkList;
  private exempt!: NetworkList;
  private access!: { list: NetworkList; action: 'permit' | 'reject' }[];
  private proxies!: NetworkList;
  private xclient!: NetworkList;
  private xforward!: NetworkList;
  private readonly clients: Anvil;
  private readonly auth: AuthThrottle;
  private dnsbl: Dnsbl | undefined;
  private dnsblKey = '';
  private readonly sessions = new WeakMap<SessionInfo, ClientState>();
  private readonly now: () => number;

  constructor(private readonly deps: ClientPolicyDeps) {
    this.now = deps.now ?? Date.now;
    const l = deps.config.limits;
    this.clients = new Anvil(4, 60_000, l.clientTableEntries);
    this.auth = new AuthThrottle(() => deps.config.limits.auth,
      () => ({ v4: deps.config.limits.perClient.ipv4Prefix, v6: deps.config.limits.perClient.ipv6Prefix }),
      l.clientTableEntries, this.now);
    this.reload();
  }

  /** Rebuilds the network lists and, when its settings changed, the blocklist checker (SIGHUP). @throws ConfigError for a bad network. */
  reload(): void {
    const c = this.deps.config;
    this.trusted = new NetworkList(c.relay.trustedNetworks);
    this.exempt = new NetworkList(c.limits.exemptNetworks, 'limits.exemptNetworks');
    this.access = c.policy.accessList.map((e, i) => ({ list: new NetworkList([e.network], `policy.accessList.${i}.network`), action: e.action }));
    this.proxies = new NetworkList(c.policy.trustedProxies, 'policy.trustedProxies');
    this.xclient = new NetworkList(c.policy.xclientNetworks, 'policy.xclientNetworks');
    this.xforward = new NetworkList(c.policy.xforwardNetworks, 'policy.xforwardNetworks');
    this.clients.setMaxEntries(c.limits.clientTableEntries);
    const key = JSON.stringify([c.policy.dnsbl, c.policy.dns, c.policy.dnsblNegativeTtlS, c.policy.dnsblCacheEntries]);
    if (key !== this.dnsblKey) {
      this.dnsblKey = key;
      this.dnsbl?.stop();
      this.dnsbl = c.policy.dnsbl.zones.length ? new Dnsbl({
        zones: c.policy.dnsbl.zones, resolver: this.deps.resolver(), logger: this.deps.logger,
        negativeTtlS: c.policy.dnsblNegativeTtlS, cacheEntries: c.policy.dnsblCacheEntries,
        selfTestIntervalMs: c.policy.dnsbl.selfTestIntervalMs, ...(this.deps.onZoneState ? { onZoneState: this.deps.onZoneState } : {}),
        now: this.now,
      }) : undefined;
      if (this.started) void this.dnsbl?.start();
    }
  }

  private started = false;

  /** Self-tests the lists (at start, then every selfTestIntervalMs). Resolves when the first round is done. */
  async start(): Promise<void> {
    this.started = true;
    await this.dnsbl?.start();
  }

  stop(): void {
    this.started = false;
    this.dnsbl?.stop();
  }

  /** The blocklist checker (tests, doctor), when lists are configured. */
  get lists(): Dnsbl | undefined {
    return this.dnsbl;
  }

  /** Keys in the client table and the AUTH table (figures). */
  tableSizes(): { clients: number; auth: number } {
    return { clients: this.clients.size, auth: this.auth.size };
  }

  isLocalDomain(domain: string): boolean {
    return this.deps.inner.isLocalDomain(domain);
  }

  mayRelay(s: SessionInfo): boolean {
    return this.deps.inner.mayRelay?.(s) ?? false;
  }

  isTrustedProxy(address: string): boolean {
    return this.proxies.contains(address);
  }

  mayXclient(s: SessionInfo): boolean {
    return this.xclient.contains(s.clientAddress);
  }

  mayXforward(s: SessionInfo): boolean {
    return this.xforward.contains(s.clientAddress);
  }

  checkConnect(s: SessionInfo): SmtpReply | undefined {
    return this.deps.inner.checkConnect?.(s);
  }

  openSession(s: SessionInfo): PolicyReply | GreetingPlan {
    const c = this.deps.config;
    const ip = normalizeAddress(s.clientAddress);
    const hit = this.access.find((a) => a.list.contains(ip));
    if (hit?.action === 'reject') return this.refuse(tag(reply(554, '5.7.1', `Service unavailable; Client host [${ip}] blocked by local policy`), 'access'));
    const exempt = hit?.action === 'permit' || this.trusted.contains(ip) || this.exempt.contains(ip);
    const st: ClientState = { exempt };
    this.sessions.set(s, st);
    if (exempt) return { greetPauseMs: 0 };
    const over = this.count(ip, CONN, 'connectionsPerMinute');
    if (over) return this.refuse(tag(reply(421, '4.7.0', `Error: too many connections from [${ip}], try again later`), over));
    if (s.listener.role === 'mx' && this.dnsbl?.active) {
      st.dnsbl = this.dnsbl.lookupAddress(ip); // never rejects
      void st.dnsbl.then((v) => { st.verdict = v; });
    }
    return { greetPauseMs: s.listener.role === 'mx' ? c.timeouts.greetPauseMs : 0 };
  }

  async checkGreeting(s: SessionInfo, facts: { readonly pregreet: boolean }): Promise<PolicyReply | undefined> {
    const st = this.sessions.get(s);
    if (!st || st.exempt) return undefined;
    if (facts.pregreet) {
      st.dnsbl = undefined; // refused: no further checks
      st.verdict = undefined;
      return this.refuse(tag(reply(554, '5.5.1', 'Error: protocol error, client talked before the greeting'), 'pregreet'));
    }
    if (this.deps.config.policy.dnsbl.action !== 'connect') return undefined;
    const listed = await this.listedBy(s, st);
    return listed ? this.refuse(tag(this.blockedReply(s, listed), `dnsbl:${listed}`)) : undefined;
  }

  closeSession(s: SessionInfo): void {
    this.sessions.delete(s);
  }

  sessionLimits(s: SessionInfo): SessionLimits {
    const st = this.sessions.get(s);
    if (!st || st.exempt) return {};
    const l = this.deps.config.limits;
    return {
      softErrorLimit: l.softErrorLimit, errorSleepMs: l.errorSleepMs,
      ...(l.minDataRate.bytes > 0 ? { minDataRate: { bytes: l.minDataRate.bytes, windowMs: l.minDataRate.windowMs } } : {}),
    };
  }

  async checkMailFrom(s: SessionInfo, mailFrom: string, sizeHint: number | undefined): Promise<SmtpReply | undefined> {
    const st = this.sessions.get(s);
    if (st && !st.exempt) {
      const ip = normalizeAddress(s.clientAddress);
      const over = this.count(ip, MSG, 'messagesPerMinute');
      if (over) return this.refuse(tag(reply(450, '4.7.1', `Error: too many messages from [${ip}], slow down`), over));
    }
    return this.deps.inner.checkMailFrom(s, mailFrom, sizeHint);
  }

  async checkRecipient(s: SessionInfo, rcpt: Recipient, mailFrom?: string): Promise<RecipientDecision> {
    const st = this.sessions.get(s);
    if (!st || st.exempt) return this.deps.inner.checkRecipient(s, rcpt, mailFrom);
    const ip = normalizeAddress(s.clientAddress);
    if (this.deps.config.policy.dnsbl.action === 'rcpt' && s.authUser === undefined && !this.isAbuseContact(rcpt.address)) {
      const listed = await this.listedBy(s, st);
      if (listed) return { accept: false, reply: this.refuse(tag(this.blockedReply(s, listed), `dnsbl:${listed}`)) };
    }
    const unknown = this.peek(ip, UNKNOWN, 'unknownRecipientsPerMinute');
    if (unknown) return { accept: false, reply: this.refuse(tag(reply(452, '4.7.1', `Error: too many unknown recipients from [${ip}], slow down`), unknown)) };
    const over = this.count(ip, RCPT, 'recipientsPerMinute');
    if (over) return { accept: false, reply: this.refuse(tag(reply(452, '4.7.1', `Error: too many recipients from [${ip}], slow down`), over)) };
    const d = await this.deps.inner.checkRecipient(s, rcpt, mailFrom);
    if (!d.accept && d.reply.code === 550 && d.reply.enhanced === '5.1.1') this.count(ip, UNKNOWN, 'unknownRecipientsPerMinute');
    return d;
  }

  authenticate(username: string, password: string): Promise<boolean> {
    return this.deps.inner.authenticate(username, password);
  }

  async authenticateSession(s: SessionInfo, username: string, password: string): Promise<AuthVerdict> {
    const ip = normalizeAddress(s.clientAddress);
    const v = await this.auth.attempt(ip, username, () => this.deps.inner.authenticate(username, password));
    if (!v.ok && v.reply?.check) this.deps.onRefusal?.(v.reply.check);
    return v;
  }

  /** AUTH throttle counters (figures and tests). */
  get authStats(): AuthThrottle['stats'] {
    return this.auth.stats;
  }

  // ---- helpers ------------------------------------------------------------------------------

  private refuse(r: PolicyReply): PolicyReply {
    if (r.check) this.deps.onRefusal?.(r.check);
    return r;
  }

  /**
   * Counts one event of `slot` for the address and its network; returns the check name when a
   * limit is now exceeded ("rate:NAME" or "rate:perNetwork.NAME"), else undefined.
   */
  private count(ip: string, slot: number, name: RateName): string | undefined {
    const pc = this.deps.config.limits.perClient;
    const t = this.now();
    const a = this.clients.add(`a:${ip}`, slot, t);
    const n = this.clients.add(`n:${networkKey(ip, pc.ipv4Prefix, pc.ipv6Prefix)}`, slot, t);
    if (pc[name] > 0 && a > pc[name]) return `rate:${name}`;
    if (pc.perNetwork[name] > 0 && n > pc.perNetwork[name]) return `rate:perNetwork.${name}`;
    return undefined;
  }

  /** Like count, without counting: the check name when the limit is already reached. */
  private peek(ip: string, slot: number, name: RateName): string | undefined {
    const pc = this.deps.config.limits.perClient;
    const t = this.now();
    if (pc[name] > 0 && this.clients.count(`a:${ip}`, slot, t) >= pc[name]) return `rate:${name}`;
    if (pc.perNetwork[name] > 0 && this.clients.count(`n:${networkKey(ip, pc.ipv4Prefix, pc.ipv6Prefix)}`, slot, t) >= pc.perNetwork[name]) return `rate:perNetwork.${name}`;
    return undefined;
  }

  /** The zone to name when the client's score reaches the threshold (waits at most dnsbl.timeoutMs). */
  private async listedBy(s: SessionInfo, st: ClientState): Promise<string | undefined> {
    if (!st.dnsbl || s.listener.role !== 'mx') return undefined;
    const cfg = this.deps.config.policy.dnsbl;
    if (st.verdict) return st.verdict.score >= cfg.threshold && st.verdict.listedBy.length ? st.verdict.listedBy[0] : undefined;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<undefined>((resolve) => { timer = setTimeout(() => resolve(undefined), cfg.timeoutMs); });
    const v = await Promise.race([st.dnsbl, late]);
    clearTimeout(timer);
    if (!v) {
      this.deps.logger.info({ client: s.clientAddress }, 'dnsbl answers late: counted as not listed');
      return undefined;
    }
    return v.score >= cfg.threshold && v.listedBy.length ? v.listedBy[0] : undefined;
  }

  private blockedReply(s: SessionInfo, zone: string): SmtpReply {
    return reply(554, '5.7.1', `Service unavailable; Client host [${normalizeAddress(s.clientAddress)}] blocked using ${zone}`);
  }

  /** postmaster (with or without a domain) and abuse@ of our domains: accepted from listed clients. */
  private isAbuseContact(address: string): boolean {
    const { local, domain } = splitAddress(address);
    const l = unquoteLocalPart(local).toLowerCase();
    if (l === 'postmaster' && domain === '') return true;
    return (l === 'postmaster' || l === 'abuse') && domain !== '' && this.deps.inner.isLocalDomain(domain);
  }
}
