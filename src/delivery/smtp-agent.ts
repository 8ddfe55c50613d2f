/**
 * The SMTP delivery agent: delivers one request to its next hop (MX hosts or a fixed host) and
 * returns one result per recipient. Never throws.
 *
 * RFCs: RFC 5321 5.1 (try MX hosts and their addresses in order; never deliver to ourselves: a
 * loop is deferred 4.4.6), 4.5.4.1 (retry semantics belong to the scheduler), RFC 3461 5.2.2
 * (Action: relayed when NOTIFY=SUCCESS goes to a hop without DSN; no notice of ours when the hop
 * offers DSN and got NOTIFY, see trouble.ts handoffTo), RFC 6531 3.4 (a delivery that needs SMTPUTF8
 * moves on past hosts without it and bounces 5.6.7 only when the last one lacks it), RFC 8461 4-5
 * (MTA-STS: with an enforce policy only MX hosts it names are tried, each with a verified
 * certificate; testing logs what enforce would refuse), RFC 5321 3.8 (a 421 after MAIL defers the
 * message at once and closes the connection). A message whose end of data went out without a final
 * reply is deferred, never sent to another host in the same attempt. Owns: host order, loop
 * detection, the TLS policy of each connection (tls-policy.ts, mta-sts.ts), use of the connection
 * pool and batching of recipients per transaction.
 */
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import type { ConnectionOptions } from 'node:tls';
import type { PostlineConfig } from '../config/schema.js';
import { PostlineError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { reply } from '../core/reply.js';
import { resolveHostAddresses, resolveMxHosts, MxLookupError, type MxHost } from '../dns/mx.js';
import { DnsError, type Resolver } from '../dns/types.js';
import { isSmtpHop, nextHopKey, type SmtpNextHop as NextHop } from '../routing/types.js';
import { SmtpClientError } from './client-error.js';
import { smtputf8Required } from './mail-params.js';
import { ConnectionPool, type PoolLease } from './pool.js';
import { MtaSts, mxAllowed, type StsPolicy } from './mta-sts.js';
import { SmtpClient } from './smtp-client.js';
import { sendMail, type TransactionOutcome } from './smtp-transaction.js';
import { CaFiles, connectionTls, hopTlsPolicy, verifiesCertificate, type HopTlsPolicy } from './tls-policy.js';
import { handoffTo, toResult, undecided, verdictOfError, verdictOfReply, type Verdict } from './trouble.js';
import { logAttempt, notThisTransport } from './transports.js';
import type { DeliveryAgent, DeliveryProgress, DeliveryRecipient, DeliveryRequest, RecipientResult } from './types.js';

export interface SmtpAgentOptions {
  readonly config: PostlineConfig;
  readonly resolver: Resolver;
  readonly logger: Logger;
  /** Our own SMTP listeners; a next hop at one of them is a mail loop. */
  readonly ownListeners: readonly { address: string; port: number }[];
  /** Extra node:tls options for every outbound handshake (tests); trust is configured with caFile. */
  readonly tlsOptions?: ConnectionOptions;
}

/** How one delivery treats TLS: the configured policy, the MTA-STS policy applied to it, and its fingerprint. */
interface Plan {
  readonly tls: HopTlsPolicy;
  readonly sts?: StsPolicy;
  /** MTA-STS testing: the label of what is only logged. */
  readonly reportOnly?: string;
  /** Pooled connections are reused only under the same key. */
  readonly key: string;
}

/** One address to try. */
interface Target { readonly name: string; readonly address: string; readonly port: number }

/** Most addresses tried per delivery (like Postfix smtp_mx_address_limit). */
const MAX_TARGETS = 10;

/** Per-delivery progress. */
interface Attempt extends DeliveryProgress<NextHop> {
  /** Hosts whose connect or greeting failed. */
  unreached: number;
  /** Set once the rest of the message is decided here (a 421 after MAIL): no further host is tried. */
  done?: boolean;
}

/** Trouble before or at the greeting: the host never answered (the dead-destination signal). */
const beforeGreeting = (err: unknown): boolean => err instanceof SmtpClientError && (err.stage === 'connect' || err.stage === 'greeting');

const isLoopback = (a: string) => /^127\./.test(a) || a === '::1' || a === '::ffff:127.0.0.1';
const isWildcard = (a: string) => a === '0.0.0.0' || a === '::' || a === '';

export class SmtpDeliveryAgent implements DeliveryAgent {
  private readonly config: PostlineConfig;
  private readonly resolver: Resolver;
  private readonly logger: Logger;
  private readonly own: readonly { address: string; port: number }[];
  private readonly tlsOptions?: ConnectionOptions;
  private readonly pool: ConnectionPool<SmtpClient>;
  private readonly cas = new CaFiles();
  private readonly sts: MtaSts;

  /** @throws RangeError when the pool limits in `config.delivery` are invalid. */
  constructor(opts: SmtpAgentOptions) {
    this.config = opts.config;
    this.resolver = opts.resolver;
    this.logger = opts.logger;
    this.own = opts.ownListeners;
    if (opts.tlsOptions) this.tlsOptions = opts.tlsOptions;
    const d = opts.config.delivery;
    // No per-destination cap here: the scheduler's Dispatcher limits deliveries per destination
    // (traffic shaping), and each delivery holds one slot; the pool caps connections in all.
    this.pool = new ConnectionPool<SmtpClient>({
      maxConnections: d.maxConnections,
      idleTimeoutMs: d.idleTimeoutMs,
      messagesPerConnection: d.messagesPerConnection,
      maxWaitMs: d.connectTimeoutMs,
    });
    this.sts = new MtaSts({ resolver: opts.resolver, config: () => this.config.delivery.mtaSts, dataDir: opts.config.dataDir, logger: opts.logger, cas: this.cas });
  }

  /**
   * Delivers one message to the recipients of one next hop. Returns one RecipientResult per
   * recipient (same idx); remote replies keep their code and enhanced status. Never throws.
   */
  async deliver(anyReq: DeliveryRequest): Promise<RecipientResult[]> {
    if (!isSmtpHop(anyReq.nextHop)) return notThisTransport(anyReq, 'smtp');
    const req = anyReq as DeliveryRequest<NextHop>;
    const a: Attempt = { req, smtputf8Required: smtputf8Required(req), pending: [...req.recipients], results: [], sent: false, reached: false, unreached: 0 };
    try {
      await this.attempt(a);
    } catch (err) {
      a.trouble = err;
    }
    if (a.pending.length > 0) {
      const v = verdictOfError(a.trouble ?? new SmtpClientError('local', 'none', 'no host could be tried'));
      // No host answered at all: the scheduler marks the destination dead (destinations.ts).
      const unreachable = !a.reached && a.unreached > 0 && !req.signal?.aborted;
      a.results.push(...undecided(a.pending, v, unreachable));
    }
    logAttempt(this.logger, 'smtp', req, a.results);
    return a.results;
  }

  /**
   * Outbound connection slots for metrics: `open` counts every live slot (connecting, busy or
   * idle), `idle` those parked for reuse. Read-only.
   */
  connections(): { open: number; idle: number; opened: number } {
    return { open: this.pool.size(), idle: this.pool.idleTotal(), opened: this.opened };
  }

  /** SMTP sessions opened since start (greeting and EHLO done), for messages per connection. */
  private opened = 0;

  /** Quits idle pooled connections and writes the MTA-STS cache. */
  async close(): Promise<void> {
    await this.pool.close();
    this.sts.flush();
  }

  /** The TLS plan of a delivery to `hop`: configured policy, then MTA-STS for MX delivery without a tlsPolicies rule. */
  private async plan(hop: NextHop, signal?: AbortSignal): Promise<Plan> {
    const tls = hopTlsPolicy(this.config.delivery, hop);
    const sts = hop.kind === 'mx' && !tls.explicit ? await untilAborted(this.sts.policyFor(hop.domain), signal) : undefined;
    if (!sts) return { tls, key: planKey(tls) };
    const label = `MTA-STS policy of ${hopDomain(hop)} (${sts.mode}, id ${sts.id})`;
    if (sts.mode === 'enforce') {
      // RFC 8461 4.2: a certificate that chains to a trusted root and names the MX host; never plaintext.
      const enforced: HopTlsPolicy = { ...tls, level: verifiesCertificate(tls.level) ? tls.level : 'verify', implicit: false, source: label };
      return { tls: enforced, sts, key: planKey(enforced, sts.id) };
    }
    const reportOnly = verifiesCertificate(tls.level) ? undefined : label;
    return { tls, sts, ...(reportOnly ? { reportOnly } : {}), key: planKey(tls, sts.id, reportOnly) };
  }

  private async attempt(a: Attempt): Promise<void> {
    const plan = await this.plan(a.req.nextHop, a.req.signal);
    const lease = await this.pool.acquire(poolKey(a.req), a.req.signal, a.req.shaping?.messagesPerConnection);
    const onAbort = () => lease.conn?.destroy(new SmtpClientError('aborted', 'none', 'delivery aborted (shutdown)'));
    a.req.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      // A pooled connection opened under another TLS plan (config reload, a new MTA-STS policy) is not reused.
      if (lease.conn && lease.conn.policyKey === plan.key && (await lease.conn.reset())) {
        a.reached = true;
        await this.useConnection(lease.conn, a);
      }
      if (a.pending.length > 0 && !a.done) await this.tryHosts(a, lease, plan);
    } finally {
      const c = lease.conn;
      // A session left in a refused transaction (no RCPT accepted, DATA or a BDAT chunk refused) is
      // still in step: the next user sends RSET first (attempt above), so it may be pooled.
      // A connection closed here (used up, broken) is closed before the delivery ends, so the
      // scheduler's connection limit holds at the receiver too (no QUIT overlapping a new
      // connection); a shutdown's abort still cuts that QUIT short.
      await lease.release({ sent: a.sent, keep: c !== undefined && c.usable });
      a.req.signal?.removeEventListener('abort', onAbort);
    }
  }

  private async tryHosts(a: Attempt, lease: PoolLease<SmtpClient>, plan: Plan): Promise<void> {
    const hop = a.req.nextHop;
    const targets = this.stsTargets(a, plan, await this.targets(hop));
    for (const t of targets.slice(0, MAX_TARGETS)) {
      if (a.pending.length === 0 || a.done || a.req.signal?.aborted) break;
      if (this.isSelf(t)) {
        const what = hop.kind === 'mx' ? hop.domain : hop.host;
        a.trouble = new SmtpClientError('loop', 'connect', `mail for ${what} loops back to myself (${t.name}[${t.address}]:${t.port})`);
        break; // RFC 5321 5.1: hosts after ourselves are not to be used
      }
      if (lease.conn?.usable) void lease.conn.quit();
      lease.attach(undefined);
      try {
        // The destination's connection rate (connectionsPerMinute): wait for a token, never busy.
        await a.req.shaping?.beforeConnect(a.req.signal);
        lease.attach(await SmtpClient.open({ ...this.clientOptions(t, hop, plan, a.req.egress), ...(a.req.signal ? { signal: a.req.signal } : {}) }));
        this.opened++;
      } catch (err) {
        a.trouble = err;
        if (beforeGreeting(err)) a.unreached++;
        else a.reached = true;
        this.logSetupFailure(a, t, err);
        continue;
      }
      a.reached = true;
      await this.useConnection(lease.conn!, a);
    }
    if (a.req.signal?.aborted && a.pending.length > 0) a.trouble = new SmtpClientError('aborted', 'none', 'delivery aborted (shutdown)');
  }

  /**
   * One info line per failed connect or set-up (greeting, EHLO, STARTTLS, AUTH), like Postfix's
   * "connect to HOST[IP]:25: Connection refused": the text is the error's own, which names the host.
   */
  private logSetupFailure(a: Attempt, t: Target, err: unknown): void {
    const e = err instanceof SmtpClientError ? err : undefined;
    const text = err instanceof Error ? err.message : String(err);
    this.logger.info({ queueId: a.req.queueId, host: `${t.name}[${t.address}]:${t.port}`, stage: e?.stage, code: e?.code }, text);
  }

  /**
   * MTA-STS (RFC 8461 4.1): under enforce only the MX hosts the policy names are tried; none left
   * defers 4.7.0. Under testing every host is tried and the ones it does not name are logged.
   */
  private stsTargets(a: Attempt, plan: Plan, targets: Target[]): Target[] {
    const sts = plan.sts;
    if (!sts) return targets;
    const allowed = targets.filter((t) => mxAllowed(t.name, sts));
    if (allowed.length === targets.length) return targets;
    const refused = [...new Set(targets.filter((t) => !allowed.includes(t)).map((t) => t.name))];
    const label = `MTA-STS policy of ${hopDomain(a.req.nextHop)} (${sts.mode}, mx: ${sts.mx.join(' ')})`;
    if (sts.mode === 'testing') {
      this.logger.warn({ queueId: a.req.queueId, hosts: refused }, `${label}: would refuse MX ${refused.join(', ')}`);
      return targets;
    }
    this.logger.info({ queueId: a.req.queueId, hosts: refused }, `${label}: skipping MX ${refused.join(', ')}`);
    if (allowed.length === 0) {
      const text = `${label} allows none of the MX hosts ${refused.join(', ')}`;
      a.trouble = new PostlineError('ERR_MTA_STS_NO_MX', text, { temporary: true, reply: reply(451, '4.7.0', text) });
    }
    return allowed;
  }

  /** @throws PostlineError ERR_TLS_CA_FILE (the delivery defers 4.3.5). */
  private clientOptions(t: Target, hop: NextHop, plan: Plan, egress?: DeliveryRequest['egress']) {
    const d = this.config.delivery;
    return {
      address: t.address, port: t.port, hostname: t.name,
      heloName: egress?.ehloName ?? d.heloName ?? this.config.hostname,
      ...(egress?.address ?? d.sourceAddress ? { localAddress: egress?.address ?? d.sourceAddress } : {}),
      tls: connectionTls(plan.tls, hop, t.name, this.cas, plan.reportOnly),
      policyKey: plan.key,
      ...(hop.kind === 'host' && hop.auth ? { auth: hop.auth } : {}),
      connectTimeoutMs: d.connectTimeoutMs,
      commandTimeoutMs: d.commandTimeoutMs,
      ...(this.tlsOptions ? { tlsOptions: this.tlsOptions } : {}),
      logger: this.logger,
    };
  }

  /**
   * Sends the pending recipients over one connection in batches of recipientsPerTransaction.
   * Leaves in `a.pending` what should go to the next host (connection trouble, 4xx to MAIL).
   */
  private async useConnection(client: SmtpClient, a: Attempt): Promise<void> {
    const d = this.config.delivery;
    if (a.smtputf8Required && !client.extensions.has('SMTPUTF8')) {
      // Like Postfix (smtp_proto.c): soft for this host, try the next; a bounce only if it was the last.
      a.trouble = smtputf8Missing(client.remoteMta);
      this.logger.info({ queueId: a.req.queueId, host: client.remoteMta }, `host ${client.remoteMta} does not offer SMTPUTF8, which this message requires`);
      return;
    }
    const per = d.recipientsPerTransaction;
    const left: DeliveryRecipient[] = [];
    const byIdx = new Map(a.pending.map((r) => [r.idx, r]));
    for (let i = 0; i < a.pending.length; i += per) {
      const batch = a.pending.slice(i, i + per);
      if (!client.usable || left.length > 0 || a.done) { left.push(...batch); continue; }
      const out = await sendMail(client, { ...a.req, smtputf8Required: a.smtputf8Required, recipients: batch, openBody: () => a.req.openBody(), chunking: d.chunking }, d);
      const decided = new Set<number>();
      const decide = (idx: number, v: Verdict) => {
        decided.add(idx);
        a.results.push(this.result(client, idx, v, byIdx.get(idx)));
      };
      for (const r of out.replies) {
        if (r.stage === 'mail' && r.reply.code >= 400 && r.reply.code < 500) {
          a.trouble = new SmtpClientError('reply', 'mail', `host ${client.remoteMta} said: ${r.reply.code}`, { remoteReply: r.reply });
          continue; // 4xx to MAIL: try the next host
        }
        if (r.stage === 'dot') a.sent = true;
        decide(r.idx, verdictOfReply(r.reply, r.remote));
      }
      if (out.error) {
        a.trouble = out.error;
        // The message went out without a final reply: it may have arrived, so it is not sent again now.
        for (const idx of out.inDoubt ?? []) if (!decided.has(idx)) decide(idx, verdictOfError(out.error));
        if (closedAfterMail(out)) a.done = true;
      }
      left.push(...batch.filter((r) => !decided.has(r.idx)));
    }
    if (a.done) {
      // RFC 5321 3.8: a 421 after MAIL ended the session; the rest of this message is deferred with it.
      const v = verdictOfError(a.trouble);
      for (const r of left) a.results.push(this.result(client, r.idx, v, r));
      left.length = 0;
    }
    a.pending = left;
  }

  /** A result from this connection, with its TLS facts. */
  private result(client: SmtpClient, idx: number, v: Verdict, r: DeliveryRecipient | undefined): RecipientResult {
    const res = toResult(idx, v, client.remoteMta, handoffTo(client.extensions.has('DSN'), r?.notify));
    const tls = client.tlsInfo;
    return tls ? { ...res, tls: { version: tls.protocol, cipher: tls.cipher, verified: tls.verified } } : res;
  }

  /** Addresses to try for a next hop, best first (RFC 5321 5.1). @throws MxLookupError */
  private async targets(hop: NextHop): Promise<Target[]> {
    if (hop.kind === 'mx') return flatten(await resolveMxHosts(this.resolver, hop.domain), hop.port);
    if (isIP(hop.host)) return [{ name: hop.host, address: hop.host, port: hop.port }];
    if (hop.mxLookup) return flatten(await resolveMxHosts(this.resolver, hop.host), hop.port);
    try {
      const addrs = await resolveHostAddresses(this.resolver, hop.host);
      return addrs.map((address) => ({ name: hop.host, address, port: hop.port }));
    } catch (err) {
      const why = err instanceof DnsError ? err.message : String(err);
      // A configured host that does not resolve is a configuration or DNS problem: defer.
      throw new MxLookupError('ERR_DNS_HOST', `next hop ${hop.host} does not resolve: ${why}`, true, '4.4.3', err);
    }
  }

  /** True when the target is one of our own listeners (RFC 5321 5.1 "the sender-SMTP is itself an MX"). */
  private isSelf(t: Target): boolean {
    return this.own.some((l) => {
      if (l.port !== t.port) return false;
      if (l.address === t.address || isLoopback(t.address) || isWildcard(t.address)) return true;
      return isWildcard(l.address) && localAddresses().has(t.address);
    });
  }
}

