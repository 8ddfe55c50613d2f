/**
 * The LMTP delivery agent: delivers one request to its LMTP target (a TCP host and port or a unix
 * socket, `local.routes` transport "lmtp") and returns one result per recipient. Never throws,
 * never writes the store.
 *
 * RFCs: RFC 2033 (LMTP: LHLO, 4.2 one reply per accepted recipient after the final "." in RCPT
 * order), RFC 2920 (PIPELINING), RFC 3030 (CHUNKING: BDAT, the LAST chunk answered per recipient
 * too), RFC 1870 (SIZE), RFC 6152 (8BITMIME; a server without it gets 8-bit MIME parts downgraded),
 * RFC 6531 (SMTPUTF8: mail that needs it bounces 5.6.7 at a server that does not offer it),
 * RFC 2034 (ENHANCEDSTATUSCODES), RFC 3461 (a server that offers DSN gets NOTIFY and ORCPT and
 * reports on delivery itself), RFC 5321 4.1.1.5 (RSET before a pooled session's next message).
 *
 * The SMTP client speaks LMTP (delivery/smtp-client.ts `lmtp`, `path`) and smtp-transaction.ts
 * reads the per-recipient replies; the connection pool keeps sessions per target for reuse. Each
 * reply decides its recipient (trouble.ts verdictOfReply: 2xx delivered, 4xx deferred, 5xx bounced,
 * so an over-quota mailbox answers 452 4.2.2 or 552 5.2.2 for itself alone). Trouble with the
 * server defers every recipient not yet decided: a refused or failed connect, a greeting or LHLO
 * that is not 2xx (even 5xx: a server that cannot be used now), a 421 anywhere, a timeout or a
 * lost connection. A connection lost after the final "." defers only the recipients whose reply
 * had not come; the server may have delivered to them already, so the next attempt may deliver a
 * duplicate (as with SMTP, RFC 5321 6.1; Postfix's LMTP client has the same window). A pooled
 * session that turns out closed (lost, or 421, before anything was decided) is replaced by a new
 * connection once. Owns: the target's connection, the reuse of sessions, recipients per
 * transaction.
 */
import type { PostlineConfig } from '../config/schema.js';
import type { Logger } from '../core/log.js';
import { nextHopKey, type LocalNextHop } from '../routing/types.js';
import { SmtpClientError } from '../delivery/client-error.js';
import { smtputf8Required } from '../delivery/mail-params.js';
import { ConnectionPool, type PoolLease } from '../delivery/pool.js';
import { SmtpClient, type SmtpClientOptions } from '../delivery/smtp-client.js';
import { sendMail } from '../delivery/smtp-transaction.js';
import type { ConnectionTls } from '../delivery/tls-policy.js';
import { logAttempt, notThisTransport } from '../delivery/transports.js';
import { toResult, undecided, verdictOfError, verdictOfReply, type Verdict } from '../delivery/trouble.js';
import type { DeliveryAgent, DeliveryProgress, DeliveryRecipient, DeliveryRequest, RecipientResult } from '../delivery/types.js';
import { parseLmtpTarget, type LmtpTarget } from './lmtp-target.js';

type LmtpHop = Extract<LocalNextHop, { kind: 'lmtp' }>;

export interface LmtpAgentOptions {
  /** Read at each delivery (`local.lmtp`, delivery.heloName, hostname); pool sizes at construction. */
  readonly config: PostlineConfig;
  readonly logger: Logger;
}

/** Plain LMTP: the target is local or on a trusted network (no STARTTLS). */
const NO_TLS: ConnectionTls = { level: 'none', implicit: false, names: [], source: 'lmtp' };

/** Per-delivery progress. */
interface Run extends DeliveryProgress<LmtpHop> {
  /** The connect or the greeting failed, and nothing answered before (the dead-destination signal). */
  unreachable: boolean;
}

