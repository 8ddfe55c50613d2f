/**
 * The http delivery agent (transport `http`, "inbound parse", like SendGrid's Inbound Parse and
 * Mailgun's routes): each message is parsed (local/inbound-parse.ts, mailparser) and POSTed as one
 * JSON document to its route's URL, with the recipients of this request in `envelope.rcptTo`.
 * One POST per request, not per recipient: the scheduler groups a message's recipients by next hop
 * (the URL), up to delivery.recipientsPerTransaction, and every recipient of the request gets the
 * request's outcome. Returns one result per recipient; never throws; never writes the store.
 *
 * The request: `content-type: application/json`, signed like webhooks by the Standard Webhooks
 * scheme (webhooks/signing.ts) when `local.http.secret` is set: `webhook-id` (the queue ID and the
 * recipients' indexes: the same on every retry of the same recipients, so the receiver can drop a
 * duplicate), `webhook-timestamp` (seconds, at this attempt), `webhook-signature` ("v1," + base64
 * HMAC-SHA256 of "id.timestamp.body"); without a secret the id and timestamp are sent unsigned.
 * The URL is checked by the SSRF guard (webhooks/ssrf.ts; `local.http.allowPrivate`) before each
 * request and the connection pinned to the checked addresses (webhooks/http-post.ts, node:http,
 * keep-alive; redirects never followed).
 *
 * Outcomes (RFC 3463 codes; diagnostics name the URL's host, never its path or query, which may
 * hold a token, since a bounce's text reaches the sender):
 * - 2xx: delivered, 250 2.0.0;
 * - 4xx: bounced 550 5.0.0 when the route has `bounceOn4xx`, else deferred 451 4.0.0; the status
 *   and the start of the answer's text in the diagnostic;
 * - 3xx, 5xx, any other status: deferred 451 4.0.0;
 * - no answer within `local.http.timeoutMs`: deferred 451 4.4.2; connection refused or no route
 *   to the host: deferred 451 4.4.1 (and the destination is marked unreachable for a while, as
 *   for SMTP); other connection or TLS trouble: deferred 451 4.4.2 (a certificate: 4.7.5);
 * - the URL refused by the SSRF guard: deferred 451 4.3.5 (a configuration problem: fixing it
 *   delivers); the host name does not resolve: deferred 451 4.4.3;
 * - the message bigger than `local.http.maxBytes`: bounced 552 5.3.4 (not sent cut short, so the
 *   receiver never takes a partial message for the whole); a message mailparser cannot parse:
 *   bounced 554 5.6.0; a body read error: deferred 451 4.3.0; shutdown: deferred 451 4.3.0.
 *
 * Memory: messages wait for `local.http.maxBytesInFlight` (byte-budget.ts) before they are parsed.
 */
import { createHash } from 'node:crypto';
import { lookup as dnsLookup } from 'node:dns/promises';
import type { LocalHttpConfig } from '../config/local-schema.js';
import type { Logger } from '../core/log.js';
import { notThisTransport } from '../delivery/transports.js';
import type { DeliveryAgent, DeliveryRequest, RecipientResult } from '../delivery/types.js';
import { createPoster, type PostAnswer, type PostFn } from '../webhooks/http-post.js';
import { WebhookSigner } from '../webhooks/signing.js';
import { checkUrlStatic, resolveAndCheck, type LookupAll } from '../webhooks/ssrf.js';
import { ByteBudget } from './byte-budget.js';
import { InboundParseError, InboundTooBigError, parseInbound } from './inbound-parse.js';

/** Constructor options of HttpAgent. */
export interface HttpAgentOptions {
  /** `local.http`, read at each delivery (live reload). */
  readonly config: () => LocalHttpConfig;
  /** Our authserv-id (auth.authservId, else hostname), for the payload's `auth` summary. */
  readonly authservId: () => string;
  readonly logger?: Logger;
  /** ms since the epoch, for webhook-timestamp (default Date.now). */
  readonly now?: () => number;
  /** Name lookup for the SSRF guard (default: the system resolver, every address). */
  readonly lookup?: LookupAll;
  /** The HTTP POST (default: webhooks/http-post.ts createPoster). */
  readonly post?: PostFn;
}

/** The one verdict of a request, given to each of its recipients. */
interface Verdict {
  readonly outcome: RecipientResult['outcome'];
  readonly code: number;
  readonly dsnStatus: string;
  readonly text: string;
  readonly destination?: 'unreachable';
  readonly remoteMta?: string;
}

/** Most characters of the answer's text put in a diagnostic. */
const ANSWER_TEXT_CHARS = 200;

/** Answer bytes read (the rest is dropped with the connection). */
const DRAIN_BYTES = 4096;

/** Connection errors that mean the host could not be reached at all. */
const UNREACHABLE = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL']);

const systemLookup: LookupAll = (host) => dnsLookup(host, { all: true, verbatim: true });