/** RFC 6531 3.4 / RFC 3463 5.6.7: the last host tried lacks SMTPUTF8, which the delivery needs (permanent). */
function smtputf8Missing(remoteMta: string): PostlineError {
  const text = `message requires SMTPUTF8, but no server was found that supports SMTPUTF8. The last attempted server was ${remoteMta}`;
  return new PostlineError('ERR_SMTPUTF8_REQUIRED', text, { temporary: false, reply: reply(553, '5.6.7', text) });
}

/**
 * `p`, unless `signal` aborts first (shutdown: an MTA-STS fetch must not hold the delivery for its
 * whole timeout). @throws SmtpClientError 'aborted'
 */
function untilAborted<T>(p: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return p;
  const aborted = () => new SmtpClientError('aborted', 'none', 'delivery aborted (shutdown)');
  if (signal.aborted) return Promise.reject(aborted());
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(aborted());
    signal.addEventListener('abort', onAbort, { once: true });
    p.then((v) => { signal.removeEventListener('abort', onAbort); resolve(v); }, (e: unknown) => { signal.removeEventListener('abort', onAbort); reject(e); });
  });
}

/** True when a 421 ended the session after MAIL was accepted (the message is deferred, no next host). */
function closedAfterMail(out: TransactionOutcome): boolean {
  const e = out.error;
  return e !== undefined && e.remoteReply?.code === 421 && e.stage !== 'mail' && e.stage !== 'rset';
}

/** The fingerprint of a TLS plan (pooled connections are reused only under the same one). */
function planKey(p: HopTlsPolicy, stsId = '', reportOnly = ''): string {
  return JSON.stringify([p.level, p.implicit, p.caFile ?? '', p.servername ?? '', stsId, reportOnly]);
}

/**
 * Connections are pooled per site (the MX host set, else the next hop) and egress source: a
 * connection bound to one address serves only its source; a pooled one is reused only under the
 * same TLS plan (attempt()).
 */
const poolKey = (req: DeliveryRequest<NextHop>): string => {
  const dest = req.site ?? nextHopKey(req.nextHop);
  return req.egress ? `${dest}|${req.egress.name}` : dest;
};

const hopDomain = (hop: NextHop): string => (hop.kind === 'mx' ? hop.domain : hop.host);

function flatten(hosts: readonly MxHost[], port: number): Target[] {
  return hosts.flatMap((h) => h.addresses.map((address) => ({ name: h.name, address, port })));
}

function localAddresses(): Set<string> {
  const out = new Set<string>();
  for (const list of Object.values(networkInterfaces())) for (const i of list ?? []) out.add(i.address);
  return out;
}