/** Server trouble never bounces: a 5xx greeting or LHLO says "not now", not "no such mailbox". */
function deferredOnly(v: Verdict): Verdict {
  if (v.outcome !== 'bounced') return v;
  return { ...v, outcome: 'deferred', code: 451, dsnStatus: `4${v.dsnStatus.slice(1)}` };
}

export class LmtpDeliveryAgent implements DeliveryAgent {
  private readonly config: PostlineConfig;
  private readonly logger: Logger;
  private readonly pool: ConnectionPool<SmtpClient>;

  /** @throws RangeError when the limits in `local.lmtp` are invalid. */
  constructor(opts: LmtpAgentOptions) {
    this.config = opts.config;
    this.logger = opts.logger;
    const l = opts.config.local.lmtp;
    this.pool = new ConnectionPool<SmtpClient>({
      maxConnections: l.maxConnections,
      ...(l.connectionsPerTarget !== undefined ? { connectionsPerDestination: l.connectionsPerTarget } : {}),
      idleTimeoutMs: l.idleTimeoutMs,
      messagesPerConnection: l.messagesPerConnection,
      // A delivery beyond connectionsPerTarget waits for a session to come free, up to a reply's time.
      maxWaitMs: l.commandTimeoutMs,
    });
  }

  /**
   * Delivers one message to the recipients of one LMTP next hop. Returns one RecipientResult per
   * recipient (same idx), remote replies with their code and enhanced status. A next hop of
   * another transport, or a target that does not parse, defers everything 451 4.3.5. Never throws.
   */
  async deliver(anyReq: DeliveryRequest): Promise<RecipientResult[]> {
    if (anyReq.nextHop.kind !== 'lmtp') return notThisTransport(anyReq, 'lmtp');
    const req = anyReq as DeliveryRequest<LmtpHop>;
    const target = parseLmtpTarget(req.nextHop.target);
    if (!target) return notThisTransport(req, 'valid lmtp ("host:port", "[v6]:port" or "unix:/path")');
    const a: Run = { req, smtputf8Required: smtputf8Required(req), pending: [...req.recipients], results: [], sent: false, reached: false, unreachable: false };
    try {
      await this.attempt(a, target);
    } catch (err) {
      a.trouble = err;
    }
    if (a.pending.length > 0) {
      const v = deferredOnly(verdictOfError(a.trouble ?? new SmtpClientError('local', 'none', 'the LMTP target could not be tried')));
      const unreachable = a.unreachable && !a.reached && !req.signal?.aborted;
      a.results.push(...undecided(a.pending, v, unreachable));
    }
    logAttempt(this.logger, 'lmtp', req, a.results);
    return a.results;
  }

  /** LMTP connection slots (live: connecting, busy or idle; idle: kept for reuse). Read-only. */
  connections(): { open: number; idle: number } {
    return { open: this.pool.size(), idle: this.pool.idleTotal() };
  }

  /** Quits idle sessions (QUIT); busy ones are quit when their delivery ends. */
  async close(): Promise<void> {
    await this.pool.close();
  }