function verdict(outcome: Verdict['outcome'], code: number, dsnStatus: string, text: string, extra: Partial<Verdict> = {}): Verdict {
  return { outcome, code, dsnStatus, text, ...extra };
}

/** The answer's text for a diagnostic: one line, printable ASCII, bounded. */
function answerText(a: PostAnswer): string {
  const t = a.text.replace(/\s+/g, ' ').replace(/[^\x20-\x7e]/g, '?').trim();
  return t.length > ANSWER_TEXT_CHARS ? `${t.slice(0, ANSWER_TEXT_CHARS - 3)}...` : t;
}

/** Classifies an HTTP answer (see the module comment). */
export function verdictOfAnswer(a: PostAnswer, host: string, bounceOn4xx: boolean): Verdict {
  const said = `${host} answered HTTP ${a.status}${answerText(a) ? `: ${answerText(a)}` : ''}`;
  const remoteMta = host;
  if (a.status >= 200 && a.status < 300) return verdict('delivered', 250, '2.0.0', `delivered by inbound parse: ${host} answered HTTP ${a.status}`, { remoteMta });
  if (a.status >= 400 && a.status < 500) {
    return bounceOn4xx
      ? verdict('bounced', 550, '5.0.0', said, { remoteMta })
      : verdict('deferred', 451, '4.0.0', `${said} (retried: the route does not set bounceOn4xx)`, { remoteMta });
  }
  const redirect = a.status >= 300 && a.status < 400 ? ' (redirects are not followed)' : '';
  return verdict('deferred', 451, '4.0.0', `${said}${redirect}`, { remoteMta });
}

/** Classifies a failed POST (no answer). */
export function verdictOfPostError(err: unknown, host: string, timeoutMs: number): Verdict {
  const e = err as { code?: string; message?: string; name?: string; cause?: { code?: string } };
  const code = e?.code ?? e?.cause?.code ?? '';
  const msg = (e?.message ?? String(err)).replace(/[\r\n]+/g, ' ');
  const detail = code && !msg.startsWith(code) ? `${code} (${msg})` : msg;
  if (code === 'ABORT_ERR' || e?.name === 'AbortError') return verdict('deferred', 451, '4.3.0', 'delivery aborted (shutdown)');
  if (code === 'ETIMEDOUT') return verdict('deferred', 451, '4.4.2', `no answer from ${host} within ${timeoutMs} ms`);
  if (UNREACHABLE.has(code)) return verdict('deferred', 451, '4.4.1', `cannot connect to ${host}: ${detail}`, { destination: 'unreachable' });
  if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ALTNAME/.test(code)) return verdict('deferred', 451, '4.7.5', `TLS certificate of ${host} not accepted: ${detail}`);
  return verdict('deferred', 451, '4.4.2', `connection to ${host} failed: ${detail}`);
}

/** Classifies a failure to read or parse the message. */
function verdictOfParseError(err: unknown): Verdict {
  if (err instanceof InboundTooBigError) return verdict('bounced', 552, '5.3.4', err.message);
  if (err instanceof InboundParseError) return verdict('bounced', 554, '5.6.0', `inbound parse: ${err.message}`);
  const e = err as { code?: string; name?: string; message?: string };
  if (e?.code === 'ABORT_ERR' || e?.name === 'AbortError') return verdict('deferred', 451, '4.3.0', 'delivery aborted (shutdown)');
  return verdict('deferred', 451, '4.3.0', `cannot read the message: ${e?.code ? `${e.code} ` : ''}${e?.message ?? String(err)}`);
}

/**
 * The webhook-id of a request: the queue ID and the recipients' indexes ("Q.0", "Q.0.3"), or
 * their hash when there are many ("Q.h" + 16 hex digits). The same on every retry of the same set.
 */
export function requestId(queueId: string, idxs: readonly number[]): string {
  const sorted = [...idxs].sort((a, b) => a - b);
  if (sorted.length <= 8) return `${queueId}.${sorted.join('.')}`;
  return `${queueId}.h${createHash('sha256').update(sorted.join(',')).digest('hex').slice(0, 16)}`;
}

/** The agent of transport `http`. */
export class HttpAgent implements DeliveryAgent {
  private readonly budget: ByteBudget;
  private readonly ownPoster: (PostFn & { close(): void }) | undefined;
  private readonly post: PostFn;
  private readonly now: () => number;
  private signer?: { secret: string; signer: WebhookSigner };

  constructor(private readonly opts: HttpAgentOptions) {
    this.budget = new ByteBudget(() => opts.config().maxBytesInFlight);
    this.ownPoster = opts.post ? undefined : createPoster({ drainBytes: DRAIN_BYTES, maxSockets: 64 });
    this.post = opts.post ?? this.ownPoster!;
    this.now = opts.now ?? Date.now;
  }