  private async attempt(a: Run, target: LmtpTarget): Promise<void> {
    const l = this.config.local.lmtp;
    const max = Math.min(l.messagesPerConnection, a.req.shaping?.messagesPerConnection ?? l.messagesPerConnection);
    const lease = await this.pool.acquire(nextHopKey(a.req.nextHop), a.req.signal, max);
    const onAbort = () => lease.conn?.destroy(new SmtpClientError('aborted', 'none', 'delivery aborted (shutdown)'));
    a.req.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      let client = lease.conn && (await lease.conn.reset()) ? lease.conn : undefined;
      if (client) a.reached = true;
      // At most two sessions: a pooled one found closed is replaced once by a new connection.
      for (let round = 0; round < 2 && a.pending.length > 0 && !a.req.signal?.aborted; round++) {
        const pooled = client !== undefined;
        client ??= await this.open(a, target, lease);
        if (!(await this.useConnection(client, a, pooled))) break;
        client = undefined;
      }
      if (a.req.signal?.aborted && a.pending.length > 0) a.trouble = new SmtpClientError('aborted', 'none', 'delivery aborted (shutdown)');
    } finally {
      // A connection closed here is closed before the delivery ends (the scheduler's limit holds).
      await lease.release({ sent: a.sent, keep: lease.conn?.usable === true });
      a.req.signal?.removeEventListener('abort', onAbort);
    }
  }

  /** A new session in the lease's slot (after the destination's connection rate allows one). @throws SmtpClientError */
  private async open(a: Run, target: LmtpTarget, lease: PoolLease<SmtpClient>): Promise<SmtpClient> {
    if (lease.conn) void lease.conn.quit();
    lease.attach(undefined);
    await a.req.shaping?.beforeConnect(a.req.signal);
    try {
      const c = await SmtpClient.open(this.clientOptions(target, a.req.signal));
      lease.attach(c);
      a.reached = true;
      return c;
    } catch (err) {
      const e = err instanceof SmtpClientError ? err : undefined;
      a.unreachable = e !== undefined && (e.stage === 'connect' || e.stage === 'greeting');
      this.logger.info({ queueId: a.req.queueId, target: a.req.nextHop.target, stage: e?.stage, code: e?.code }, err instanceof Error ? err.message : String(err));
      throw err;
    }
  }

  private clientOptions(t: LmtpTarget, signal?: AbortSignal): SmtpClientOptions {
    const l = this.config.local.lmtp;
    return {
      ...(t.kind === 'unix' ? { address: '', port: 0, path: t.path } : { address: t.host, port: t.port, hostname: t.host }),
      lmtp: true,
      heloName: l.lhloName ?? this.config.delivery.heloName ?? this.config.hostname,
      tls: NO_TLS,
      connectTimeoutMs: l.connectTimeoutMs,
      commandTimeoutMs: l.commandTimeoutMs,
      logger: this.logger,
      ...(signal ? { signal } : {}),
    };
  }

  /**
   * Sends the pending recipients over one session in transactions of recipientsPerTransaction.
   * Leaves in `a.pending` what was not decided (deferred by the caller).
   * @returns true when a pooled session failed before anything was decided: try a new one.
   */
  private async useConnection(client: SmtpClient, a: Run, pooled: boolean): Promise<boolean> {
    const l = this.config.local.lmtp;
    const per = l.recipientsPerTransaction;
    const left: DeliveryRecipient[] = [];
    for (let i = 0; i < a.pending.length; i += per) {
      const batch = a.pending.slice(i, i + per);
      if (!client.usable || left.length > 0) { left.push(...batch); continue; }
      const out = await sendMail(client, { ...a.req, smtputf8Required: a.smtputf8Required, recipients: batch, openBody: () => a.req.openBody(), chunking: l.chunking }, l);
      const decided = new Set<number>();
      const decide = (idx: number, v: Verdict) => {
        decided.add(idx);
        // A server that offers DSN got NOTIFY and ORCPT (RFC 3461 4.1) and reports on delivery itself.
        a.results.push(toResult(idx, v, client.remoteMta, client.extensions.has('DSN') ? { dsnPassedOn: true } : {}));
      };
      for (const r of out.replies) {
        if (r.stage === 'dot') a.sent = true;
        decide(r.idx, verdictOfReply(r.reply, r.remote));
      }
      if (out.error) {
        a.trouble = out.error;
        const e = out.error;
        const stale = pooled && i === 0 && decided.size === 0 && !out.inDoubt?.length
          && (e.kind === 'lost' || (e.remoteReply?.code === 421 && (e.stage === 'mail' || e.stage === 'rset')));
        if (stale) return true;
        // Sent in full without a reply: the server may have delivered it; deferred, never sent again now.
        for (const idx of out.inDoubt ?? []) if (!decided.has(idx)) { a.sent = true; decide(idx, deferredOnly(verdictOfError(e))); }
      }
      left.push(...batch.filter((r) => !decided.has(r.idx)));
    }
    a.pending = left;
    return false;
  }
}