  /** The memory budget's state: bytes held and requests waiting (for tests and status). */
  budgetState(): { inUse: number; queued: number } {
    return { inUse: this.budget.inUse, queued: this.budget.queued };
  }

  /** Delivers one request: one POST for all its recipients. Never throws (see DeliveryAgent). */
  async deliver(req: DeliveryRequest): Promise<RecipientResult[]> {
    const hop = req.nextHop;
    if (hop.kind !== 'http') return notThisTransport(req, 'http');
    let host = 'the inbound parse URL';
    try {
      host = new URL(hop.url).host;
    } catch { /* checkUrlStatic names it */ }
    const v = await this.attempt(req, hop.url, hop.bounceOn4xx, host).catch((err: unknown) => verdict('deferred', 451, '4.3.0', `inbound parse failed: ${(err as Error)?.message ?? String(err)}`));
    const level = v.outcome === 'delivered' ? 'debug' : 'warn';
    this.opts.logger?.[level]({ queueId: req.queueId, nextHop: `http:${host}`, recipients: req.recipients.length, reply: `${v.code} ${v.dsnStatus} ${v.text}` }, v.outcome === 'delivered' ? 'delivered by inbound parse' : 'inbound parse delivery failed');
    const diagnostic = `${v.code} ${v.dsnStatus} ${v.text}`.replace(/[\r\n]+/g, ' ');
    return req.recipients.map((r) => ({
      idx: r.idx, outcome: v.outcome, code: v.code, dsnStatus: v.dsnStatus, diagnostic, remote: false,
      ...(v.remoteMta ? { remoteMta: v.remoteMta } : {}),
      ...(v.destination ? { destination: v.destination } : {}),
    }));
  }

  /** The request's one verdict: size, SSRF guard, budget, parse, sign, POST. */
  private async attempt(req: DeliveryRequest, url: string, bounceOn4xx: boolean, host: string): Promise<Verdict> {
    const cfg = this.opts.config();
    if (req.size > cfg.maxBytes) return verdictOfParseError(new InboundTooBigError(cfg.maxBytes, req.size));
    const refused = checkUrlStatic(url, cfg.allowPrivate);
    if (refused) return verdict('deferred', 451, '4.3.5', `inbound parse URL refused: ${refused.replace('set allowPrivate', 'set local.http.allowPrivate')}`);
    let lookupFailed = false;
    const lookup: LookupAll = (h) => (this.opts.lookup ?? systemLookup)(h).catch((err: unknown) => { lookupFailed = true; throw err; });
    let addresses: Array<{ address: string; family: number }>;
    try {
      addresses = await resolveAndCheck(url, cfg.allowPrivate, lookup);
    } catch (err) {
      const why = (err as Error).message.replace(/^webhook URL refused: /, '').replace('set allowPrivate', 'set local.http.allowPrivate');
      return lookupFailed || /has no addresses$/.test(why)
        ? verdict('deferred', 451, '4.4.3', `inbound parse: ${why}`)
        : verdict('deferred', 451, '4.3.5', `inbound parse URL refused: ${why}`);
    }
    let release: () => void;
    try {
      release = await this.budget.acquire(req.size, req.signal);
    } catch (err) {
      return verdictOfParseError(err);
    }
    try {
      let body: string;
      try {
        const payload = await parseInbound({
          queueId: req.queueId, mailFrom: req.mailFrom, rcptTo: req.recipients.map((r) => r.address),
          body: req.openBody(), maxBytes: cfg.maxBytes, authservId: this.opts.authservId(),
          ...(req.signal ? { signal: req.signal } : {}),
        });
        body = JSON.stringify(payload);
      } catch (err) {
        return verdictOfParseError(err);
      }
      const headers = this.headers(requestId(req.queueId, req.recipients.map((r) => r.idx)), body, cfg.secret);
      try {
        const answer = await this.post({ url, addresses, headers, body, timeoutMs: cfg.timeoutMs, ...(req.signal ? { signal: req.signal } : {}) });
        return verdictOfAnswer(answer, host, bounceOn4xx);
      } catch (err) {
        return verdictOfPostError(err, host, cfg.timeoutMs);
      }
    } finally {
      release();
    }
  }

  /** The request's headers: JSON, the user agent and the Standard Webhooks id, timestamp and signature. */
  private headers(id: string, body: string, secret: string | undefined): Record<string, string> {
    const seconds = Math.floor(this.now() / 1000);
    const h: Record<string, string> = {
      'content-type': 'application/json',
      'user-agent': 'Postline-Inbound/1',
      'webhook-id': id,
      'webhook-timestamp': String(seconds),
    };
    if (secret) {
      if (this.signer?.secret !== secret) this.signer = { secret, signer: new WebhookSigner(secret) };
      h['webhook-signature'] = this.signer.signer.signature(id, seconds, body);
    }
    return h;
  }

  /** Closes the kept-alive connections. */
  async close(): Promise<void> {
    this.ownPoster?.close();
  }
}
